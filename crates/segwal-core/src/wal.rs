//! The WAL: directory lock, the partitions, the public operations.

use std::any::Any;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, ErrorCode, Result};
use crate::format::{self, FRAME_OVERHEAD, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, OsFs};
use crate::handles::ReadHandles;
use crate::options::{Options, SyncMode, Truncation, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE};
use crate::partition::{AckEvent, Done, Item, PState, Partition, PurgeResult, Rec, Reply, STAGE_CAP};

use crate::reader::{Reader, Start};
use crate::recovery;

/// Writer threads; a partition is handled by one at a time, so different partitions
/// fsync in parallel while each one's appends share its fsync.
const WORKERS: usize = 4;
/// What `stage_many` reserves beyond a run's cap (see `PState::frames_mut`): the facade
/// stages records up to 64 KiB, so the frame crossing the cap fits without a regrowth.
const STAGE_SLACK: usize = 64 * 1024 + FRAME_OVERHEAD;

#[derive(Debug, Clone)]
pub struct Ack {
    pub partition: u16,
    pub events: Vec<AckEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub index: u64,
    pub file: String,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub bytes: u64,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    pub partition: u16,
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub segments: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub partitions: Vec<PartitionStats>,
    pub appends: u64,
    pub batches: u64,
    pub syncs: u64,
    pub bytes_written: u64,
}

pub(crate) type Notifier = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct Counters {
    pub appends: AtomicU64,
    pub batches: AtomicU64,
    pub syncs: AtomicU64,
    pub bytes_written: AtomicU64,
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub fs: Arc<dyn Fs>,
    pub opts: Options,
    pub parts: Box<[OnceLock<Arc<Partition>>]>,
    pub closed: AtomicBool,
    /// Set by a failed fdatasync: the state of unsynced data is unknown from then on,
    /// so nothing may be acknowledged again until the WAL is reopened.
    pub poisoned: Mutex<Option<Error>>,
    pub is_poisoned: AtomicBool,
    pub counters: Counters,
    /// Writer rounds so far (orders parked segments by last use).
    pub rounds: AtomicU64,
    /// Segment files opened by writers since `close_idle_files` last ran.
    pub files_opened: std::sync::atomic::AtomicUsize,
    /// Read descriptors shared by all readers (see handles.rs).
    pub read_handles: Arc<ReadHandles>,
    /// Writers gather rounds (see `Inner::gather`): writer threads with `SyncMode::Always`
    /// (a driven WAL's steps must not wait on the clock).
    pub gathers: bool,
    sched: Mutex<Sched>,
    sched_cv: Condvar,
    /// Wakes the interval syncer at close (kept apart from `sched_cv`, whose
    /// `notify_one` must always reach a writer).
    stop_cv: Condvar,
    acks_dirty: Mutex<Vec<u16>>,
    /// Acks recorded that the notifier has not been told of (see `announce`).
    acks_unannounced: AtomicBool,
    ack_signalled: AtomicBool,
    notifier: Mutex<Option<Notifier>>,
    recovery: Vec<Truncation>,
    lock: Mutex<Option<Box<dyn Any + Send + Sync>>>,
    /// Writer threads still running (0 for a driven WAL): the last one to stop finishes
    /// the close, so that nothing touches the directory once its lock is released.
    live_writers: AtomicUsize,
    /// The close's outcome and its caller's reply, from when every partition is synced
    /// until the writers have stopped.
    closing: Mutex<Option<(Result<()>, Reply<()>)>>,
    finished: AtomicBool,
}

struct Sched {
    ready: VecDeque<Arc<Partition>>,
    stop: bool,
    /// Writers parked on `sched_cv`: only they need a (syscall) wake-up.
    sleepers: usize,
}

impl Sched {
    /// Whether a partition just pushed needs a parked writer woken: not when none is
    /// parked (a busy one looks at the queue before it parks), which saves the caller a
    /// futex syscall per crossing while the writers are busy.
    fn wake_for_push(&self) -> bool {
        self.sleepers > 0
    }
}

/// An operation queued behind earlier appends. The writer completes it; the caller
/// waits for it (`wait`), polls it (`poll`, as the simulator does) or hands it a
/// callback (`then`, as the Node binding does: no thread is parked on it).
#[must_use = "the operation runs anyway; its result is only seen through the Pending"]
pub struct Pending<T = ()>(PendingInner<T>);

enum PendingInner<T> {
    Ready(Option<Result<T>>),
    Queued(Arc<Done<T>>),
}

