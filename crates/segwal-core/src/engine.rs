//! The engine's shared state and its threads: the partition slots, the writers' ready
//! queue and the writer pool that takes partitions off it one round at a time, the
//! interval syncer, poisoning, and the close that stops them all and releases the
//! directory. Apart from `wal.rs` (the public operations, which only check their
//! arguments and hand work here) and from `commit.rs` (what one round does to one
//! partition): this file decides which partition runs, when, and when everything stops.

use std::any::Any;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::acks::Acks;
use crate::commit;
use crate::error::{Error, ErrorCode, Result};
use crate::format;
use crate::fs::Fs;
use crate::handles::ReadHandles;
use crate::options::{Options, SyncMode, Truncation};
use crate::partition::{AckEvent, Item, PState, Partition};
use crate::pending::{Done, Pending, Reply};
use crate::recovery::{self, CleanMark};

/// Writer threads; a partition is handled by one at a time, so different partitions
/// fsync in parallel while each one's appends share its fsync.
const WORKERS: usize = 4;

/// Segment files held open by parked partitions at most, about (see `close_idle_files`).
const MAX_OPEN_FILES: usize = 256;

pub(crate) struct Counters {
    pub appends: AtomicU64,
    pub batches: AtomicU64,
    pub syncs: AtomicU64,
    pub bytes_written: AtomicU64,
}

pub(crate) struct Engine {
    pub dir: PathBuf,
    pub fs: Arc<dyn Fs>,
    pub opts: Options,
    pub parts: Box<[OnceLock<Arc<Partition>>]>,
    closed: AtomicBool,
    /// Set by a failed fdatasync: the state of unsynced data is unknown from then on,
    /// so nothing may be acknowledged again until the WAL is reopened.
    poisoned: Mutex<Option<Error>>,
    is_poisoned: AtomicBool,
    pub counters: Counters,
    pub acks: Acks,
    /// Writer rounds so far (orders parked segments by last use).
    pub rounds: AtomicU64,
    /// Segment files opened by writers since `close_idle_files` last ran.
    pub files_opened: AtomicUsize,
    /// Read descriptors shared by all readers (see handles.rs).
    pub read_handles: Arc<ReadHandles>,
    /// Writers gather rounds (see `Engine::gather`): writer threads with `SyncMode::Always`
    /// (a driven WAL's steps must not wait on the clock).
    gathers: bool,
    sched: Mutex<Sched>,
    sched_cv: Condvar,
    /// Partitions pushed on `sched` so far: what a spinning writer watches.
    pushes: AtomicU64,
    /// Wakes the interval syncer at close (kept apart from `sched_cv`, whose
    /// `notify_one` must always reach a writer).
    stop_cv: Condvar,
    pub recovery: Vec<Truncation>,
    /// Taken before the first change to the log's files (`commit::round`): see `CleanMark`.
    pub clean_mark: CleanMark,
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
    /// A writer is spinning for work (see [`SPIN`]): it takes the next push itself.
    spinning: bool,
}

impl Sched {
    /// Whether a partition just pushed needs a parked writer woken: not when none is
    /// parked (a busy one looks at the queue before it parks) or one spins, which saves
    /// the caller a futex syscall per crossing while the writers are busy.
    fn wake_for_push(&self) -> bool {
        self.sleepers > 0 && !self.spinning
    }
}

/// How long a writer that finished a turn looks for the next one before it parks. A
/// caller awaiting each durable append sends the next one about 60-150 µs after its
/// ack (the wake-up of the JS thread, then its turn); a writer parked by then needs a
/// futex wake-up of its own, 30-80 µs more on this VM (`perf trace`). Only writers of a
/// WAL that syncs every round spin (with `sync: 'none'` acks need no wake-up of the JS
/// thread, and a spin only took CPU from it), one at a time, right after a turn, and
/// they spin by yielding the CPU: a busy spin made the engine's own durable-1 bench
/// 10% slower (0.75-0.81x writeahead against 0.84-0.93x without a spin), most likely
/// because the thread woken by the acks was placed on the spinning writer's CPU.
const SPIN: Duration = Duration::from_micros(200);

