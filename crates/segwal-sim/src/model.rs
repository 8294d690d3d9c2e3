//! What a caller of the engine may expect, per partition: which bytes each LSN holds now,
//! which ones it ever held (what a crash may bring back), what must survive a crash, and
//! which errors a reader may get. The checker in `run.rs` holds the engine to it.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// One record as the caller staged it. `id` grows across the whole run, so a truncate
/// removes exactly the versions staged before it (`id < mark`).
#[derive(Clone)]
pub struct Version {
    pub id: u64,
    pub bytes: Rc<Vec<u8>>,
}

pub struct Truncate {
    pub lsn: u64,
    /// Versions with a smaller id and an LSN above `lsn` are removed.
    pub mark: u64,
    /// Its call completed: the records it cut are gone.
    pub resolved: bool,
    /// A failure found that it had not applied, and the model undid its cut (see
    /// `undo_unapplied_truncates`); its call fails.
    pub undone: bool,
    /// The caller's view of the LSNs it cut, when it was called: what an undo restores.
    /// (Not the newest version below `mark`: that may be one a crash lost since, seed
    /// 18501.)
    pub cut: BTreeMap<u64, Version>,
    /// The purge floor when it was called, which it lowered to its cut (the LSNs above
    /// would be written again): what an undo restores, up to where the log resumes.
    pub floor: u64,
}

impl Truncate {
    /// Accepted, and neither completed nor undone: its cut may still apply.
    pub fn pending(&self) -> bool {
        !self.resolved && !self.undone
    }
}

pub struct Part {
    /// The LSN the next append gets.
    pub next: u64,
    /// `truncate_after` calls accepted in this session (the engine's ack generation).
    pub generation: u64,
    /// The caller's view: every LSN handed out and not failed or truncated.
    pub cur: BTreeMap<u64, Version>,
    /// Appends not yet acknowledged or failed, in call order: (lsn, generation, version id).
    pub pending: VecDeque<(u64, u64, u64)>,
    /// Highest LSN acknowledged (as the ack events said).
    pub acked: u64,
    /// LSNs up to here must survive any crash with their `cur` bytes.
    pub durable: u64,
    /// LSNs below may be gone after a purge (as a prefix).
    pub purge_floor: u64,
    /// A bit was flipped in a segment starting at this LSN: from here on, records may
    /// be unreadable (`WAL_CORRUPTION`) and `repair` may drop them.
    pub damaged_from: Option<u64>,
    /// Every version ever staged per LSN (what a crash may bring back).
    pub history: BTreeMap<u64, Vec<Version>>,
    /// This session's truncates.
    pub truncates: Vec<Truncate>,
    /// The highest `min_lsn` of this session's purges.
    pub purged_below: u64,
    /// A truncate of this session failed (the WAL is poisoned; the file may be cut
    /// where the segment table still lists records).
    pub truncate_failed: bool,
    /// Appended to since the WAL was opened (issue 9 #7: a resumed segment nothing was
    /// written to is never synced).
    pub written: bool,
    /// Positions of records (from acks and reads): (segment, offset) -> version id, lsn.
    pub positions: Vec<(u64, u64, u64, u64)>,
}

impl Default for Part {
    fn default() -> Part {
        Part {
            next: 1,
            generation: 0,
            cur: BTreeMap::new(),
            pending: VecDeque::new(),
            acked: 0,
            durable: 0,
            purge_floor: 0,
            damaged_from: None,
            history: BTreeMap::new(),
            truncates: Vec::new(),
            purged_below: 0,
            truncate_failed: false,
            written: false,
            positions: Vec::new(),
        }
    }
}

impl Part {
    pub fn stage(&mut self, lsn: u64, v: Version) {
        self.history.entry(lsn).or_default().push(v.clone());
        self.pending.push_back((lsn, self.generation, v.id));
        self.cur.insert(lsn, v);
        self.written = true;
        self.next = lsn + 1;
    }

    /// The truncates that removed version `v` of `lsn` (none: it was never removed by one).
    pub fn removed_by(&self, lsn: u64, v: &Version) -> impl Iterator<Item = (usize, &Truncate)> {
        let id = v.id;
        self.truncates
            .iter()
            .enumerate()
            .filter(move |(_, t)| !t.undone && t.lsn < lsn && id < t.mark)
    }

    pub fn version_with(&self, lsn: u64, bytes: &[u8]) -> Option<&Version> {
        self.history.get(&lsn)?.iter().find(|v| v.bytes.as_slice() == bytes)
    }

    /// Every version of `lsn` that held `bytes`, oldest first: payloads may repeat (an
    /// empty one, say), and then the bytes alone do not say which record was read.
    pub fn versions_with<'a>(&'a self, lsn: u64, bytes: &'a [u8]) -> impl Iterator<Item = &'a Version> + 'a {
        self.history
            .get(&lsn)
            .into_iter()
            .flatten()
            .filter(move |v| v.bytes.as_slice() == bytes)
    }

    /// A failure (the log resumes at `first_lsn`; `failed` are the records it settles)
    /// fails the truncates queued behind the failed records too: such a truncate never
    /// applied, so up to `first_lsn` the engine still has what was there before it. One
    /// that applied is followed by its own acknowledged records right up to `first_lsn`.
    ///
    /// Truncates are judged from the latest back, each against the log with the later
    /// ones already undone: judged from the earliest, a later truncate's cut made an
    /// earlier one look unapplied (seed 23497 undid an applied one, seed 19585 left the
    /// second of two unapplied ones in place). The first applied one ends it: the engine
    /// runs them in order, so every earlier one applied too. One undone stays so: a later
    /// failure must not undo it again over the records appended since (seed 23655 then
    /// removed LSNs 24-41, acknowledged and synced, from the model). Returns whether it
    /// undid any.
    pub fn undo_unapplied_truncates(&mut self, first_lsn: u64, failed: &[(u64, u64, u64)]) -> bool {
        let mut undid = false;
        for i in (0..self.truncates.len()).rev() {
            let (lsn, mark) = (self.truncates[i].lsn, self.truncates[i].mark);
            if self.truncates[i].resolved {
                break;
            }
            if self.truncates[i].undone {
                continue;
            }
            let applied = (lsn + 1..first_lsn).all(|l| {
                self.cur
                    .get(&l)
                    .is_some_and(|v| v.id >= mark && !failed.iter().any(|f| f.2 == v.id))
            });
            if applied {
                break;
            }
            self.truncates[i].undone = true;
            undid = true;
            for l in lsn + 1..first_lsn {
                match self.truncates[i].cut.get(&l) {
                    Some(v) => self.cur.insert(l, v.clone()),
                    None => self.cur.remove(&l),
                };
            }
            // The records it restored are the old ones, which a purge queued ahead of it
            // may have deleted: seed 46309 (purge_before 8 deleted 5..6, a failure
            // stopped truncate_after 4, and the floor it had lowered to 5 demanded LSN 5
            // back). From `first_lsn` on, the LSNs go to new records, which no purge
            // called before them can delete. (`durable` is not restored: a truncate that
            // failed midway may be finished by the next open's redo.)
            let floor = self.truncates[i].floor;
            self.purge_floor = self.purge_floor.max(floor.min(first_lsn));
        }
        undid
    }

    /// The acknowledged LSN once truncates made after generation `generation` apply.
    pub fn cap_after(&self, generation: u64, lsn: u64) -> u64 {
        self.truncates
            .iter()
            .skip(generation as usize)
            .filter(|t| !t.undone)
            .fold(lsn, |acc, t| acc.min(t.lsn))
    }
}