impl<T: Send + 'static> Pending<T> {
    fn ready(r: Result<T>) -> Pending<T> {
        Pending(PendingInner::Ready(Some(r)))
    }

    fn queued(done: Arc<Done<T>>) -> Pending<T> {
        Pending(PendingInner::Queued(done))
    }

    /// Blocks until the operation is complete.
    pub fn wait(self) -> Result<T> {
        match self.0 {
            PendingInner::Ready(r) => r.unwrap_or_else(|| Err(taken())),
            PendingInner::Queued(d) => d.wait(),
        }
    }

    /// The result once the operation is complete; `None` before (and after it was taken).
    pub fn poll(&mut self) -> Option<Result<T>> {
        match &mut self.0 {
            PendingInner::Ready(r) => r.take(),
            PendingInner::Queued(d) => d.poll(),
        }
    }

    /// Runs `f` with the result: at once if it is there, else on the engine thread that
    /// completes the operation (so `f` must be quick and must not block).
    pub fn then(self, f: impl FnOnce(Result<T>) + Send + 'static) {
        match self.0 {
            PendingInner::Ready(r) => f(r.unwrap_or_else(|| Err(taken()))),
            PendingInner::Queued(d) => d.then(Box::new(f)),
        }
    }
}

fn taken() -> Error {
    Error::new(ErrorCode::Io, "internal error: the result was already taken")
}

pub struct Wal {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Wal {
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Wal> {
        Wal::open_with(dir, opts, Arc::new(OsFs))
    }

