//! One partition's state: what has been handed out (LSNs, staged frames) and what has
//! been acknowledged (the segment table), behind one mutex that no I/O ever holds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::fs::FsFile;
use crate::pending::Reply;
use crate::segment::SegMeta;

pub struct Partition {
    pub id: u16,
    pub st: Mutex<PState>,
    /// Wakes a writer gathering the partition's next round (see `Engine::gather`).
    pub gathered: Condvar,
    /// Held for writing while `truncate_after` changes files, for reading while a reader
    /// reads them: a reader never sees a file half cut, nor a segment the cut removed.
    cutting: RwLock<()>,
}

impl Partition {
    pub fn new(id: u16, st: PState) -> Partition {
        Partition {
            id,
            st: Mutex::new(st),
            gathered: Condvar::new(),
            cutting: RwLock::new(()),
        }
    }

    pub fn reading(&self) -> RwLockReadGuard<'_, ()> {
        self.cutting.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cutting(&self) -> RwLockWriteGuard<'_, ()> {
        self.cutting.write().unwrap_or_else(|p| p.into_inner())
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
    /// `Engine::close_idle_files`); the writer reopens it for its next round.
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
    /// Records (and their payload bytes) staged and not yet settled by an ack event:
    /// the next `Failed` event settles exactly these.
    pub unsettled: u64,
    pub unsettled_bytes: u64,

    // Acknowledged (published by the worker after each round).
    pub segs: Vec<SegMeta>,
    pub acked_lsn: u64,
    /// First retained LSN.
    pub log_start: u64,
    /// Index the next new segment gets when `segs` is empty.
    pub next_index: u64,
    /// The open readers, told of every cut (see [`Cursor`]).
    pub readers: Vec<Weak<Cursor>>,
    pub active: Option<Active>,
    /// Index of the next segment's spare, made ahead (see `segment::create_spare`).
    pub spare: Option<u64>,
    /// Emptied staging buffers kept for reuse (capacity is what matters).
    pub free_frames: Option<Frames>,
    /// Acknowledgements not yet taken by `take_acks`.
    pub events: Vec<AckEvent>,
    /// A `truncate_after` failed midway (the WAL is poisoned): the files may be cut
    /// where the table still lists records, so readers get this error until a reopen
    /// finishes or undoes the cut (it replays its redo record).
    pub broken: Option<Error>,
    /// The last round that acknowledged synced records (see `Engine::gather`).
    pub last_round: Option<LastRound>,
    /// Non-zero while a writer gathers the next round: staging wakes it (`gathered`) once
    /// this many records are unsettled.
    pub gather_until: u64,
}

/// What the next round of a partition can expect: as many records as the last synced one
/// acknowledged, from callers that each wait for their own.
#[derive(Clone, Copy)]
pub struct LastRound {
    pub records: u64,
    /// When it was published, and how long its fdatasync took.
    pub at: Instant,
    pub sync_took: Duration,
}

impl PState {
    pub fn empty(next_index: u64) -> PState {
        PState {
            next_lsn: 1,
            queue: VecDeque::new(),
            scheduled: false,
            failure_unreported: false,
            unsettled: 0,
            unsettled_bytes: 0,
            segs: Vec::new(),
            acked_lsn: 0,
            log_start: 1,
            next_index,
            readers: Vec::new(),
            active: None,
            spare: None,
            free_frames: None,
            events: Vec::new(),
            broken: None,
            last_round: None,
            gather_until: 0,
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

    /// A new reader's cursor: from now on it learns of every cut.
    pub fn register_reader(&mut self) -> Arc<Cursor> {
        if self.readers.len() == self.readers.capacity() {
            // Amortised: readers come and go without a truncate to prune them.
            self.readers.retain(|r| r.strong_count() > 0);
        }
        let c = Arc::new(Cursor(AtomicU64::new(NO_CUT)));
        self.readers.push(Arc::downgrade(&c));
        c
    }

    /// Tells every open reader that records from `first_removed` on are gone.
    pub fn note_cut(&mut self, first_removed: u64) {
        self.readers.retain(|r| match r.upgrade() {
            Some(c) => {
                c.0.fetch_min(first_removed, Ordering::SeqCst);
                true
            }
            None => false,
        });
    }

    /// The run the next staged frames go to: the queue's last one, unless it holds a
    /// control item or `STAGE_CAP` bytes already (a new run then, so that no append
    /// regrows and copies a multi-MiB buffer on the caller's thread). A new run reuses
    /// a buffer a writer handed back.
    pub fn frames_mut(&mut self) -> &mut Frames {
        if !matches!(self.queue.back(), Some(Item::Frames(f)) if f.buf.len() < STAGE_CAP) {
            let f = self.free_frames.take().unwrap_or_default();
            self.queue.push_back(Item::Frames(f));
        }
        match self.queue.back_mut() {
            Some(Item::Frames(f)) => f,
            _ => unreachable!("just pushed"),
        }
    }
}

/// What one reader has not yet learnt of truncations: the lowest LSN removed by any
/// `truncate_after` since it last looked. Per reader, because "since it last looked"
/// differs between readers: one partition-wide "lowest cut" could never be reset (a later
/// reader, or a later truncate above the first, would be judged by an old cut).
pub struct Cursor(AtomicU64);

/// A cursor's value when no cut happened since its reader last looked.
pub const NO_CUT: u64 = u64::MAX;

impl Cursor {
    /// The lowest LSN removed since the last call (`NO_CUT` if none).
    pub fn take(&self) -> u64 {
        self.0.swap(NO_CUT, Ordering::SeqCst)
    }
}

/// Work for the partition's writer, in the order the calls were made.
pub enum Item {
    Frames(Frames),
    Sync(Reply<()>),
    Truncate(u64, Reply<()>),
    Purge(u64, Reply<PurgeResult>),
}

/// Staged frames, checksums not yet filled (the salt depends on where they land).
#[derive(Default)]
pub struct Frames {
    pub buf: Vec<u8>,
    pub recs: Vec<Rec>,
}

#[derive(Clone, Copy)]
pub struct Rec {
    pub lsn: u64,
    pub frame_len: u32,
    pub batch_left: u32,
    /// Payload bytes (what ack events count).
    pub payload_len: u32,
    /// A single append (its position is reported back); batch members and records
    /// staged with `Wal::write` are not.
    pub single: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub lsn: u64,
    pub segment: u64,
    pub offset: u64,
}

/// What happened to a partition's staged records. Events settle records in the order
/// they were staged (the order of the `append`/`append_batch`/`write` calls), so a
/// caller keeps its pending records in a FIFO per partition and pops `count` of them
/// per event: no LSN comparison, which `truncate_after` (LSNs handed out again) would
/// make ambiguous.
#[derive(Debug, Clone)]
pub enum AckEvent {
    /// The next `count` staged records (`bytes` of payload) are acknowledged; the last
    /// is `through_lsn`. `positions` holds those of the single appends among them, in
    /// staging order. A batch is never split between events.
    Acked {
        count: u64,
        bytes: u64,
        through_lsn: u64,
        positions: Vec<Position>,
    },
    /// The next `count` staged records (`bytes` of payload), every one not acknowledged
    /// by an earlier event, failed; `first_lsn` is where the log resumes. Staging is
    /// refused until this event has been taken.
    Failed {
        count: u64,
        bytes: u64,
        first_lsn: u64,
        error: Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeResult {
    pub segments_deleted: u64,
    pub bytes_freed: u64,
    pub first_lsn: u64,
}

/// Bytes after which staged frames go to a new run (see `PState::frames_mut`).
pub(crate) const STAGE_CAP: usize = 1 << 20;
