//! Readers: opened and advanced on the thread pool; batches cross as external
//! buffers whose memory returns to a pool when V8 collects them.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core as core;

use crate::errors::{engine, guard, internal_error};
use crate::pool::{Claim, Pool};
use crate::{lock, partition_arg, u64_arg, WalHandle};

/// Numbers per record in a read batch: lsn, segment, offset, payload start,
/// payload length.
const RECORD_WIDTH: usize = 5;

pub struct ReaderTask {
    wal: Arc<core::Wal>,
    partition: u16,
    start: Option<core::Start>,
}

impl Task for ReaderTask {
    type Output = core::Reader;
    type JsValue = ExternalRef<ReaderHandle>;

    fn compute(&mut self) -> Result<Self::Output> {
        let start = self.start.take().unwrap_or(core::Start::Lsn(0));
        let (wal, partition) = (&self.wal, self.partition);
        guard(|| engine(wal.reader(partition, start)))
    }

    fn resolve(&mut self, env: Env, reader: Self::Output) -> Result<Self::JsValue> {
        let open = OpenReader {
            reader,
            _pools: (DATA_POOL.claim(), META_POOL.claim()),
        };
        ExternalRef::new(&env, Arc::new(Mutex::new(Some(open))))
    }
}

/// retained log), or, when `usePosition`, from `segment`/`offset`.
#[napi(ts_return_type = "Promise<ExternalObject<ReaderHandle>>")]
pub fn open_reader(
    handle: &External<WalHandle>,
    partition: u32,
    from_lsn: f64,
    use_position: bool,
    segment: f64,
    offset: f64,
) -> Result<AsyncTask<ReaderTask>> {
    guard(|| {
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
    _pools: (Claim<u8>, Claim<f64>),
}

/// Spare batch memory. V8 frees batches in bursts (when their external memory adds
/// up to a collection), so the pool must hold one burst for reads to find a buffer: on
/// the bench's 4 KiB read workload 8 missed 40% of the time, 64 misses 5%. With no
/// reader open it keeps 4 (at most 4 MiB of data).
static DATA_POOL: Pool<u8> = Pool::new(64, 4);
static META_POOL: Pool<f64> = Pool::new(64, 4);

/// A batch read on the thread pool, before it becomes a `NativeBatch` object
/// (`{ data?: Buffer, meta?: Float64Array, nextLsn }`; `data` and `meta` are
/// absent when the reader has caught up with the acknowledged log).
pub struct ReadBatch {
    records: Option<(Vec<u8>, usize, Vec<f64>)>,
    next_lsn: u64,
}

pub struct NextTask {
    reader: ReaderHandle,
    max_bytes: usize,
}

impl<'task> napi::ScopedTask<'task> for NextTask {
    type Output = ReadBatch;
    type JsValue = Object<'task>;

    fn compute(&mut self) -> Result<Self::Output> {
        let (reader, max_bytes) = (&self.reader, self.max_bytes);
        guard(|| {
            let mut reader = lock(reader);
            let reader = &mut reader
                .as_mut()
                .ok_or_else(|| internal_error("WAL_CLOSED", "the stream was released"))?
                .reader;
            let batch = engine(reader.next_batch_in(DATA_POOL.take(), max_bytes))?;
            let records = batch.map(|batch| {
                let mut meta = META_POOL.take();
                meta.clear();
                meta.reserve(batch.records.len() * RECORD_WIDTH);
                for r in &batch.records {
                    meta.extend_from_slice(&[
                        r.lsn as f64,
                        r.segment as f64,
                        r.offset as f64,
                        f64::from(r.payload_start),
                        f64::from(r.payload_len),
                    ]);
                }
                (batch.data, batch.len, meta)
            });
            Ok(ReadBatch {
                records,
                next_lsn: reader.next_lsn(),
            })
        })
    }

    fn resolve(&mut self, env: &'task Env, batch: ReadBatch) -> Result<Object<'task>> {
        let mut out = Object::new(env)?;
        out.set_named_property("nextLsn", batch.next_lsn as f64)?;
        if let Some((mut data, len, mut meta)) = batch.records {
            // SAFETY: each vector moves into its finalizer's hint, so its heap memory
            // stays where the JS object points until V8 collects the object and the
            // finalizer hands the vector back to its pool; nothing else touches it
            // meanwhile (the pools only hold vectors no JS object points at).
            let (data_ptr, meta_ptr, meta_len) = (data.as_mut_ptr(), meta.as_mut_ptr(), meta.len());
            let data = unsafe { BufferSlice::from_external(env, data_ptr, len, data, |_, v| DATA_POOL.give(v)) }?;
            let meta =
                unsafe { Float64ArraySlice::from_external(env, meta_ptr, meta_len, meta, |_, v| META_POOL.give(v)) }?;
            out.set_named_property("data", data)?;
            out.set_named_property("meta", meta)?;
        }
        Ok(out)
    }
}

/// Reads the next batch of at most about `maxBytes` on the thread pool.
#[napi(ts_return_type = "Promise<NativeBatch>")]
pub fn reader_next(reader: &External<ReaderHandle>, max_bytes: u32) -> AsyncTask<NextTask> {
    AsyncTask::new(NextTask {
        reader: Arc::clone(reader),
        max_bytes: max_bytes as usize,
    })
}

/// Releases the reader's file handles. Call only while no `readerNext` runs
/// (it would wait for it).
#[napi]
pub fn reader_release(reader: &External<ReaderHandle>) {
    let released = lock(reader).take();
    drop(released);
}