    /// Opens through another file system (tests inject faults and power loss).
    pub fn open_with(dir: impl AsRef<Path>, opts: Options, fs: Arc<dyn Fs>) -> Result<Wal> {
        let inner = Inner::open(dir.as_ref(), opts, fs, true)?;
        let wal = Wal {
            inner: inner.clone(),
            threads: Mutex::new(Vec::new()),
        };
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            inner.live_writers.fetch_add(1, Ordering::SeqCst);
            let t = std::thread::Builder::new().name(format!("segwal-writer-{i}")).spawn({
                let inner = inner.clone();
                move || inner.worker_loop()
            });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    inner.live_writers.fetch_sub(1, Ordering::SeqCst);
                    *wal.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
                    return Err(Error::io(&e, "starting a writer thread")); // `wal` drops: closes
                }
            }
        }
        if let SyncMode::Interval(period) = inner.opts.sync {
            let t = std::thread::Builder::new().name("segwal-syncer".into()).spawn({
                let inner = inner.clone();
                move || inner.interval_loop(period)
            });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    *wal.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
                    return Err(Error::io(&e, "starting the sync thread"));
                }
            }
        }
        *wal.threads.lock().unwrap_or_else(|p| p.into_inner()) = threads;
        Ok(wal)
    }

    /// Opens without starting any thread: the caller runs the writers' rounds, the
    /// interval syncer's ticks and everything else through the returned [`Driver`], in
    /// whatever order it likes (the deterministic simulator picks it from a seed).
    /// Nothing is written and nothing is acknowledged until the driver runs.
    pub fn open_driven(dir: impl AsRef<Path>, opts: Options, fs: Arc<dyn Fs>) -> Result<(Wal, Driver)> {
        let inner = Inner::open(dir.as_ref(), opts, fs, false)?;
        let wal = Wal {
            inner: inner.clone(),
            threads: Mutex::new(Vec::new()),
        };
        Ok((wal, Driver { inner }))
    }

    /// Called (from engine threads, at most once until `take_acks` runs) when there are
    /// acknowledgements to take.
    pub fn set_notifier(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *self.inner.notifier.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    pub fn recovery(&self) -> Vec<Truncation> {
        self.inner.recovery.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Stages one record; returns its LSN. The acknowledgement comes through `take_acks`,
    /// with the record's position.
    pub fn append(&self, partition: u16, payload: &[u8]) -> Result<u64> {
        self.stage(partition, payload, None)
    }

    /// Stages one record whose caller holds no promise (it learns of the record from the
    /// ack counts alone, so no position is reported). With `expected_lsn` the record is
    /// staged only if it gets exactly that LSN: a caller that hands LSNs out before they
    /// reach the engine can never have told its user a different one.
    pub fn write(&self, partition: u16, payload: &[u8], expected_lsn: Option<u64>) -> Result<u64> {
        self.stage(partition, payload, Some(expected_lsn))
    }

    /// The LSN the next record staged on `partition` gets.
    pub fn next_lsn(&self, partition: u16) -> Result<u64> {
        self.inner.check_open()?;
        Ok(self.inner.parts[partition as usize]
            .get()
            .map_or(1, |p| p.lock().next_lsn))
    }

    /// The largest payload one record may have (a larger one is `RecordTooLarge`).
    pub fn max_payload(&self) -> u64 {
        let room = (self.inner.opts.segment_size - SEGMENT_HEADER_LEN as u64).min(format::MAX_PAYLOAD_LEN);
        let mut n = room.saturating_sub(FRAME_OVERHEAD as u64);
        while n > 0 && format::frame_len(n as usize) as u64 > room {
            n -= 1;
        }
        n
    }

    /// Stages records laid end to end in `data` (record `i`: `lens[i]` bytes, to
    /// partition `parts[i]`), in order, locking each partition once per run of its
    /// records. `lsns[i]` is 0 for an append, or the LSN a written record must get
    /// (see `write`); each becomes the record's LSN, or 0 when it failed with the error
    /// returned for it.
    pub fn stage_many(&self, data: &[u8], lens: &[u32], parts: &[u16], lsns: &mut [u64]) -> Vec<(usize, Error)> {
        let n = lens.len().min(parts.len()).min(lsns.len());
        let mut errors = Vec::new();
        // A frame no larger than this fits an empty segment (see `check_record_fits`).
        let room = (self.inner.opts.segment_size - SEGMENT_HEADER_LEN as u64)
            .min(format::MAX_PAYLOAD_LEN + FRAME_OVERHEAD as u64);
        let mut at = 0usize;
        let mut i = 0;
        while i < n {
            let id = parts[i];
            let run = i + parts[i..n].iter().take_while(|&&q| q == id).count();
            let p = self.inner.partition(id);
            let mut st = p.lock();
            let writable = self.inner.check_writable(&st);
            // Frame bytes of the run not staged yet: reserved in one go, so that staging
            // a tick's records neither regrows nor copies the run's buffer.
            let mut left: usize = lens[i..run].iter().map(|&l| format::frame_len(l as usize)).sum();
            let mut staged = 0;
            for k in i..run {
                let len = lens[k] as usize;
                let end = at + len;
                let flen = format::frame_len(len);
                let expected = lsns[k];
                // The common case inline: a record that fits, at the LSN it must get.
                let fast = writable.is_ok()
                    && end <= data.len()
                    && flen as u64 <= room
                    && (expected == 0 || expected == st.next_lsn);
                let r = if fast {
                    let lsn = st.next_lsn;
                    st.next_lsn += 1;
                    st.unsettled += 1;
                    st.unsettled_bytes += len as u64;
                    let f = st.frames_mut();
                    if f.buf.capacity() - f.buf.len() < flen {
                        // Up to where `frames_mut` starts a new run, and the frame that crosses it.
                        let to_cap = STAGE_CAP.saturating_sub(f.buf.len()) + STAGE_SLACK;
                        f.buf.reserve(left.min(to_cap).max(flen));
                    }
                    if f.recs.capacity() == f.recs.len() {
                        let to_cap = STAGE_CAP.saturating_sub(f.buf.len()) / FRAME_OVERHEAD + 1;
                        f.recs.reserve((run - k).min(to_cap));
                    }
                    format::push_frame(&mut f.buf, lsn, 0, &data[at..end]);
                    f.recs.push(Rec {
                        lsn,
                        frame_len: flen as u32,
                        batch_left: 0,
                        payload_len: len as u32,
                        single: expected == 0,
                    });
                    Ok(lsn)
                } else {
                    match (&writable, data.get(at..end)) {
                        (Err(e), _) => Err(e.clone()),
                        (Ok(()), None) => Err(Error::invalid("record lengths exceed the staged data")),
                        (Ok(()), Some(payload)) => {
                            let write = (expected != 0).then_some(Some(expected));
                            self.stage_locked(&mut st, id, payload, write)
                        }
                    }
                };
                left -= flen;
                at = end;
                match r {
                    Ok(lsn) => {
                        lsns[k] = lsn;
                        staged += 1;
                    }
                    Err(e) => {
                        lsns[k] = 0;
                        errors.push((k, e));
                    }
                }
            }
            if staged > 0 {
                self.inner.counters.appends.fetch_add(staged, Ordering::Relaxed);
                self.inner.schedule(&p, st);
            }
            i = run;
        }
        errors
    }

    /// `write` is `Some(expected)`: a written record; `None`: an append.
    fn stage(&self, partition: u16, payload: &[u8], write: Option<Option<u64>>) -> Result<u64> {
        // A record too large for any segment is refused as such whatever the WAL's
        // state (as `append_batch` does): the caller's argument is wrong, not the disk.
        self.inner
            .check_record_fits(format::frame_len(payload.len()) as u64, "payload")?;
        let p = self.inner.partition(partition);
        let mut st = p.lock();
        self.inner.check_writable(&st)?;
        let lsn = self.stage_locked(&mut st, partition, payload, write)?;
        self.inner.schedule(&p, st);
        self.inner.counters.appends.fetch_add(1, Ordering::Relaxed);
        Ok(lsn)
    }

    /// One record into the partition's staging, its lock held and writability checked.
    fn stage_locked(&self, st: &mut PState, partition: u16, payload: &[u8], write: Option<Option<u64>>) -> Result<u64> {
        let frame_len = format::frame_len(payload.len());
        self.inner.check_record_fits(frame_len as u64, "payload")?;
        let lsn = st.next_lsn;
        if let Some(Some(expected)) = write {
            if expected != lsn {
                return Err(Error::new(
                    ErrorCode::Io,
                    format!(
                        "internal error: record expected LSN {expected} of partition {partition}, the next is {lsn}"
                    ),
                ));
            }
        }
        st.next_lsn += 1;
        st.unsettled += 1;
        st.unsettled_bytes += payload.len() as u64;
        let f = st.frames_mut();
        format::push_frame(&mut f.buf, lsn, 0, payload);
        f.recs.push(Rec {
            lsn,
            frame_len: frame_len as u32,
            batch_left: 0,
            payload_len: payload.len() as u32,
            single: write.is_none(),
        });
        Ok(lsn)
    }

    /// Stages a batch that will be in one segment and survive a crash whole or not at all.
    pub fn append_batch(&self, partition: u16, payloads: &[&[u8]]) -> Result<(u64, u64)> {
        if payloads.is_empty() {
            return Err(Error::invalid("payloads must hold at least one record"));
        }
        let total: u64 = payloads.iter().map(|x| format::frame_len(x.len()) as u64).sum();
        self.inner.check_record_fits(total, "payloads")?;
        let n = payloads.len() as u64;
        let p = self.inner.partition(partition);
        let mut st = p.lock();
        self.inner.check_writable(&st)?;
        let first = st.next_lsn;
        st.next_lsn += n;
        st.unsettled += n;
        st.unsettled_bytes += payloads.iter().map(|x| x.len() as u64).sum::<u64>();
        let f = st.frames_mut();
        f.buf.reserve(total as usize);
        for (i, payload) in payloads.iter().enumerate() {
            let lsn = first + i as u64;
            let left = (payloads.len() - 1 - i) as u32;
            format::push_frame(&mut f.buf, lsn, left, payload);
            f.recs.push(Rec {
                lsn,
                frame_len: format::frame_len(payload.len()) as u32,
                batch_left: left,
                payload_len: payload.len() as u32,
                single: false,
            });
        }
        self.inner.schedule(&p, st);
        self.inner.counters.appends.fetch_add(n, Ordering::Relaxed);
        self.inner.counters.batches.fetch_add(1, Ordering::Relaxed);
        Ok((first, first + n - 1))
    }

    /// Everything acknowledged or failed since the last call, per partition, in order.
    pub fn take_acks(&self) -> Vec<Ack> {
        self.inner.ack_signalled.store(false, Ordering::SeqCst);
        let ids = std::mem::take(&mut *self.inner.acks_dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = self.inner.parts[id as usize].get() {
                let mut st = p.lock();
                let events = std::mem::take(&mut st.events);
                if events.iter().any(|e| matches!(e, AckEvent::Failed { .. })) {
                    st.failure_unreported = false;
                }
                if !events.is_empty() {
                    out.push(Ack { partition: id, events });
                }
            }
        }
        out
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Pending {
        if let Err(e) = self.inner.check_open() {
            return Pending::ready(Err(e));
        }
        self.inner.sync_everywhere()
    }

    /// Removes every record above `lsn`; the next append gets `lsn + 1`.
    pub fn truncate_after(&self, partition: u16, lsn: u64) -> Result<Pending> {
        self.inner.check_open()?;
        let Some(p) = self.inner.parts[partition as usize].get().cloned() else {
            return if lsn == 0 {
                Ok(Pending::ready(Ok(())))
            } else {
                Err(lsn_out_of_range(lsn, 0))
            };
        };
        let mut st = p.lock();
        self.inner.check_writable(&st)?;
        let last = st.next_lsn - 1;
        if lsn > last {
            return Err(lsn_out_of_range(lsn, last));
        }
        if lsn != 0 && lsn + 1 < st.log_start {
            return Err(Error::new(
                ErrorCode::LsnPurged,
                format!(
                    "lsn {lsn} is below the first retained LSN {} of partition {partition}",
                    st.log_start
                ),
            ));
        }
        let done = Done::new();
        st.next_lsn = lsn + 1;
        st.queue.push_back(Item::Truncate(lsn, Reply::new(done.clone())));
        self.inner.schedule(&p, st);
        Ok(Pending::queued(done))
    }

    /// Deletes the oldest segments whose records are all below `min_lsn` (never the active one).
    pub fn purge_before(&self, partition: u16, min_lsn: u64) -> Result<Pending<PurgeResult>> {
        self.inner.check_open()?;
        let Some(p) = self.inner.parts[partition as usize].get().cloned() else {
            return Ok(Pending::ready(Ok(PurgeResult::default())));
        };
        let done = Done::new();
        let st = p.lock();
        let mut st = st;
        st.queue.push_back(Item::Purge(min_lsn, Reply::new(done.clone())));
        self.inner.schedule(&p, st);
        Ok(Pending::queued(done))
    }

    /// Completes and syncs what was appended, stops the writers, releases the lock;
    /// blocks until then. Closing twice is fine.
    pub fn close(&self) -> Result<()> {
        let r = self.close_pending().wait();
        for t in std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner())) {
            let _ = t.join();
        }
        r
    }

    /// `close` without blocking: every later call fails with `WAL_CLOSED` at once, and
    /// the returned operation completes once the appends made before are synced, the
    /// writers have stopped and the lock is released (a second close completes at once).
    /// On a poisoned WAL it completes with the poisoning error, after releasing everything.
    pub fn close_pending(&self) -> Pending {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Pending::ready(Ok(()));
        }
        let done = Done::new();
        let reply = Reply::new(done.clone());
        let inner = self.inner.clone();
        self.inner.sync_everywhere().then(move |r| inner.stop_writers(r, reply));
        if self.inner.live_writers.load(Ordering::SeqCst) == 0 {
            // No partition to sync, or no writer thread (a driven WAL): nothing else would.
            self.inner.finish_close_if_stopped();
        }
        Pending::queued(done)
    }

    pub fn first_lsn(&self, partition: u16) -> Result<u64> {
        self.inner.check_open()?;
        Ok(self.inner.parts[partition as usize]
            .get()
            .map_or(0, |p| p.lock().first_retained()))
    }

    pub fn last_lsn(&self, partition: u16) -> Result<u64> {
        self.inner.check_open()?;
        Ok(self.inner.parts[partition as usize]
            .get()
            .map_or(0, |p| p.lock().acked_lsn))
    }

    pub fn partitions(&self) -> Result<Vec<u16>> {
        self.inner.check_open()?;
        Ok(self
            .inner
            .parts
            .iter()
            .filter_map(|s| s.get())
            .filter(|p| !p.lock().segs.is_empty())
            .map(|p| p.id)
            .collect())
    }

    pub fn segments(&self, partition: u16) -> Result<Vec<SegmentInfo>> {
        self.inner.check_open()?;
        let Some(p) = self.inner.parts[partition as usize].get() else {
            return Ok(Vec::new());
        };
        let st = p.lock();
        let n = st.segs.len();
        Ok(st
            .segs
            .iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                index: s.index,
                file: format::segment_file_name(partition, s.index),
                first_lsn: s.first_lsn,
                last_lsn: s.last_lsn,
                bytes: s.bytes,
                active: i + 1 == n,
            })
            .collect())
    }

    /// Bytes of emptied staging buffers the partitions keep for their next appends (for
    /// tests of the memory bound).
    #[doc(hidden)]
    pub fn kept_staging_bytes(&self) -> usize {
        self.inner
            .parts
            .iter()
            .filter_map(|s| s.get())
            .map(|p| p.lock().free_frames.as_ref().map_or(0, |f| f.buf.capacity()))
            .sum()
    }

    pub fn stats(&self) -> Result<Stats> {
        self.inner.check_open()?;
        let mut partitions = Vec::new();
        for p in self.inner.parts.iter().filter_map(|s| s.get()) {
            let st = p.lock();
            if st.segs.is_empty() {
                continue;
            }
            partitions.push(PartitionStats {
                partition: p.id,
                first_lsn: st.first_retained(),
                last_lsn: st.acked_lsn,
                segments: st.segs.len() as u64,
                bytes: st.bytes(),
            });
        }
        let c = &self.inner.counters;
        Ok(Stats {
            partitions,
            appends: c.appends.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
        })
    }

    /// A reader positioned at `start`; may read the disk to check the position.
    pub fn reader(&self, partition: u16, start: Start) -> Result<Reader> {
        self.inner.check_open()?;
        let p = self.inner.partition(partition);
        Reader::new(
            self.inner.fs.clone(),
            self.inner.dir.clone(),
            self.inner.read_handles.clone(),
            p,
            start,
        )
    }
}

