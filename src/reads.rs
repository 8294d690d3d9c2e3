//! Readers: opened and advanced on the thread pool; batches cross as external
//! buffers whose memory returns to a pool when V8 collects them.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core as core;

use crate::errors::{catch, guard, Failure, Outcome};
use crate::pool::{Claim, Pool};
use crate::{lock, partition_arg, u64_arg, WalHandle};

pub struct ReaderTask {
    wal: Arc<core::Wal>,
    partition: u16,
    start: Option<core::Start>,
}

impl Task for ReaderTask {
    type Output = Outcome<core::Reader>;
    type JsValue = ExternalRef<ReaderHandle>;

    fn compute(&mut self) -> Result<Self::Output> {
        let start = self.start.take().unwrap_or(core::Start::Lsn(0));
        let (wal, partition) = (&self.wal, self.partition);
        Ok(catch(|| Ok(wal.reader(partition, start)?)))
    }

    fn resolve(&mut self, env: Env, reader: Self::Output) -> Result<Self::JsValue> {
        let reader = reader.map_err(|f| f.into_js(&env))?;
        let open = OpenReader {
            reader,
            _pools: (DATA_POOL.claim(), INDEX_POOL.claim()),
        };
        ExternalRef::new(&env, Arc::new(Mutex::new(Some(open))))
    }
}

/// retained log), or, when `usePosition`, from `segment`/`offset`.
#[napi(ts_return_type = "Promise<ExternalObject<ReaderHandle>>")]
pub fn open_reader(
    env: &Env,
    handle: &External<WalHandle>,
    partition: u32,
    from_lsn: f64,
    use_position: bool,
    segment: f64,
    offset: f64,
) -> Result<AsyncTask<ReaderTask>> {
    guard(env, || {
        let start = if use_position {
            core::Start::Position {
                segment: u64_arg(segment, "from.segment")?,
                offset: u64_arg(offset, "from.offset")?,
            }
        } else {
            core::Start::Lsn(u64_arg(from_lsn, "fromLsn")?)
        };
        Ok(AsyncTask::new(ReaderTask {
            wal: Arc::clone(&handle.wal),
            partition: partition_arg(partition)?,
            start: Some(start),
        }))
    })
}

// ---------------------------------------------------------------------------
// readers

/// A reader of one partition, behind the handle `openReader` resolves to.
/// `None` once released.
pub type ReaderHandle = Arc<Mutex<Option<OpenReader>>>;

/// An open reader, and its claim on the batch pools (which keep memory only while
/// some reader is open).
pub struct OpenReader {
    reader: core::Reader,
    _pools: (Claim<u8>, Claim<u32>),
}

/// The engine's reader behind a handle; `WAL_CLOSED` once released.
fn engine_reader(open: &mut Option<OpenReader>) -> Outcome<&mut core::Reader> {
    Ok(&mut open
        .as_mut()
        .ok_or_else(|| Failure::native("WAL_CLOSED", "the stream was released"))?
        .reader)
}

/// Spare batch memory. V8 frees batches in bursts (when their external memory adds
/// up to a collection), so the pool must hold one burst for reads to find a buffer: on
/// the bench's 4 KiB read workload 8 missed 40% of the time, 64 misses 5%. With no
/// reader open it keeps 4. Buffers grown past 2 MiB (a `maxBytes` above the default, a
/// huge record) go back to the allocator rather than pin that much each.
static DATA_POOL: Pool<u8> = Pool::new(64, 4, 2 << 20);
static INDEX_POOL: Pool<u32> = Pool::new(64, 4, 1 << 19);

/// A batch read on the thread pool, before it becomes a `NativeBatch` object:
/// `{ nextLsn, data?, index?, count?, firstLsn?, segment?, offsetBase? }`, where `index`
/// holds the payload starts (`index[i]`) then the payload lengths (`index[count + i]`),
/// and record `i` starts at offset `offsetBase + index[i]` of `segment`. Only `nextLsn`
/// is there when the reader has caught up with the acknowledged log.
pub struct ReadBatch {
    records: Option<Records>,
    next_lsn: u64,
}

struct Records {
    data: Vec<u8>,
    len: usize,
    index: Vec<u32>,
    count: usize,
    first_lsn: u64,
    segment: u64,
    offset_base: u64,
}

pub struct NextTask {
    reader: ReaderHandle,
    max_bytes: usize,
    rewind: u64,
}

impl<'task> napi::ScopedTask<'task> for NextTask {
    type Output = Outcome<ReadBatch>;
    type JsValue = Object<'task>;

    fn compute(&mut self) -> Result<Self::Output> {
        let (reader, max_bytes, rewind) = (&self.reader, self.max_bytes, self.rewind);
        Ok(catch(|| {
            let mut open = lock(reader);
            let reader = engine_reader(&mut open)?;
            if rewind > 0 {
                reader.rewind(rewind);
            }
            let batch = reader.next_batch_in(DATA_POOL.take(), max_bytes)?;
            let records = batch.and_then(|batch| {
                let first = *batch.records.first()?;
                let count = batch.records.len();
                let mut index = INDEX_POOL.take();
                index.clear();
                index.reserve(count * 2);
                index.extend(batch.records.iter().map(|r| r.payload_start));
                index.extend(batch.records.iter().map(|r| r.payload_len));
                // A batch is read from one segment, and the engine reports each record's
                // offset in the file and its payload's start in `data`: their difference
                // is one number per batch (checked, not assumed).
                let offset_base = first.offset - u64::from(first.payload_start);
                debug_assert!(batch
                    .records
                    .iter()
                    .all(|r| r.segment == first.segment && r.offset - u64::from(r.payload_start) == offset_base));
                Some(Records {
                    data: batch.data,
                    len: batch.len,
                    index,
                    count,
                    first_lsn: first.lsn,
                    segment: first.segment,
                    offset_base,
                })
            });
            Ok(ReadBatch {
                records,
                next_lsn: reader.next_lsn(),
            })
        }))
    }

