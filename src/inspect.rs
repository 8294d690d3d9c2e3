//! Binding of the engine's read-only inspection (`segwal_core::inspect`) for the command
//! line (`bin/segwal.mjs`): `inspect`, `verify` and `dump` of a WAL directory, without
//! opening the WAL (no lock, nothing cut or replayed), so they run next to a live writer.
//!
//! The blocking work runs on the libuv thread pool (`AsyncTask`); failures settle as
//! the crate's JS errors (see `errors`).
//!
//! - `inspectDir(dir)` resolves to the partitions with their segments;
//! - `verifyStart(dir)` makes a job, `verifyRun(job)` checks everything and resolves to
//!   the report, `verifyProgress(job)` says `[bytesDone, bytesTotal]` meanwhile (a
//!   synchronous poll, so no threadsafe function is needed);
//! - `dumpOpen(dir, partition, fromLsn)` resolves to a record cursor, `dumpNext(cursor,
//!   maxRecords, maxBytes)` to the next records (payload bytes plus five numbers per
//!   record: lsn, segment, offset, payload start, payload length; none at the end), and
//!   `dumpRelease(cursor)` closes its files.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use segwal_core::inspect as core_inspect;

use crate::errors::{catch, guard, Failure, Outcome};
use crate::{lock, partition_arg, u64_arg};

/// Where a partition is not clean.
#[napi(object)]
pub struct InspectProblem {
    /// `"torn-tail"` or `"corruption"`.
    pub kind: String,
    pub file: String,
    pub offset: f64,
    pub reason: String,
    /// For a torn tail, the bytes the next open would cut.
    pub torn_bytes: f64,
}

/// One segment file.
#[napi(object)]
pub struct InspectSegment {
    pub index: f64,
    pub file: String,
    pub bytes: f64,
    pub first_lsn: Option<f64>,
    pub last_lsn: Option<f64>,
    pub records: f64,
    pub created_ms: Option<f64>,
    pub newest: bool,
    pub spare: bool,
    pub checked: bool,
    pub problem: Option<InspectProblem>,
}

/// One partition.
#[napi(object)]
pub struct InspectPartition {
    pub partition: u32,
    pub first_lsn: f64,
    pub last_lsn: f64,
    pub records: f64,
    pub bytes: f64,
    pub segments: Vec<InspectSegment>,
    pub problems: Vec<InspectProblem>,
    pub pending_truncation: bool,
}

/// Result of `verifyRun`.
#[napi(object)]
pub struct VerifyResult {
    /// No corruption (a torn tail is not corruption).
    pub clean: bool,
    pub partitions: Vec<InspectPartition>,
    pub segments: f64,
    pub records: f64,
    pub bytes: f64,
}

fn problem(p: &core_inspect::Problem) -> InspectProblem {
    InspectProblem {
        kind: p.kind.as_str().to_string(),
        file: p.file.clone(),
        offset: p.offset as f64,
        reason: p.reason.clone(),
        torn_bytes: p.torn_bytes as f64,
    }
}

fn partition(p: &core_inspect::PartitionReport) -> InspectPartition {
    InspectPartition {
        partition: u32::from(p.partition),
        first_lsn: p.first_lsn as f64,
        last_lsn: p.last_lsn as f64,
        records: p.records() as f64,
        bytes: p.bytes as f64,
        segments: p
            .segments
            .iter()
            .map(|s| InspectSegment {
                index: s.index as f64,
                file: s.file.clone(),
                bytes: s.bytes as f64,
                first_lsn: s.first_lsn.map(|x| x as f64),
                last_lsn: s.last_lsn.map(|x| x as f64),
                records: s.records() as f64,
                created_ms: s.created_ms.map(|x| x as f64),
                newest: s.newest,
                spare: s.spare,
                checked: s.checked,
                problem: s.problem.as_ref().map(problem),
            })
            .collect(),
        problems: p.problems.iter().map(problem).collect(),
        pending_truncation: p.pending_truncation,
    }
}