fn is_control(item: &Item) -> bool {
    !matches!(item, Item::Frames(_))
}

/// Whether the round a writer gathers (`Engine::gather`) may start: as many records as it
/// waits for are staged, or a control operation was queued (it waits for nobody's appends).
fn gathered(st: &PState) -> bool {
    st.unsettled >= st.gather_until || st.queue.back().is_some_and(is_control)
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

/// Makes `dir` and the levels above it that it creates durable, and takes its lock;
/// whether `dir` was there already.
fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<(Box<dyn Any + Send + Sync>, bool)> {
    // A directory is durable only once its parent is synced (its entry is in the
    // parent): without that, a power loss could take a new WAL whole, acknowledged
    // records included. Levels made here must be synced.
    let made: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && fs.list_dir(a).is_err())
        .map(Path::to_path_buf)
        .collect();
    fs.create_dir_all(dir)
        .map_err(|e| Error::io(&e, format!("creating {}", dir.display())))?;
    for parent in made.iter().filter_map(|d| parent_dir(d)) {
        fs.sync_dir(&parent)
            .map_err(|e| Error::io(&e, format!("syncing {}", parent.display())))?;
    }
    let lock = fs
        .lock_dir(dir)
        .map_err(|e| Error::io(&e, format!("locking {}", dir.display())))?;
    let lock = lock.ok_or_else(|| {
        Error::new(
            ErrorCode::Locked,
            format!("{} is already open by another Wal", dir.display()),
        )
    })?;
    Ok((lock, made.is_empty()))
}

impl Engine {
    /// Takes the lock and recovers: everything of an open but the threads, with options
    /// the caller has checked. `threads`: writer threads will run the rounds (not a `Driver`).
    pub fn open(dir: &Path, opts: Options, fs: Arc<dyn Fs>, threads: bool) -> Result<Arc<Engine>> {
        let gathers = threads && opts.sync == SyncMode::Always;
        let dir = dir.to_path_buf();
        let (lock, existed) = lock_dir(fs.as_ref(), &dir)?;
        let found = recovery::recover(fs.as_ref(), &dir, &opts)?;
        if existed && !found.clean_mark.is_present() {
            // The WAL directory's own entry, best effort: the caller may have made the
            // directory, or an open that failed before syncing it. After a clean close
            // the open before it did this, and nothing has changed since.
            if let Some(parent) = parent_dir(&dir) {
                let _ = fs.sync_dir(&parent);
            }
        }
        let parts: Box<[OnceLock<Arc<Partition>>]> = (0..=u16::MAX as usize).map(|_| OnceLock::new()).collect();
        for (id, st) in found.partitions {
            let _ = parts[id as usize].set(Arc::new(Partition::new(id, st)));
        }
        let engine = Arc::new(Engine {
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
            acks: Acks::new(),
            sched: Mutex::new(Sched {
                ready: VecDeque::new(),
                stop: false,
                sleepers: 0,
                spinning: false,
            }),
            pushes: AtomicU64::new(0),
            sched_cv: Condvar::new(),
            stop_cv: Condvar::new(),
            recovery: found.truncations,
            clean_mark: found.clean_mark,
            lock: Mutex::new(Some(lock)),
            live_writers: AtomicUsize::new(0),
            read_handles: Arc::default(),
            gathers,
            closing: Mutex::new(None),
            finished: AtomicBool::new(false),
        });
        Ok(engine)
    }