impl Drop for Wal {
    /// Closes; a driven WAL only starts closing (its driver may go on running it).
    fn drop(&mut self) {
        if self.threads.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            let _ = self.close_pending();
        } else {
            let _ = self.close();
        }
    }
}

/// The engine's threads as functions, for a WAL opened with [`Wal::open_driven`]: the
/// caller decides which partition's writer runs its next round and when the interval
/// syncer ticks (readers and `take_acks` are steps of their own already).
pub struct Driver {
    inner: Arc<Inner>,
}

impl Driver {
    /// Partitions with work queued, in the order they became ready.
    pub fn ready(&self) -> Vec<u16> {
        let s = self.inner.sched.lock().unwrap_or_else(|p| p.into_inner());
        s.ready.iter().map(|p| p.id).collect()
    }

    /// Runs one writer round of `partition` if it is ready (see [`Driver::ready`]);
    /// returns whether it ran. A partition with more work stays ready, at the back.
    pub fn step(&self, partition: u16) -> bool {
        let p = {
            let mut s = self.inner.sched.lock().unwrap_or_else(|p| p.into_inner());
            let Some(i) = s.ready.iter().position(|p| p.id == partition) else {
                return false;
            };
            s.ready.remove(i)
        };
        let Some(p) = p else { return false };
        self.inner.run_round(&p);
        self.inner.after_round(&p);
        self.inner.announce();
        // A close waits for its syncs, then for the writers: none here, so it is done.
        self.inner.finish_close_if_stopped();
        true
    }