// ---------------------------------------------------------------------------
// inspect

pub struct InspectTask {
    dir: String,
}

impl Task for InspectTask {
    type Output = Outcome<Vec<core_inspect::PartitionReport>>;
    type JsValue = Vec<InspectPartition>;

    fn compute(&mut self) -> Result<Self::Output> {
        let dir = &self.dir;
        Ok(catch(|| Ok(core_inspect::inspect(dir)?)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        let output = output.map_err(|f| f.into_js(&env))?;
        Ok(output.iter().map(partition).collect())
    }
}

/// Partitions, segments, LSN ranges and sizes of the WAL in `dir` (read-only).
#[napi(ts_return_type = "Promise<InspectPartition[]>")]
pub fn inspect_dir(dir: String) -> AsyncTask<InspectTask> {
    AsyncTask::new(InspectTask { dir })
}

// ---------------------------------------------------------------------------
// verify

/// A verification, behind the handle `verifyStart` returns.
pub struct VerifyJob {
    dir: String,
    done: AtomicU64,
    total: AtomicU64,
}

/// Makes a verification job for `dir`; `verifyRun` runs it.
#[napi(ts_return_type = "ExternalObject<VerifyJob>")]
pub fn verify_start(dir: String) -> External<Arc<VerifyJob>> {
    External::new(Arc::new(VerifyJob {
        dir,
        done: AtomicU64::new(0),
        total: AtomicU64::new(0),
    }))
}

/// `[bytesDone, bytesTotal]` of a running (or finished) verification.
#[napi(ts_args_type = "job: ExternalObject<VerifyJob>")]
pub fn verify_progress(job: &External<Arc<VerifyJob>>) -> Vec<f64> {
    vec![
        job.done.load(Ordering::Relaxed) as f64,
        job.total.load(Ordering::Relaxed) as f64,
    ]
}

pub struct VerifyTask {
    job: Arc<VerifyJob>,
}

impl Task for VerifyTask {
    type Output = Outcome<core_inspect::VerifyReport>;
    type JsValue = VerifyResult;

    fn compute(&mut self) -> Result<Self::Output> {
        let job = &self.job;
        Ok(catch(|| {
            Ok(core_inspect::verify(&job.dir, &mut |done, total| {
                job.total.store(total, Ordering::Relaxed);
                job.done.store(done, Ordering::Relaxed);
            })?)
        }))
    }

    fn resolve(&mut self, env: Env, r: Self::Output) -> Result<VerifyResult> {
        let r = r.map_err(|f| f.into_js(&env))?;
        Ok(VerifyResult {
            clean: r.is_clean(),
            partitions: r.partitions.iter().map(partition).collect(),
            segments: r.segments as f64,
            records: r.records as f64,
            bytes: r.bytes as f64,
        })
    }
}

/// Checks every record of every segment and the LSN chain, on the thread pool.
#[napi(
    ts_args_type = "job: ExternalObject<VerifyJob>",
    ts_return_type = "Promise<VerifyResult>"
)]
pub fn verify_run(job: &External<Arc<VerifyJob>>) -> AsyncTask<VerifyTask> {
    AsyncTask::new(VerifyTask { job: Arc::clone(job) })
}

// ---------------------------------------------------------------------------
// dump

/// A record cursor, behind the handle `dumpOpen` resolves to; `None` once released.
pub type DumpCursor = Arc<Mutex<Option<DumpState>>>;

pub struct DumpState {
    records: core_inspect::Records,
    /// An error met after records that the same call returned: the next call's.
    failed: Option<segwal_core::Error>,
}

pub struct DumpOpenTask {
    dir: String,
    partition: u16,
    from_lsn: u64,
}

impl Task for DumpOpenTask {
    type Output = Outcome<core_inspect::Records>;
    type JsValue = ExternalRef<DumpCursor>;

    fn compute(&mut self) -> Result<Self::Output> {
        let (dir, partition, from_lsn) = (&self.dir, self.partition, self.from_lsn);
        Ok(catch(|| Ok(core_inspect::records(dir, partition, from_lsn)?)))
    }

