//! One partition's state: what has been handed out (LSNs, staged frames) and what has
//! been acknowledged (the segment table), behind one mutex that no I/O ever holds.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, ErrorCode, Result};
use crate::fs::FsFile;
use crate::segment::SegMeta;

pub struct Partition {
    pub id: u16,
    pub st: Mutex<PState>,
}

impl Partition {
    pub fn new(id: u16, st: PState) -> Partition {
        Partition { id, st: Mutex::new(st) }
    }

    /// A poisoned mutex only means another thread panicked mid-update; the state
    /// itself stays consistent at every unlock, so keep going rather than panic.
    pub fn lock(&self) -> MutexGuard<'_, PState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The segment being appended to. Owned by whichever worker is processing the
/// partition; parked in `PState::active` between rounds.
pub struct Active {
    /// Closed while parked when too many partitions hold one (see
    /// `Inner::close_idle_files`); the writer reopens it for its next round.
    pub file: Option<Arc<dyn FsFile>>,
    /// The writers' round count when this segment was last written (for closing the
    /// least recently used files first).
    pub last_used: u64,
    pub index: u64,
    pub salt: u32,
    pub first_lsn: u64,
    /// Bytes written (header included).
    pub offset: u64,
    /// Written but not yet fdatasynced.
    pub dirty: bool,
    /// Offset of the last seek point recorded in this segment.
    pub last_mark: Option<u64>,
    /// Where writeback was last started (see `commit::WRITEBACK_EVERY`).
    pub writeback_from: u64,
}

impl Active {
    /// A segment taken up for appending at `offset`, with nothing unsynced in it.
    pub fn resume(file: Option<Arc<dyn FsFile>>, index: u64, salt: u32, first_lsn: u64, offset: u64) -> Active {
        Active {
            file,
            last_used: 0,
            index,
            salt,
            first_lsn,
            offset,
            dirty: false,
            last_mark: None,
            writeback_from: offset,
        }
    }

    /// The open file (the writer opens it at the start of each round).
    pub fn file(&self) -> std::io::Result<&Arc<dyn FsFile>> {
        self.file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("segment file not open"))
    }
}

pub struct PState {
    // Handed out on the JS thread.
    /// LSN the next append gets.
    pub next_lsn: u64,
    pub queue: VecDeque<Item>,
    /// Queued on the scheduler or being processed by a worker.
    pub scheduled: bool,
    /// A failure is waiting to be taken by `take_acks`; appends are refused until then
    /// so that no LSN is reused while the caller may still hold the failed one.
    pub failure_unreported: bool,

    // Acknowledged (published by the worker after each round).
    pub segs: Vec<SegMeta>,
    pub acked_lsn: u64,
    /// First retained LSN.
    pub log_start: u64,
    /// Index the next new segment gets when `segs` is empty.
    pub next_index: u64,
    /// Bumped by truncate so readers past the cut notice.
    pub epoch: u64,
    /// `truncate_after` calls so far (bumped when the call is made, not when done).
    pub generation: u64,
    /// The lowest LSN `truncate_after` removed in the current epoch (readers beyond it fail).
    pub cut_lsn: u64,
    pub active: Option<Active>,
    /// Index of the next segment's spare, made ahead (see `segment::create_spare`).
    pub spare: Option<u64>,
    /// Emptied staging buffers kept for reuse (capacity is what matters).
    pub free_frames: Option<Frames>,
    /// Acknowledgements not yet taken by `take_acks`.
    pub events: Vec<AckEvent>,
}

impl PState {
    pub fn empty(next_index: u64) -> PState {
        PState {
            next_lsn: 1,
            queue: VecDeque::new(),
            scheduled: false,
            failure_unreported: false,
            segs: Vec::new(),
            acked_lsn: 0,
            log_start: 1,
            next_index,
            epoch: 0,
            generation: 0,
            cut_lsn: u64::MAX,
            active: None,
            spare: None,
            free_frames: None,
            events: Vec::new(),
        }
    }

    pub fn first_retained(&self) -> u64 {
        if self.acked_lsn >= self.log_start {
            self.log_start
        } else {
            0
        }
    }

    pub fn bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.bytes).sum()
    }

    /// Index of the segment holding `lsn` (which must be retained and acknowledged).
    pub fn seg_for_lsn(&self, lsn: u64) -> Option<usize> {
        let i = self.segs.partition_point(|s| s.first_lsn <= lsn);
        (i > 0).then(|| i - 1)
    }

    /// The run the next staged frames go to: the queue's last one, unless it holds a
    /// control item or `STAGE_CAP` bytes already (a new run then, so that no append
    /// regrows and copies a multi-MiB buffer on the caller's thread). A new run reuses
    /// a buffer a writer handed back.
    pub fn frames_mut(&mut self) -> &mut Frames {
        if !matches!(self.queue.back(), Some(Item::Frames(f)) if f.buf.len() < STAGE_CAP) {
            let mut f = self.free_frames.take().unwrap_or_default();
            f.generation = self.generation;
            self.queue.push_back(Item::Frames(f));
        }
        match self.queue.back_mut() {
            Some(Item::Frames(f)) => f,
            _ => unreachable!("just pushed"),
        }
    }
}

