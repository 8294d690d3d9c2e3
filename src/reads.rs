//! Readers: opened on the thread pool and filled ahead there (ahead.rs); batches cross
//! as external buffers whose memory returns to a pool when V8 collects them.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core as core;

use crate::ahead::{Fill, Item, Notify, ReadNotifier, ReaderHandle, ReaderSlot, DATA_POOL, INDEX_POOL};
use crate::errors::{catch, guard, Outcome};
use crate::{lock, partition_arg, u64_arg, WalHandle};

pub struct ReaderTask {
    wal: Arc<core::Wal>,
    partition: u16,
    start: Option<core::Start>,
    notify: Notify,
    /// The first batch, read in the same task (`None`: none, for a scan).
    first: Option<Fill>,
}

impl Task for ReaderTask {
    type Output = Outcome<ReaderHandle>;
    type JsValue = ExternalRef<ReaderHandle>;

    fn compute(&mut self) -> Result<Self::Output> {
        let start = self.start.take().unwrap_or(core::Start::Lsn(0));
        let (wal, partition, first) = (&self.wal, self.partition, self.first);
        Ok(catch(|| {
            let slot = Arc::new(ReaderSlot::new(wal.reader(partition, start)?, self.notify.clone()));
            // Reading the first batch here spares a stream's first step a second trip
            // through the pool and the read notifier: a seek's time to its first record
            // (bench table 8) is mostly such trips. A failure is the first item.
            if let Some(fill) = first {
                slot.fill(fill, 0);
            }
            Ok(slot)
        }))
    }

    fn resolve(&mut self, env: Env, slot: Self::Output) -> Result<Self::JsValue> {
        ExternalRef::new(&env, slot.map_err(|f| f.into_js(&env))?)
    }
}

/// Opens a reader of `partition` on the thread pool: from `fromLsn` (0: the start of the
/// retained log), or, when `usePosition`, from `segment`/`offset`. `id` is what the read
/// notifier is called with when this reader has a batch for a caller that waits. With
/// `firstBytes` above 0 the task also reads the first batch (at most `maxBytes`), which
/// `readerTake` then finds ready.
#[napi(ts_return_type = "Promise<ExternalObject<ReaderHandle>>")]
#[allow(clippy::too_many_arguments)]
pub fn open_reader(
    env: &Env,
    handle: &External<WalHandle>,
    id: u32,
    partition: u32,
    from_lsn: f64,
    use_position: bool,
    segment: f64,
    offset: f64,
    first_bytes: u32,
    max_bytes: u32,
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
            notify: Notify {
                notifier: Arc::clone(&handle.reads),
                id,
            },
            first: (first_bytes > 0).then_some(Fill {
                first: first_bytes as usize,
                max: max_bytes as usize,
                depth: 1,
            }),
        }))
    })
}

/// Sets the callback the read notifier calls (released with the ack notifier, at close).
#[napi]
pub fn set_read_notifier(env: &Env, handle: &External<WalHandle>, callback: Function<u32, ()>) -> Result<()> {
    guard(env, || {
        let tsfn: ReadNotifier = callback
            .build_threadsafe_function::<u32>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        *lock(&handle.reads) = Some(tsfn);
        Ok(())
    })
}

pub struct FillTask {
    slot: ReaderHandle,
    fill: Fill,
    rewind: u64,
}

impl Task for FillTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<Self::Output> {
        // A panic is the caller's next item too, so that it arrives in order.
        let (slot, fill, rewind) = (&self.slot, self.fill, self.rewind);
        if let Err(failure) = catch(|| {
            slot.fill(fill, rewind);
            Ok(())
        }) {
            slot.fail(failure);
        }
        Ok(())
    }

    fn resolve(&mut self, _: Env, _: Self::Output) -> Result<Self::JsValue> {
        Ok(())
    }
}

/// Reads ahead on the thread pool, after going back to LSN `rewind` if it is not 0 (see
/// `Reader::rewind`): batches of `firstBytes` doubling up to `maxBytes`, until `depth`
/// are ready or the reader has caught up or failed. Resolves when it stops; one fill at a
/// time per reader.
#[napi(ts_return_type = "Promise<void>")]
pub fn reader_fill(
    env: &Env,
    reader: &External<ReaderHandle>,
    first_bytes: u32,
    max_bytes: u32,
    depth: u32,
    rewind: f64,
) -> Result<AsyncTask<FillTask>> {
    guard(env, || {
        Ok(AsyncTask::new(FillTask {
            slot: Arc::clone(reader),
            fill: Fill {
                first: first_bytes as usize,
                max: max_bytes as usize,
                depth: depth.max(1) as usize,
            },
            rewind: u64_arg(rewind, "rewind")?,
        }))
    })
}

/// The next item read ahead, without waiting: a batch
/// (`{ nextLsn, data, index, count, firstLsn, segment, offsetBase }`), `{ nextLsn }` once
/// the reader has caught up with the acknowledged log, or the failure that stopped it,
/// thrown. `null` when nothing is ready: the next item is then announced through the
/// read notifier (or the fill ends first).
#[napi(ts_return_type = "NativeBatch | null")]
pub fn reader_take<'env>(env: &'env Env, reader: &External<ReaderHandle>) -> Result<Option<Object<'env>>> {
    guard(env, || {
        let Some(item) = reader.take() else { return Ok(None) };
        let mut out = Object::new(env)?;
        match item {
            Item::Failed(failure) => return Err(failure),
            Item::CaughtUp(next) => out.set_named_property("nextLsn", next as f64)?,
            Item::Batch(mut r) => {
                out.set_named_property("nextLsn", (r.first_lsn + r.count as u64) as f64)?;
                // SAFETY: each vector moves into its finalizer's hint, so its heap memory
                // stays where the JS object points until V8 collects the object and the
                // finalizer hands the vector back to its pool; nothing else touches it
                // meanwhile (the pools only hold vectors no JS object points at).
                let (data_ptr, index_ptr, index_len) = (r.data.as_mut_ptr(), r.index.as_mut_ptr(), r.index.len());
                let data =
                    unsafe { BufferSlice::from_external(env, data_ptr, r.len, r.data, |_, v| DATA_POOL.give(v)) }?;
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
        }
        Ok(Some(out))
    })
}

/// Drops what was read ahead (a truncate may have removed it) and returns the LSN the
/// first of it started at (0: nothing was ahead), where the caller resumes. Call only
/// while no fill runs.
#[napi]
pub fn reader_discard(reader: &External<ReaderHandle>) -> f64 {
    reader.discard() as f64
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
            reader.with_reader(|reader| {
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

/// Releases the reader's file handles and what it read ahead. Call only while no fill runs
/// (it would wait for it).
#[napi]
pub fn reader_release(reader: &External<ReaderHandle>) {
    reader.release();
}