    fn resolve(&mut self, env: Env, records: Self::Output) -> Result<Self::JsValue> {
        let records = records.map_err(|f| f.into_js(&env))?;
        ExternalRef::new(&env, Arc::new(Mutex::new(Some(DumpState { records, failed: None }))))
    }
}

/// Opens a read-only cursor on `partition` from `fromLsn` (0: the first retained record).
#[napi(ts_return_type = "Promise<ExternalObject<DumpCursor>>")]
pub fn dump_open(env: &Env, dir: String, partition: u32, from_lsn: f64) -> Result<AsyncTask<DumpOpenTask>> {
    guard(env, || {
        Ok(AsyncTask::new(DumpOpenTask {
            dir,
            partition: partition_arg(partition)?,
            from_lsn: u64_arg(from_lsn, "fromLsn")?,
        }))
    })
}

/// Records read by `dumpNext`; both fields absent at the end.
#[napi(object)]
pub struct DumpBatch {
    pub data: Option<Buffer>,
    /// Per record: lsn, segment, offset, payload start, payload length.
    pub meta: Option<Float64Array>,
}

pub struct DumpNextTask {
    cursor: DumpCursor,
    max_records: usize,
    max_bytes: usize,
}

impl Task for DumpNextTask {
    type Output = Outcome<(Vec<u8>, Vec<f64>)>;
    type JsValue = DumpBatch;

    fn compute(&mut self) -> Result<Self::Output> {
        let (cursor, max_records, max_bytes) = (&self.cursor, self.max_records.max(1), self.max_bytes);
        Ok(catch(|| {
            let mut cursor = lock(cursor);
            let state = cursor
                .as_mut()
                .ok_or_else(|| Failure::native("WAL_CLOSED", "the dump cursor was released"))?;
            if let Some(e) = state.failed.take() {
                return Err(e.into());
            }
            let mut data = Vec::new();
            let mut meta = Vec::new();
            while meta.len() / 5 < max_records && (meta.is_empty() || data.len() < max_bytes) {
                let r = match state.records.next() {
                    None => break,
                    Some(Ok(r)) => r,
                    Some(Err(e)) if meta.is_empty() => return Err(e.into()),
                    Some(Err(e)) => {
                        state.failed = Some(e);
                        break;
                    }
                };
                meta.extend([
                    r.lsn as f64,
                    r.segment as f64,
                    r.offset as f64,
                    data.len() as f64,
                    r.payload.len() as f64,
                ]);
                data.extend_from_slice(&r.payload);
            }
            Ok((data, meta))
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<DumpBatch> {
        let (data, meta) = output.map_err(|f| f.into_js(&env))?;
        if meta.is_empty() {
            return Ok(DumpBatch { data: None, meta: None });
        }
        Ok(DumpBatch {
            data: Some(Buffer::from(data)),
            meta: Some(Float64Array::new(meta)),
        })
    }
}

/// The next records of a cursor, at most `maxRecords` and about `maxBytes` of payload
/// (at least one record). Damage rejects with `WAL_CORRUPTION` (after the records
/// before it have been returned by earlier calls).
#[napi(
    ts_args_type = "cursor: ExternalObject<DumpCursor>, maxRecords: number, maxBytes: number",
    ts_return_type = "Promise<DumpBatch>"
)]
pub fn dump_next(cursor: &External<DumpCursor>, max_records: u32, max_bytes: u32) -> AsyncTask<DumpNextTask> {
    AsyncTask::new(DumpNextTask {
        cursor: Arc::clone(cursor),
        max_records: max_records as usize,
        max_bytes: max_bytes as usize,
    })
}

/// Closes a cursor's files (call when no `dumpNext` is running).
#[napi(ts_args_type = "cursor: ExternalObject<DumpCursor>")]
pub fn dump_release(cursor: &External<DumpCursor>) {
    let released = lock(cursor).take();
    drop(released);
}