/// Work for the partition's writer, in the order the calls were made.
pub enum Item {
    Frames(Frames),
    Sync(Reply<()>),
    Truncate(u64, Reply<()>),
    Purge(u64, Reply<PurgeResult>),
}

/// The writer's end of a `Done`: answered once; if it is dropped unanswered (a bug, a
/// panic, the writers gone), the caller gets an error instead of waiting forever.
pub struct Reply<T>(Arc<Done<T>>, std::sync::atomic::AtomicBool);

impl<T> Reply<T> {
    pub fn new(done: Arc<Done<T>>) -> Reply<T> {
        Reply(done, std::sync::atomic::AtomicBool::new(false))
    }

    pub fn set(&self, r: Result<T>) {
        if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.0.set(r);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        self.set(Err(Error::new(
            ErrorCode::Io,
            "internal error: the operation was abandoned",
        )));
    }
}

/// Staged frames, checksums not yet filled (the salt depends on where they land).
#[derive(Default)]
pub struct Frames {
    pub buf: Vec<u8>,
    pub recs: Vec<Rec>,
    /// See `AckEvent::Acked`.
    pub generation: u64,
}

#[derive(Clone, Copy)]
pub struct Rec {
    pub lsn: u64,
    pub frame_len: u32,
    pub batch_left: u32,
    /// A single append (its position is reported back); batch members are not.
    pub single: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub lsn: u64,
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub enum AckEvent {
    /// Every record up to `through_lsn` is acknowledged; positions of the single appends.
    /// `generation` is the partition's truncate count when those appends were made:
    /// after `truncate_after`, LSNs are handed out again, and this tells a caller's
    /// pending appends of before the truncate from those after it.
    Acked {
        through_lsn: u64,
        positions: Vec<Position>,
        generation: u64,
    },
    /// Every append of the partition not acknowledged by an earlier event failed (those
    /// made after a pending `truncate_after` too, whatever their LSN); `first_lsn` is
    /// where the log resumes. Appends are refused until this event has been taken.
    Failed { first_lsn: u64, error: Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeResult {
    pub segments_deleted: u64,
    pub bytes_freed: u64,
    pub first_lsn: u64,
}

/// Bytes after which staged frames go to a new run (see `PState::frames_mut`).
const STAGE_CAP: usize = 1 << 20;

/// What runs when a `Done` completes (on the thread that completes it).
pub type OnDone<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// A one-shot result slot, answered by the writer (or by `parts` writers: the first
/// error wins, else the last answer). Its caller waits on it, polls it, or leaves a
/// callback that the answering thread runs: a control operation never needs a
/// thread parked on it.
pub struct Done<T> {
    slot: Mutex<Slot<T>>,
    cv: Condvar,
}

struct Slot<T> {
    result: Option<Result<T>>,
    then: Option<OnDone<T>>,
    /// Answers still expected.
    parts: usize,
    /// The answer so far, while `parts > 0`.
    partial: Option<Result<T>>,
}

impl<T> Done<T> {
    pub fn new() -> Arc<Done<T>> {
        Done::with_parts(1)
    }

    /// Completes after `parts` answers (0: already complete with `Ok` of the default).
    pub fn with_parts(parts: usize) -> Arc<Done<T>> {
        Arc::new(Done {
            slot: Mutex::new(Slot {
                result: None,
                then: None,
                parts,
                partial: None,
            }),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, r: Result<T>) {
        let mut s = self.lock();
        if s.parts == 0 {
            return;
        }
        s.parts -= 1;
        if !matches!(s.partial, Some(Err(_))) {
            s.partial = Some(r);
        }
        if s.parts > 0 {
            return;
        }
        let Some(r) = s.partial.take() else { return };
        match s.then.take() {
            Some(f) => {
                drop(s);
                f(r);
            }
            None => {
                s.result = Some(r);
                self.cv.notify_all();
            }
        }
    }

    /// Runs `f` with the result: now if it is there, else on the thread that completes it.
    pub fn then(&self, f: OnDone<T>) {
        let mut s = self.lock();
        match s.result.take() {
            Some(r) => {
                drop(s);
                f(r);
            }
            None => s.then = Some(f),
        }
    }

    /// The result, if the operation is complete (taken: a second call says `None`).
    pub fn poll(&self) -> Option<Result<T>> {
        self.lock().result.take()
    }

    pub fn wait(&self) -> Result<T> {
        let mut s = self.lock();
        loop {
            if let Some(r) = s.result.take() {
                return r;
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}
