//! napi-rs binding of the segwal engine.
//!
//! Thin on purpose: it converts arguments and results between JavaScript and
//! `segwal_core`, moves blocking engine calls onto the libuv thread pool and
//! forwards the engine's "acks are ready" notification to a JavaScript
//! callback. It knows nothing about the file format; the public surface (names,
//! argument checks, promises) is the TypeScript facade in `lib/`.
//!
//! Everything is a plain function taking an opaque handle (a napi `External`)
//! rather than a `#[napi]` class method: napi-rs tracks borrows of class
//! instances on every method call, which costs more than the append itself
//! (~0.7 µs vs ~0.2 µs per call measured), and it refuses `&mut self` calls
//! while a task started from the instance is in flight.
//!
//! Conventions shared with the facade (`lib/binding.ts`):
//! - every engine error is thrown/rejected as a JS `Error` whose message is
//!   `segwal:` followed by a JSON object `{code, message, file?, offset?,
//!   errno?, osCode?}` (see [`encode_error`]); the facade turns it into a
//!   `WalError`;
//! - a Rust panic never unwinds into Node: every entry point runs inside
//!   [`guard`], which turns a panic into an error with code `WAL_INTERNAL`.

#![deny(clippy::all)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use segwal_core as core;

pub mod inspect;
mod pool;

use pool::{Claim, Pool};

/// Prefix of the message of every error this binding raises.
const ERROR_PREFIX: &str = "segwal:";

/// Numbers per ack event header in [`take_acks`]: partition, kind, a, b,
/// position count.
const ACK_HEADER: usize = 5;
/// Ack event kinds.
const ACK_ACKED: f64 = 0.0;
const ACK_FAILED: f64 = 1.0;
/// Numbers per acknowledged single append: lsn, segment, offset.
const POSITION_WIDTH: usize = 3;
/// Numbers per record in a read batch: lsn, segment, offset, payload start,
/// payload length.
const RECORD_WIDTH: usize = 5;

// ---------------------------------------------------------------------------
// errors and panics

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JSON detail of an engine error (without the prefix).
fn error_json(err: &core::Error) -> String {
    let mut s = format!(
        "{{\"code\":{},\"message\":{}",
        json_string(err.code_str()),
        json_string(&err.message)
    );
    if let Some(file) = &err.file {
        s.push_str(&format!(",\"file\":{}", json_string(file)));
    }
    if let Some(offset) = err.offset {
        s.push_str(&format!(",\"offset\":{offset}"));
    }
    if let Some(errno) = &err.errno {
        s.push_str(&format!(",\"errno\":{}", json_string(errno)));
    }
    if let Some(os_code) = err.os_code {
        s.push_str(&format!(",\"osCode\":{os_code}"));
    }
    s.push('}');
    s
}

/// An engine error as a napi error the facade can decode.
fn encode_error(err: &core::Error) -> Error {
    Error::new(Status::GenericFailure, format!("{ERROR_PREFIX}{}", error_json(err)))
}

/// An error that did not come from the engine (a panic, a bad argument that
/// the facade should have caught).
fn internal_error(code: &str, message: &str) -> Error {
    Error::new(
        Status::GenericFailure,
        format!(
            "{ERROR_PREFIX}{{\"code\":{},\"message\":{}}}",
            json_string(code),
            json_string(message)
        ),
    )
}

fn invalid(message: &str) -> Error {
    internal_error("WAL_INVALID_ARGUMENT", message)
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning a panic into an error so that it never crosses into Node.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(internal_error(
            "WAL_INTERNAL",
            &format!("segwal native panic: {}", panic_message(payload)),
        )),
    }
}

fn engine<T>(result: core::Result<T>) -> Result<T> {
    result.map_err(|e| encode_error(&e))
}

fn partition_arg(partition: u32) -> Result<u16> {
    u16::try_from(partition).map_err(|_| invalid("partition must be an integer from 0 to 65535"))
}

/// A non-negative integer number (LSNs, sizes) as u64.
fn u64_arg(value: f64, name: &str) -> Result<u64> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 9_007_199_254_740_991.0 {
        Ok(value as u64)
    } else {
        Err(invalid(&format!("{name} must be a non-negative safe integer")))
    }
}

// ---------------------------------------------------------------------------
// open