    /// Starts the writer pool and, for `SyncMode::Interval`, the syncer, into `threads`.
    /// On an error the threads started so far are in `threads`: the caller's close stops
    /// and joins them.
    pub fn start_threads(self: &Arc<Self>, threads: &mut Vec<JoinHandle<()>>) -> Result<()> {
        for i in 0..WORKERS {
            self.live_writers.fetch_add(1, Ordering::SeqCst);
            let t = std::thread::Builder::new().name(format!("segwal-writer-{i}")).spawn({
                let engine = self.clone();
                move || engine.worker_loop()
            });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.live_writers.fetch_sub(1, Ordering::SeqCst);
                    return Err(Error::io(&e, "starting a writer thread"));
                }
            }
        }
        if let SyncMode::Interval(period) = self.opts.sync {
            let t = std::thread::Builder::new().name("segwal-syncer".into()).spawn({
                let engine = self.clone();
                move || engine.interval_loop(period)
            });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => return Err(Error::io(&e, "starting the sync thread")),
            }
        }
        Ok(())
    }

    /// The partition, created empty on first use (it exists on disk from its first append).
    pub fn partition(&self, id: u16) -> Arc<Partition> {
        self.parts[id as usize]
            .get_or_init(|| Arc::new(Partition::new(id, PState::empty(1))))
            .clone()
    }

    /// The partition if it was ever used (recovered or staged to).
    pub fn existing(&self, id: u16) -> Option<&Arc<Partition>> {
        self.parts[id as usize].get()
    }

    /// Every partition ever used, in id order.
    pub fn all_existing(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.parts.iter().filter_map(|s| s.get())
    }

    pub fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::closed());
        }
        Ok(())
    }

    pub fn check_writable(&self, st: &PState) -> Result<()> {
        self.check_open()?;
        if self.is_poisoned() {
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

    pub fn is_poisoned(&self) -> bool {
        self.is_poisoned.load(Ordering::SeqCst)
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

    /// Puts the partition on the writers' queue unless it is there already. Once the
    /// writers have stopped (a call that raced with `close`), settles what was queued
    /// with `WAL_CLOSED` instead: nothing may wait on writers that are gone.
    pub fn schedule(&self, p: &Arc<Partition>, mut st: MutexGuard<'_, PState>) {
        if st.gather_until != 0 && gathered(&st) {
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
                commit::fail_item(item, &Error::closed());
            }
            return;
        }
        st.scheduled = true;
        s.ready.push_back(p.clone());
        self.pushes.fetch_add(1, Ordering::Release);
        let wake = s.wake_for_push();
        drop(s);
        drop(st);
        if wake {
            self.sched_cv.notify_one();
        }
    }

    /// Queues `item` on `p` behind everything staged before it, and schedules the partition.
    pub fn enqueue(&self, p: &Arc<Partition>, mut st: MutexGuard<'_, PState>, item: Item) {
        st.queue.push_back(item);
        self.schedule(p, st);
    }

    /// A sync queued on every partition; complete when all of them are.
    pub fn sync_everywhere(&self) -> Pending {
        let parts: Vec<&Arc<Partition>> = self.all_existing().collect();
        if parts.is_empty() {
            return Pending::ready(Ok(()));
        }
        let done = Done::with_parts(parts.len());
        for p in parts {
            self.enqueue(p, p.lock(), Item::Sync(Reply::new(done.clone())));
        }
        Pending::queued(done)
    }

    /// One tick of the interval syncer: a sync queued on every partition written since.
    pub fn interval_tick(&self) {
        for p in self.all_existing() {
            let st = p.lock();
            if st.active.as_ref().is_some_and(|a| a.dirty) && !st.queue.iter().any(|i| matches!(i, Item::Sync(_))) {
                self.enqueue(p, st, Item::Sync(Reply::new(Done::new())));
            }
        }
    }

    /// Partitions with work queued, in the order they became ready.
    pub fn ready(&self) -> Vec<u16> {
        let s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
        s.ready.iter().map(|p| p.id).collect()
    }

    /// A driven WAL's writer: one round of `partition` if it is ready; whether it ran.
    pub fn step(&self, partition: u16) -> bool {
        let p = {
            let mut s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
            let Some(i) = s.ready.iter().position(|p| p.id == partition) else {
                return false;
            };
            s.ready.remove(i)
        };
        let Some(p) = p else { return false };
        self.turn(&p);
        // A close waits for its syncs, then for the writers: none here, so it is done.
        self.finish_close_if_stopped();
        true
    }

    fn worker_loop(self: Arc<Self>) {
        let mut just_ran = false;
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
                    if std::mem::take(&mut just_ran) && self.gathers && !s.spinning {
                        s.spinning = true;
                        let seen = self.pushes.load(Ordering::Acquire);
                        drop(s);
                        self.spin(seen);
                        s = self.sched.lock().unwrap_or_else(|p| p.into_inner());
                        s.spinning = false;
                        continue;
                    }
                    s.sleepers += 1;
                    s = self.sched_cv.wait(s).unwrap_or_else(|p| p.into_inner());
                    s.sleepers -= 1;
                }
            };
            self.turn(&p);
            just_ran = true;
        }
    }

    /// Spins for up to [`SPIN`] until a partition is pushed after `seen` pushes; the
    /// caller looks at the queue (and at `stop`) again either way.
    fn spin(&self, seen: u64) {
        let start = Instant::now();
        while self.pushes.load(Ordering::Acquire) == seen && start.elapsed() < SPIN {
            // Yielding, not busy: the thread this writer just woke with its acks is often
            // placed on this CPU, and must not wait out the spin.
            std::thread::yield_now();
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

    /// A writer's turn with a partition taken off the ready queue (a writer thread's, or
    /// a driven WAL's step): one round, the partition back on the queue if more is
    /// staged, and the round's acks announced once no lock is held.
    fn turn(&self, p: &Arc<Partition>) {
        self.run_round(p);
        self.after_round(p);
        self.acks.announce();
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

    /// One round of the partition's writer (`commit::round`), gathered first if writers
    /// gather. A writer thread runs one round per turn (then `after_round` puts the
    /// partition at the back of the queue if more is staged, so that one whose queue
    /// refills as fast as it drains never keeps a writer while other partitions wait); a
    /// driven WAL's `Driver::step` runs one when the simulator picks it.
    fn round(&self, p: &Arc<Partition>) {
        let mut st = p.lock();
        if st.queue.is_empty() {
            return;
        }
        if self.gathers {
            st = self.gather(p, st);
        }
        if let Err(e) = commit::round(self, p, st) {
            self.fail_all(p, &e);
        }
        if self.files_opened.load(Ordering::Relaxed) > MAX_OPEN_FILES / 2 {
            self.close_idle_files();
        }
    }

    /// Waits, before taking a round, for as many records as the last synced round of the
    /// partition acknowledged, and no longer than that round's fdatasync took after it was
    /// published. Callers that each await their own record come back one by one (tasks
    /// polled in turn): a writer woken by the first took the few staged so far, and the
    /// others waited for a round of their own, two fdatasyncs for each of their rounds
    /// (cargo bench durable 64: 37 records per fdatasync). Waiting costs at most one
    /// fdatasync's time and only when fewer came back than last time; a caller that hands
    /// them over in one go (the Node facade's crossing) never waits.
    fn gather<'a>(&self, p: &'a Partition, mut st: MutexGuard<'a, PState>) -> MutexGuard<'a, PState> {
        let Some(last) = st.last_round else { return st };
        // `gathered` looks only at the queue's back, which is enough for `schedule` to
        // wake this writer when a control item is pushed (it runs it after every push).
        // But by the time the writer runs, appends may have been pushed behind that item;
        // so here, off the per-record path, the whole queue is looked at.
        let deadline = last.at + last.sync_took;
        st.gather_until = last.records;
        while !gathered(&st) && !st.queue.iter().any(is_control) {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            st = p
                .gathered
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.gather_until = 0;
        st
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

    /// Closes the files of the least recently written parked segments beyond half of
    /// `MAX_OPEN_FILES`: with thousands of partitions, one open file each would exhaust
    /// the process's descriptors. Dirty ones too: the page cache keeps their data and a
    /// reopened file's fdatasync flushes it (and reports a writeback error no descriptor
    /// has seen yet). Their kept staging buffers go too (up to 4 MiB each): memory, like
    /// descriptors, then follows the partitions being written, not all there are.
    fn close_idle_files(&self) {
        self.files_opened.store(0, Ordering::Relaxed);
        let mut open: Vec<(u64, usize)> = Vec::new();
        for (i, slot) in self.parts.iter().enumerate() {
            let Some(p) = slot.get() else { continue };
            let Ok(st) = p.st.try_lock() else { continue };
            if let Some(a) = st.active.as_ref().filter(|a| a.file.is_some()) {
                open.push((a.last_used, i));
            }
        }
        let Some(excess) = open.len().checked_sub(MAX_OPEN_FILES / 2).filter(|&n| n > 0) else {
            return;
        };
        open.sort_unstable();
        for &(_, i) in &open[..excess] {
            if let Some(p) = self.parts[i].get() {
                if let Ok(mut st) = p.st.try_lock() {
                    if let Some(a) = st.active.as_mut() {
                        a.file = None;
                    }
                    st.free_frames = None;
                }
            }
        }
    }

    /// Rejects everything staged and unacknowledged; LSNs restart after the last acked one.
    /// The event goes out even when `next_lsn` is not above `acked_lsn + 1`: appends made
    /// after a `truncate_after` that has not run yet hold LSNs at or below the acked one.
    fn fail_all(&self, p: &Partition, e: &Error) {
        let mut st = p.lock();
        let items = std::mem::take(&mut st.queue);
        let first_lsn = st.acked_lsn + 1;
        st.next_lsn = first_lsn;
        st.failure_unreported = true;
        let (count, bytes) = (st.unsettled, st.unsettled_bytes);
        st.unsettled = 0;
        st.unsettled_bytes = 0;
        st.events.push(AckEvent::Failed {
            count,
            bytes,
            first_lsn,
            error: e.clone(),
        });
        drop(st);
        // Outside the lock: completing an operation may run its caller's callback.
        for item in items {
            commit::fail_item(item, e);
        }
        self.acks.publish(p.id);
    }

    /// Starts a close: every later call fails with `WAL_CLOSED` at once, and the returned
    /// operation completes once the appends made before are synced, the writers have
    /// stopped and the lock is released (a second close completes at once).
    pub fn close(self: &Arc<Self>) -> Pending {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Pending::ready(Ok(()));
        }
        let done = Done::new();
        let reply = Reply::new(done.clone());
        let engine = self.clone();
        self.sync_everywhere().then(move |r| engine.stop_writers(r, reply));
        if self.live_writers.load(Ordering::SeqCst) == 0 {
            // No partition to sync, or no writer thread (a driven WAL): nothing else would.
            self.finish_close_if_stopped();
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
        for p in self.all_existing() {
            let mut st = p.lock();
            st.active = None;
            // Tidy; a spare left behind would be deleted at the next open anyway.
            if let Some(index) = st.spare.take() {
                let _ = self.fs.remove(&self.dir.join(format::spare_file_name(p.id, index)));
            }
        }
        self.read_handles.clear();
        let closing = self.closing.lock().unwrap_or_else(|p| p.into_inner()).take();
        let closed = if self.is_poisoned() {
            // What was appended since the failed fdatasync is not durable: say so.
            Err(self.poison_error())
        } else {
            closing
                .as_ref()
                .map_or(Ok(()), |(synced, _)| synced.clone())
                .and_then(|()| match self.clean_mark.is_present() {
                    // Still there: nothing changed since the clean close that left it.
                    true => Ok(()),
                    false => recovery::mark_clean(self.fs.as_ref(), &self.dir),
                })
        };
        *self.lock.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some((_, reply)) = closing {
            reply.set(closed);
        }
    }

    /// Whether a close has finished (the writers would have exited).
    pub fn stopped(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}