    fn resolve(&mut self, env: &'task Env, batch: Self::Output) -> Result<Object<'task>> {
        let batch = batch.map_err(|f| f.into_js(env))?;
        let mut out = Object::new(env)?;
        out.set_named_property("nextLsn", batch.next_lsn as f64)?;
        if let Some(mut r) = batch.records {
            // SAFETY: each vector moves into its finalizer's hint, so its heap memory
            // stays where the JS object points until V8 collects the object and the
            // finalizer hands the vector back to its pool; nothing else touches it
            // meanwhile (the pools only hold vectors no JS object points at).
            let (data_ptr, index_ptr, index_len) = (r.data.as_mut_ptr(), r.index.as_mut_ptr(), r.index.len());
            let data = unsafe { BufferSlice::from_external(env, data_ptr, r.len, r.data, |_, v| DATA_POOL.give(v)) }?;
            let index = unsafe {
                Uint32ArraySlice::from_external(env, index_ptr, index_len, r.index, |_, v| INDEX_POOL.give(v))
            }?;
            out.set_named_property("data", data)?;
            out.set_named_property("index", index)?;
            out.set_named_property("count", r.count as f64)?;
            out.set_named_property("firstLsn", r.first_lsn as f64)?;
            out.set_named_property("segment", r.segment as f64)?;
            out.set_named_property("offsetBase", r.offset_base as f64)?;
        }
        Ok(out)
    }
}

/// Reads the next batch of at most about `maxBytes` on the thread pool, after going
/// back to LSN `rewind` if it is not 0 (see `Reader::rewind`).
#[napi(ts_return_type = "Promise<NativeBatch>")]
pub fn reader_next(
    env: &Env,
    reader: &External<ReaderHandle>,
    max_bytes: u32,
    rewind: f64,
) -> Result<AsyncTask<NextTask>> {
    guard(env, || {
        Ok(AsyncTask::new(NextTask {
            reader: Arc::clone(reader),
            max_bytes: max_bytes as usize,
            rewind: u64_arg(rewind, "rewind")?,
        }))
    })
}

/// What [`reader_scan`] measured: the engine's own read rate over the same records a
/// stream would yield, with no JS object per batch.
#[napi(object)]
pub struct ReadScan {
    pub records: f64,
    pub bytes: f64,
    pub seconds: f64,
    /// CPU time of the reading thread (Linux; NaN elsewhere).
    pub cpu_seconds: f64,
}

pub struct ScanTask {
    reader: ReaderHandle,
    max_bytes: usize,
}

impl Task for ScanTask {
    type Output = Outcome<ReadScan>;
    type JsValue = ReadScan;

    fn compute(&mut self) -> Result<Self::Output> {
        let (reader, max_bytes) = (&self.reader, self.max_bytes);
        Ok(catch(|| {
            let mut open = lock(reader);
            let reader = engine_reader(&mut open)?;
            let (cpu0, t0) = (thread_cpu_seconds(), std::time::Instant::now());
            let (mut records, mut bytes, mut buf) = (0usize, 0usize, DATA_POOL.take());
            // One buffer recycled from batch to batch, as the pool gives streams theirs.
            while let Some(batch) = reader.next_batch_in(buf, max_bytes)? {
                records += batch.records.len();
                bytes += batch.records.iter().map(|r| r.payload_len as usize).sum::<usize>();
                buf = batch.data;
            }
            Ok(ReadScan {
                records: records as f64,
                bytes: bytes as f64,
                seconds: t0.elapsed().as_secs_f64(),
                cpu_seconds: thread_cpu_seconds() - cpu0,
            })
        }))
    }

    fn resolve(&mut self, env: Env, scan: Self::Output) -> Result<Self::JsValue> {
        scan.map_err(|f| f.into_js(&env))
    }
}

/// Drains the reader on the thread pool through the engine alone (the bench's measure of
/// what `streamBatches()` could reach: issue #11 target 6). Not part of the API.
#[napi(ts_return_type = "Promise<ReadScan>")]
pub fn reader_scan(env: &Env, reader: &External<ReaderHandle>, max_bytes: u32) -> Result<AsyncTask<ScanTask>> {
    guard(env, || {
        Ok(AsyncTask::new(ScanTask {
            reader: Arc::clone(reader),
            max_bytes: max_bytes as usize,
        }))
    })
}

/// This thread's CPU time so far, from the scheduler's own account (NaN where there is none).
fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e9)
}

/// Shrinks the batch pools to their idle size once no reader has been open for a while
/// (see pool.rs); returns the milliseconds until it should be called again, 0 when done.
#[napi]
pub fn trim_read_pools() -> u32 {
    let wait = DATA_POOL.trim().max(INDEX_POOL.trim());
    wait.as_millis().try_into().unwrap_or(u32::MAX)
}

/// Releases the reader's file handles. Call only while no `readerNext` runs
/// (it would wait for it).
#[napi]
pub fn reader_release(reader: &External<ReaderHandle>) {
    let released = lock(reader).take();
    drop(released);
}