    /// One tick of the interval syncer: a sync queued on every partition written since.
    pub fn tick_interval(&self) {
        self.inner.interval_tick();
    }

    /// Whether a close has finished (the writers would have exited).
    pub fn stopped(&self) -> bool {
        self.inner.finished.load(Ordering::SeqCst)
    }
}

/// The directory holding `d` (`.` for a relative name with no parent part).
fn parent_dir(d: &Path) -> Option<PathBuf> {
    let p = d.parent()?;
    Some(if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    })
}

fn lsn_out_of_range(lsn: u64, last: u64) -> Error {
    Error::new(
        ErrorCode::LsnOutOfRange,
        format!("lsn {lsn} is above the last LSN {last}"),
    )
}

impl Inner {
    /// Checks the options, takes the lock and recovers: everything of an open but the threads.
    /// `threads`: writer threads will run the rounds (not a `Driver`).
    fn open(dir: &Path, opts: Options, fs: Arc<dyn Fs>, threads: bool) -> Result<Arc<Inner>> {
        let gathers = threads && opts.sync == SyncMode::Always;
        let dir = dir.to_path_buf();
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&opts.segment_size) {
            return Err(Error::invalid(format!(
                "segmentSize must be an integer from {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE}, got {}",
                opts.segment_size
            )));
        }
        if let SyncMode::Interval(d) = opts.sync {
            if d.is_zero() {
                return Err(Error::invalid("sync.intervalMs must be a positive number"));
            }
        }
        // A directory is durable only once its parent is synced (its entry is in the
        // parent): without that, a power loss could take a new WAL whole, acknowledged
        // records included. Levels made here must be synced; the WAL directory's own
        // entry is synced at every open too, best effort if it already existed (the
        // caller may have made it, or an open that failed before syncing it).
        let made: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && fs.list_dir(a).is_err())
            .map(Path::to_path_buf)
            .collect();
        fs.create_dir_all(&dir)
            .map_err(|e| Error::io(&e, format!("creating {}", dir.display())))?;
        for parent in made.iter().filter_map(|d| parent_dir(d)) {
            fs.sync_dir(&parent)
                .map_err(|e| Error::io(&e, format!("syncing {}", parent.display())))?;
        }
        if made.is_empty() {
            if let Some(parent) = parent_dir(&dir) {
                let _ = fs.sync_dir(&parent);
            }
        }
        let lock = fs
            .lock_dir(&dir)
            .map_err(|e| Error::io(&e, format!("locking {}", dir.display())))?;
        let Some(lock) = lock else {
            return Err(Error::new(
                ErrorCode::Locked,
                format!("{} is already open by another Wal", dir.display()),
            ));
        };
        let found = recovery::recover(fs.as_ref(), &dir, &opts)?;
        let parts: Box<[OnceLock<Arc<Partition>>]> = (0..=u16::MAX as usize).map(|_| OnceLock::new()).collect();
        for (id, st) in found.partitions {
            let _ = parts[id as usize].set(Arc::new(Partition::new(id, st)));
        }
        let inner = Arc::new(Inner {
            dir,
            fs,
            opts,
            parts,
            closed: AtomicBool::new(false),
            poisoned: Mutex::new(None),
            is_poisoned: AtomicBool::new(false),
            rounds: AtomicU64::new(0),
            files_opened: AtomicUsize::new(0),
            counters: Counters {
                appends: AtomicU64::new(0),
                batches: AtomicU64::new(0),
                syncs: AtomicU64::new(0),
                bytes_written: AtomicU64::new(0),
            },
            sched: Mutex::new(Sched {
                ready: VecDeque::new(),
                stop: false,
                sleepers: 0,
            }),
            sched_cv: Condvar::new(),
            stop_cv: Condvar::new(),
            acks_dirty: Mutex::new(Vec::new()),
            acks_unannounced: AtomicBool::new(false),
            ack_signalled: AtomicBool::new(false),
            notifier: Mutex::new(None),
            recovery: found.truncations,
            lock: Mutex::new(Some(lock)),
            live_writers: AtomicUsize::new(0),
            read_handles: Arc::default(),
            gathers,
            closing: Mutex::new(None),
            finished: AtomicBool::new(false),
        });
        Ok(inner)
    }

    /// The partition, created empty on first use (it exists on disk from its first append).
    pub fn partition(&self, id: u16) -> Arc<Partition> {
        self.parts[id as usize]
            .get_or_init(|| Arc::new(Partition::new(id, PState::empty(1))))
            .clone()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::closed());
        }
        Ok(())
    }

    fn check_writable(&self, st: &PState) -> Result<()> {
        self.check_open()?;
        if self.is_poisoned.load(Ordering::SeqCst) {
            return Err(self.poison_error());
        }
        if st.failure_unreported {
            if let Some(AckEvent::Failed { error, .. }) =
                st.events.iter().rev().find(|e| matches!(e, AckEvent::Failed { .. }))
            {
                return Err(error.clone());
            }
        }
        Ok(())
    }

    pub fn poison_error(&self) -> Error {
        let e = self.poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut e = e.unwrap_or_else(|| Error::new(ErrorCode::Io, "an earlier fdatasync failed"));
        e.message = format!(
            "the WAL is unusable until reopened: an earlier fdatasync failed ({})",
            e.message
        );
        e
    }

    pub fn poison(&self, e: &Error) {
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            *p = Some(e.clone());
        }
        self.is_poisoned.store(true, Ordering::SeqCst);
    }

    fn check_record_fits(&self, frames: u64, what: &str) -> Result<()> {
        let room = self.opts.segment_size - SEGMENT_HEADER_LEN as u64;
        if frames > room || frames > format::MAX_PAYLOAD_LEN + FRAME_OVERHEAD as u64 {
            return Err(Error::new(
                ErrorCode::RecordTooLarge,
                format!(
                    "{what} needs {frames} bytes framed but a segment holds at most {room} (segmentSize {})",
                    self.opts.segment_size
                ),
            ));
        }
        Ok(())
    }

    /// Puts the partition on the writers' queue unless it is there already. Once the
    /// writers have stopped (a call that raced with `close`), settles what was queued
    /// with `WAL_CLOSED` instead: nothing may wait on writers that are gone.
    pub fn schedule(&self, p: &Arc<Partition>, mut st: std::sync::MutexGuard<'_, PState>) {
        if st.gather_until != 0
            && (st.unsettled >= st.gather_until || st.queue.back().is_some_and(|i| !matches!(i, Item::Frames(_))))
        {
            st.gather_until = 0;
            p.gathered.notify_one();
        }
        if st.scheduled {
            return;
        }
        let mut s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
        if s.stop {
            drop(s);
            let frames = st.queue.iter().any(|i| matches!(i, Item::Frames(_)));
            let items = std::mem::take(&mut st.queue);
            drop(st);
            if frames {
                self.fail_all(p, &Error::closed());
            }
            for item in items {
                crate::commit::fail_item(item, &Error::closed());
            }
            return;
        }
        st.scheduled = true;
        s.ready.push_back(p.clone());
        let wake = s.wake_for_push();
        drop(s);
        drop(st);
        if wake {
            self.sched_cv.notify_one();
        }
    }

    /// A sync queued on every partition; complete when all of them are.
    fn sync_everywhere(&self) -> Pending {
        let parts: Vec<&Arc<Partition>> = self.parts.iter().filter_map(|s| s.get()).collect();
        if parts.is_empty() {
            return Pending::ready(Ok(()));
        }
        let done = Done::with_parts(parts.len());
        for p in parts {
            let mut st = p.lock();
            st.queue.push_back(Item::Sync(Reply::new(done.clone())));
            self.schedule(p, st);
        }
        Pending::queued(done)
    }

    /// The close's syncs are done (this may run inside a writer's round): the writers
    /// stop once the ready queue is empty, and the last one finishes the close (a
    /// driven WAL's `Driver::step` does, after its round).
    fn stop_writers(&self, synced: Result<()>, reply: Reply<()>) {
        *self.closing.lock().unwrap_or_else(|p| p.into_inner()) = Some((synced, reply));
        {
            let mut s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
            s.stop = true;
            self.sched_cv.notify_all();
            self.stop_cv.notify_all();
        }
    }

    /// Releases what the writers held and the lock, then completes the close; once.
    fn finish_close_if_stopped(&self) {
        {
            let s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
            if !s.stop || !s.ready.is_empty() {
                return;
            }
        }
        if self.finished.swap(true, Ordering::SeqCst) {
            return;
        }
        for p in self.parts.iter().filter_map(|s| s.get()) {
            let mut st = p.lock();
            st.active = None;
            // Tidy; a spare left behind would be deleted at the next open anyway.
            if let Some(index) = st.spare.take() {
                let _ = self.fs.remove(&self.dir.join(format::spare_file_name(p.id, index)));
            }
        }
        self.read_handles.clear();
        let closing = self.closing.lock().unwrap_or_else(|p| p.into_inner()).take();
        let closed = if self.is_poisoned.load(Ordering::SeqCst) {
            // What was appended since the failed fdatasync is not durable: say so.
            Err(self.poison_error())
        } else {
            closing
                .as_ref()
                .map_or(Ok(()), |(synced, _)| synced.clone())
                .and_then(|()| recovery::mark_clean(self.fs.as_ref(), &self.dir))
        };
        *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some((_, reply)) = closing {
            reply.set(closed);
        }
    }

    /// After a round: the partition goes to the back of the writers' queue if more is
    /// staged (still `scheduled`), else it is idle until the next `schedule`.
    fn after_round(&self, p: &Arc<Partition>) {
        let mut st = p.lock();
        if st.queue.is_empty() {
            st.scheduled = false;
            drop(st);
        } else {
            // Under the partition lock: lock order partition, then scheduler (as `schedule`).
            let mut s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
            s.ready.push_back(p.clone());
            // The writer that ran the round takes the queue's head next; a parked one is
            // needed only for work beyond that.
            let wake = s.sleepers > 0 && s.ready.len() > 1;
            drop(s);
            drop(st);
            if wake {
                self.sched_cv.notify_one();
            }
        }
    }

    /// One writer round of `p`; a panic in it poisons the WAL and fails the partition
    /// instead of killing the writer (its queue stays scheduled, so it is still drained).
    fn run_round(&self, p: &Arc<Partition>) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.round(p)));
        if r.is_err() {
            let e = Error::new(ErrorCode::Io, "internal error in the writer thread");
            self.poison(&e);
            self.fail_all(p, &e);
        }
    }

    fn interval_tick(&self) {
        for p in self.parts.iter().filter_map(|s| s.get()) {
            let mut st = p.lock();
            if st.active.as_ref().is_some_and(|a| a.dirty) && !st.queue.iter().any(|i| matches!(i, Item::Sync(_))) {
                st.queue.push_back(Item::Sync(Reply::new(Done::new())));
                self.schedule(p, st);
            }
        }
    }

    /// Records acknowledgement events and wakes the JS side (once until it takes them).
    pub fn publish(&self, id: u16) {
        self.record_acks(id);
        self.announce();
    }

    /// Records acknowledgement events for the next `announce`. A writer announces once it
    /// holds no lock: the caller it wakes takes the partition's and the scheduler's locks
    /// at once, and (woken onto the writer's core) would otherwise preempt the writer
    /// while it holds them and then sleep on them (`perf trace`: 66-136 µs per round).
    pub(crate) fn record_acks(&self, id: u16) {
        self.acks_dirty.lock().unwrap_or_else(|p| p.into_inner()).push(id);
        self.acks_unannounced.store(true, Ordering::SeqCst);
    }

    /// Calls the notifier if acks were recorded since the last announcement and the JS
    /// side has taken all it was told of (once until it takes them).
    pub(crate) fn announce(&self) {
        if self.acks_unannounced.swap(false, Ordering::SeqCst) && !self.ack_signalled.swap(true, Ordering::SeqCst) {
            let f = self.notifier.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(f) = f {
                f();
            }
        }
    }

    fn worker_loop(self: Arc<Self>) {
        loop {
            let p = {
                let mut s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(p) = s.ready.pop_front() {
                        break p;
                    }
                    if s.stop {
                        drop(s);
                        if self.live_writers.fetch_sub(1, Ordering::SeqCst) == 1 {
                            self.finish_close_if_stopped();
                        }
                        return;
                    }
                    s.sleepers += 1;
                    s = self.sched_cv.wait(s).unwrap_or_else(|p| p.into_inner());
                    s.sleepers -= 1;
                }
            };
            self.run_round(&p);
            self.after_round(&p);
            self.announce();
        }
    }

    fn interval_loop(self: Arc<Self>, period: Duration) {
        loop {
            {
                let s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
                let (s, _) = self.stop_cv.wait_timeout(s, period).unwrap_or_else(|p| p.into_inner());
                if s.stop {
                    return;
                }
            }
            self.interval_tick();
        }
    }
}