/// `sync` option: 0 = always, 1 = none, 2 = every `interval_ms`.
fn sync_mode(mode: u32, interval_ms: f64) -> Result<core::SyncMode> {
    match mode {
        0 => Ok(core::SyncMode::Always),
        1 => Ok(core::SyncMode::None),
        2 if interval_ms.is_finite() && interval_ms > 0.0 => {
            Ok(core::SyncMode::Interval(Duration::from_secs_f64(interval_ms / 1000.0)))
        }
        2 => Err(invalid("sync.intervalMs must be a positive number")),
        _ => Err(invalid("sync must be 'always', 'none' or { intervalMs }")),
    }
}

pub struct OpenTask {
    dir: String,
    options: Option<core::Options>,
}

impl Task for OpenTask {
    type Output = core::Wal;
    type JsValue = ExternalRef<WalHandle>;

    fn compute(&mut self) -> Result<Self::Output> {
        let options = self.options.take().unwrap_or_default();
        let dir = self.dir.clone();
        guard(|| engine(core::Wal::open(&dir, options)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        ExternalRef::new(
            &env,
            WalHandle {
                wal: Arc::new(output),
                notifier: Arc::new(Mutex::new(None)),
                referenced: AtomicBool::new(false),
                acks: Mutex::new(AckState::default()),
            },
        )
    }
}

/// Opens (creating if needed) the WAL in `dir` on the thread pool; resolves
/// to the handle every other function takes.
#[napi(ts_return_type = "Promise<ExternalObject<WalHandle>>")]
pub fn open(
    dir: String,
    segment_size: f64,
    sync: u32,
    interval_ms: f64,
    preallocate: bool,
    repair: bool,
) -> Result<AsyncTask<OpenTask>> {
    guard(|| {
        let options = core::Options {
            segment_size: u64_arg(segment_size, "segmentSize")?,
            sync: sync_mode(sync, interval_ms)?,
            preallocate,
            repair,
        };
        Ok(AsyncTask::new(OpenTask {
            dir,
            options: Some(options),
        }))
    })
}

// ---------------------------------------------------------------------------
// blocking calls run on the thread pool

/// Waits for an enqueued `sync()` or `truncate_after()` to complete.
pub struct WaitTask {
    pending: Option<core::Pending>,
}

impl Task for WaitTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(pending) => guard(|| engine(pending.wait())),
            None => Ok(()),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

pub struct CloseTask {
    wal: Arc<core::Wal>,
}

impl Task for CloseTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        let wal = &self.wal;
        guard(|| engine(wal.close()))
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// Result of `purgeBefore`.
#[napi(object)]
pub struct PurgeResult {
    pub segments_deleted: f64,
    pub bytes_freed: f64,
    pub first_lsn: f64,
}

pub struct PurgeTask {
    wal: Arc<core::Wal>,
    partition: u16,
    min_lsn: u64,
}

impl Task for PurgeTask {
    type Output = core::PurgeResult;
    type JsValue = PurgeResult;

    fn compute(&mut self) -> Result<Self::Output> {
        let (wal, partition, min_lsn) = (&self.wal, self.partition, self.min_lsn);
        guard(|| engine(wal.purge_before(partition, min_lsn)))
    }

    fn resolve(&mut self, _env: Env, r: Self::Output) -> Result<PurgeResult> {
        Ok(PurgeResult {
            segments_deleted: r.segments_deleted as f64,
            bytes_freed: r.bytes_freed as f64,
            first_lsn: r.first_lsn as f64,
        })
    }
}

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

// ---------------------------------------------------------------------------
// inspection results

/// One segment file of a partition.
#[napi(object)]
pub struct SegmentInfo {
    pub index: f64,
    pub file: String,
    pub first_lsn: f64,
    pub last_lsn: f64,
    pub bytes: f64,
    pub active: bool,
}

/// Per-partition part of [`WalStats`].
#[napi(object)]
pub struct PartitionStats {
    pub partition: u32,
    pub first_lsn: f64,
    pub last_lsn: f64,
    pub segments: f64,
    pub bytes: f64,
}

/// Result of `stats()`.
#[napi(object)]
pub struct WalStats {
    pub partitions: Vec<PartitionStats>,
    pub appends: f64,
    pub batches: f64,
    pub syncs: f64,
    pub bytes_written: f64,
}

// ---------------------------------------------------------------------------
// the open WAL

/// The notifier: a weak (unref'd) threadsafe function calling the facade's
/// ack callback with no arguments.
type Notifier = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Acks taken from the engine but not yet handed to JavaScript.
#[derive(Default)]
struct AckState {
    /// Encoded acks, from `at` on.
    staged: Vec<f64>,
    at: usize,
    /// Errors of the failed events handed out so far, in order.
    errors: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open WAL, behind the opaque handle [`open`] resolves to. Dropped (and
/// the engine with it) when JavaScript collects the handle.
pub struct WalHandle {
    wal: Arc<core::Wal>,
    /// Shared with the closure given to the engine; emptied by
    /// `releaseNotifier` so the threadsafe function is released on close.
    notifier: Arc<Mutex<Option<Notifier>>>,
    /// Whether the notifier currently keeps the event loop alive.
    referenced: AtomicBool,
    acks: Mutex<AckState>,
}

/// Registers `callback`, called (coalesced, on the JS thread) whenever
/// `takeAcks` has news. It does not keep the process alive until
/// `setRef(handle, true)`.
#[napi]
pub fn set_notifier(handle: &External<WalHandle>, callback: Function<(), ()>) -> Result<()> {
    guard(|| {
        let tsfn: Notifier = callback
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        *lock(&handle.notifier) = Some(tsfn);
        handle.referenced.store(false, Ordering::Relaxed);
        let slot = Arc::clone(&handle.notifier);
        handle.wal.set_notifier(Arc::new(move || {
            if let Some(tsfn) = lock(&slot).as_ref() {
                tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }));
        Ok(())
    })
}

/// Makes the notifier keep the event loop alive (`true`, while appends are in
/// flight) or not (`false`).
#[napi]
pub fn set_ref(env: Env, handle: &External<WalHandle>, on: bool) -> Result<()> {
    guard(|| {
        if on == handle.referenced.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(tsfn) = lock(&handle.notifier).as_ref() {
            let raw = tsfn.raw();
            // SAFETY: called on the JS thread with its env; `raw` is alive while
            // the slot holds the threadsafe function.
            let status = unsafe {
                if on {
                    napi::sys::napi_ref_threadsafe_function(env.raw(), raw)
                } else {
                    napi::sys::napi_unref_threadsafe_function(env.raw(), raw)
                }
            };
            if status != napi::sys::Status::napi_ok {
                return Err(internal_error("WAL_INTERNAL", "could not (un)ref the ack notifier"));
            }
            handle.referenced.store(on, Ordering::Relaxed);
        }
        Ok(())
    })
}

/// Releases the notifier (after close): no more callbacks.
#[napi]
pub fn release_notifier(handle: &External<WalHandle>) -> Result<()> {
    guard(|| {
        let tsfn = lock(&handle.notifier).take();
        handle.referenced.store(false, Ordering::Relaxed);
        drop(tsfn);
        Ok(())
    })
}

/// Copies pending ack events into `out` and returns how many numbers it
/// wrote; 0 means no more news. An event is never split: when the next one
/// does not fit at all, returns minus the size `out` needs.
///
/// Encoding, per event: `partition, kind, a, b, n` then `n` times `lsn,
/// segment, offset`.
/// - kind 0, acknowledged: `a` = through LSN, `b` = truncate generation of
///   the appends, `n` positions of single appends in LSN order;
/// - kind 1, failed: `a` = first failed LSN, `b` = 0, `n` = 0; its error is
///   the next one of `takeAckErrors()` (same order as the failed events).
#[napi]
pub fn take_acks(handle: &External<WalHandle>, mut out: Float64ArraySlice) -> Result<i32> {
    // SAFETY: the facade's own array, not shared with another thread, and only
    // written during this synchronous call.
    let out = unsafe { out.as_mut() };
    guard(|| {
        let mut state = lock(&handle.acks);
        let AckState { staged, at, errors } = &mut *state;
        if *at >= staged.len() {
            staged.clear();
            *at = 0;
            for ack in handle.wal.take_acks() {
                let partition = f64::from(ack.partition);
                for event in ack.events {
                    match event {
                        core::AckEvent::Acked {
                            through_lsn,
                            positions,
                            generation,
                        } => {
                            staged.extend_from_slice(&[
                                partition,
                                ACK_ACKED,
                                through_lsn as f64,
                                generation as f64,
                                positions.len() as f64,
                            ]);
                            for p in &positions {
                                staged.extend_from_slice(&[p.lsn as f64, p.segment as f64, p.offset as f64]);
                            }
                        }
                        core::AckEvent::Failed { first_lsn, error } => {
                            staged.extend_from_slice(&[partition, ACK_FAILED, first_lsn as f64, 0.0, 0.0]);
                            errors.push(error_json(&error));
                        }
                    }
                }
            }
        }
        let mut written = 0;
        while *at < staged.len() {
            let from = *at;
            let len = ACK_HEADER + staged[from + 4] as usize * POSITION_WIDTH;
            if written + len > out.len() {
                if written == 0 {
                    return Ok(-(len as i32));
                }
                break;
            }
            out[written..written + len].copy_from_slice(&staged[from..from + len]);
            written += len;
            *at += len;
        }
        Ok(written as i32)
    })
}

/// The errors of the failed events `takeAcks` handed out, in the same order,
/// as encoded error details (JSON, without the prefix); clears them.
#[napi]
pub fn take_ack_errors(handle: &External<WalHandle>) -> Vec<String> {
    std::mem::take(&mut lock(&handle.acks).errors)
}

/// What recovery cut at open: `partition, segment, truncatedBytes` per entry.
#[napi]
pub fn recovery(handle: &External<WalHandle>) -> Result<Vec<f64>> {
    guard(|| {
        let mut out = Vec::new();
        for t in handle.wal.recovery() {
            out.push(f64::from(t.partition));
            out.push(t.segment as f64);
            out.push(t.truncated_bytes as f64);
        }
        Ok(out)
    })
}

/// Appends one record (Buffer or Uint8Array); returns its LSN.
#[napi]
pub fn append(handle: &External<WalHandle>, partition: u32, payload: &[u8]) -> Result<f64> {
    guard(|| {
        let partition = partition_arg(partition)?;
        Ok(engine(handle.wal.append(partition, payload))? as f64)
    })
}

/// Appends `count` single records laid end to end in `data`, record `i`
/// (`lengths[i]` bytes) to partition `partitions[i]`, in order: the facade
/// stages the appends of one tick and hands them over in one crossing.
/// Writes each record's LSN to `lsns[i]`, or `-(k + 1)` when it failed with
/// the `k`-th of the returned errors (encoded details); returns `null` when
/// none failed.
#[napi]
pub fn append_many(
    handle: &External<WalHandle>,
    data: &[u8],
    lengths: &[u32],
    partitions: &[u16],
    count: u32,
    mut lsns: Float64ArraySlice,
) -> Result<Option<Vec<String>>> {
    // SAFETY: the facade's own array, only written during this synchronous call.
    let lsns = unsafe { lsns.as_mut() };
    guard(|| {
        let count = count as usize;
        if count > lengths.len() || count > partitions.len() || count > lsns.len() {
            return Err(invalid("appendMany: count exceeds the arrays"));
        }
        let mut errors: Option<Vec<String>> = None;
        let mut at = 0usize;
        for (i, &len) in lengths[..count].iter().enumerate() {
            let end = at
                .checked_add(len as usize)
                .filter(|&end| end <= data.len())
                .ok_or_else(|| invalid("appendMany: lengths exceed the data"))?;
            lsns[i] = match handle.wal.append(partitions[i], &data[at..end]) {
                Ok(lsn) => lsn as f64,
                Err(e) => {
                    let errors = errors.get_or_insert_with(Vec::new);
                    errors.push(error_json(&e));
                    -(errors.len() as f64)
                }
            };
            at = end;
        }
        Ok(errors)
    })
}

/// Appends one record given as a string (stored as UTF-8); returns its LSN.
#[napi]
pub fn append_string(handle: &External<WalHandle>, partition: u32, payload: String) -> Result<f64> {
    guard(|| {
        let partition = partition_arg(partition)?;
        Ok(engine(handle.wal.append(partition, payload.as_bytes()))? as f64)
    })
}

/// Appends the Uint8Arrays of `parts` as one atomic batch; returns the first
/// LSN. The engine copies each part once, straight from JavaScript's memory
/// (joining them first cost a fresh buffer, its page faults and a copy).
#[napi(ts_args_type = "handle: ExternalObject<WalHandle>, partition: number, parts: Uint8Array[]")]
pub fn append_batch(handle: &External<WalHandle>, partition: u32, parts: Array) -> Result<f64> {
    guard(|| {
        let partition = partition_arg(partition)?;
        let mut payloads: Vec<&[u8]> = Vec::with_capacity(parts.len() as usize);
        for i in 0..parts.len() {
            let part: Option<&[u8]> = parts
                .get(i)
                .map_err(|_| invalid(&format!("payloads[{i}]: not a Uint8Array")))?;
            payloads.push(part.ok_or_else(|| invalid(&format!("payloads[{i}]: missing")))?);
        }
        let (first, _last) = engine(handle.wal.append_batch(partition, &payloads))?;
        Ok(first as f64)
    })
}

/// Makes everything appended so far durable.
#[napi(ts_return_type = "Promise<void>")]
pub fn sync(handle: &External<WalHandle>) -> Result<AsyncTask<WaitTask>> {
    guard(|| {
        Ok(AsyncTask::new(WaitTask {
            pending: Some(handle.wal.sync()),
        }))
    })
}

/// Removes every record above `lsn`; enqueued now (ordered with appends),
/// awaited on the thread pool.
#[napi(ts_return_type = "Promise<void>")]
pub fn truncate_after(handle: &External<WalHandle>, partition: u32, lsn: f64) -> Result<AsyncTask<WaitTask>> {
    guard(|| {
        let partition = partition_arg(partition)?;
        let lsn = u64_arg(lsn, "lsn")?;
        let pending = engine(handle.wal.truncate_after(partition, lsn))?;
        Ok(AsyncTask::new(WaitTask { pending: Some(pending) }))
    })
}

/// Deletes the old segments wholly below `minLsn`.
#[napi(ts_return_type = "Promise<PurgeResult>")]
pub fn purge_before(handle: &External<WalHandle>, partition: u32, min_lsn: f64) -> Result<AsyncTask<PurgeTask>> {
    guard(|| {
        Ok(AsyncTask::new(PurgeTask {
            wal: Arc::clone(&handle.wal),
            partition: partition_arg(partition)?,
            min_lsn: u64_arg(min_lsn, "minLsn")?,
        }))
    })
}

/// Completes pending appends, makes them durable and releases the lock.
#[napi(ts_return_type = "Promise<void>")]
pub fn close(handle: &External<WalHandle>) -> AsyncTask<CloseTask> {
    AsyncTask::new(CloseTask {
        wal: Arc::clone(&handle.wal),
    })
}

/// First retained LSN of the partition (0 if none).
#[napi]
pub fn first_lsn(handle: &External<WalHandle>, partition: u32) -> Result<f64> {
    guard(|| Ok(engine(handle.wal.first_lsn(partition_arg(partition)?))? as f64))
}

/// Last acknowledged LSN of the partition (0 if none).
#[napi]
pub fn last_lsn(handle: &External<WalHandle>, partition: u32) -> Result<f64> {
    guard(|| Ok(engine(handle.wal.last_lsn(partition_arg(partition)?))? as f64))
}

/// Known partitions, ascending.
#[napi]
pub fn partitions(handle: &External<WalHandle>) -> Result<Vec<u32>> {
    guard(|| {
        let mut parts: Vec<u32> = engine(handle.wal.partitions())?.into_iter().map(u32::from).collect();
        parts.sort_unstable();
        Ok(parts)
    })
}

/// Segments of a partition, oldest first.
#[napi]
pub fn segments(handle: &External<WalHandle>, partition: u32) -> Result<Vec<SegmentInfo>> {
    guard(|| {
        let segments = engine(handle.wal.segments(partition_arg(partition)?))?;
        Ok(segments
            .into_iter()
            .map(|s| SegmentInfo {
                index: s.index as f64,
                file: s.file,
                first_lsn: s.first_lsn as f64,
                last_lsn: s.last_lsn as f64,
                bytes: s.bytes as f64,
                active: s.active,
            })
            .collect())
    })
}

/// Counters and per-partition totals.
#[napi]
pub fn stats(handle: &External<WalHandle>) -> Result<WalStats> {
    guard(|| {
        let s = engine(handle.wal.stats())?;
        Ok(WalStats {
            partitions: s
                .partitions
                .into_iter()
                .map(|p| PartitionStats {
                    partition: u32::from(p.partition),
                    first_lsn: p.first_lsn as f64,
                    last_lsn: p.last_lsn as f64,
                    segments: p.segments as f64,
                    bytes: p.bytes as f64,
                })
                .collect(),
            appends: s.appends as f64,
            batches: s.batches as f64,
            syncs: s.syncs as f64,
            bytes_written: s.bytes_written as f64,
        })
    })
}

/// Opens a reader on the thread pool: from `fromLsn` (0 = start of the
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
