//! One writer round of one partition, the writer side of group commit: take what the
//! partition has staged, place it in segments (rotating as needed), write it with as few
//! syscalls as it can, fdatasync once, and publish one acknowledgement for the whole
//! round; control operations run in queue order between, and a failed round is rolled
//! back. Entered only through `round`, a step: the engine (`engine.rs`) decides which
//! partition and when, on a writer thread or in the simulator's order. Apart from the
//! engine because this is the only code that writes segment files and decides what a
//! round acknowledges; it knows nothing of threads or of the ready queue.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::format::{self, SEGMENT_HEADER_LEN};
use crate::options::SyncMode;
use crate::partition::{AckEvent, Active, Frames, Item, LastRound, PState, Partition, Position, PurgeResult, Rec};
use crate::pending::Reply;
use crate::segment::{self, SegMeta, MARK_EVERY};
use crate::truncate;
use crate::verify;

/// What one round changed, published under the partition lock when it is durable.
#[derive(Default)]
struct Round {
    /// Segments written in this round, oldest first; the first may be the one that was
    /// active before the round.
    touched: Vec<SegMeta>,
    /// Segments created in this round (removed again if the round fails); their names
    /// must be durable (directory synced) before anything in them is acknowledged.
    created: Vec<u64>,
    positions: Vec<Position>,
    last_lsn: Option<u64>,
    /// Records placed (and their payload bytes): what the round's ack settles.
    records: u64,
    bytes: u64,
}

struct Writer<'a> {
    inner: &'a Engine,
    p: &'a Partition,
    active: Option<Active>,
    /// Index of the spare made ahead (see `segment::create_spare`).
    spare: Option<u64>,
    next_index: u64,
    round: Round,
    /// How long the round's last fdatasync took.
    sync_took: Option<std::time::Duration>,
}

/// An error of the round, and whether it leaves the on-disk state unknown.
struct Failed {
    error: Error,
    fatal: bool,
}

/// One round of the partition's writer, its lock held with work queued: takes the
/// head of its queue (everything staged up to `ROUND_BYTES`, see `take_round`), writes,
/// syncs as the mode asks and publishes. Acks it records are announced by the caller
/// once it holds no lock (see `Acks::record`). On an error the round is rolled back and
/// the error returned: everything staged and unacknowledged must then be failed
/// (`Engine::fail_all`).
pub(crate) fn round(inner: &Engine, p: &Partition, mut st: MutexGuard<'_, PState>) -> Result<()> {
    let items = take_round(&mut st.queue);
    let (active, spare, next_index) = (st.active.take(), st.spare.take(), st.next_index);
    drop(st);
    let mut w = Writer {
        inner,
        p,
        active,
        spare,
        next_index,
        round: Round::default(),
        sync_took: None,
    };
    // Before the round's first change: a crash after it must not be judged clean. A
    // sync changes nothing (close syncs every partition).
    let changes = items.iter().any(|item| !matches!(item, Item::Sync(_)));
    let mut items = items.into_iter();
    let mut outcome = match changes {
        true => inner.clean_mark.take(inner.fs.as_ref(), &inner.dir),
        false => Ok(()),
    }
    .map_err(|error| Failed { error, fatal: false })
    .and_then(|()| w.open_active());
    if outcome.is_ok() {
        for item in items.by_ref() {
            if inner.is_poisoned() {
                outcome = Err(Failed {
                    error: inner.poison_error(),
                    fatal: true,
                });
                fail_item(item, &inner.poison_error());
                break;
            }
            let r = match item {
                Item::Frames(f) => w.write_frames(f),
                Item::Sync(done) => w.control(&done, |w| w.sync_active()),
                Item::Purge(min, done) => w.control(&done, |w| w.purge(min)),
                Item::Truncate(lsn, done) => w.control(&done, |w| w.truncate(lsn)),
            };
            if let Err(f) = r {
                outcome = Err(f);
                break;
            }
        }
    }
    if outcome.is_ok() {
        outcome = w.commit();
    }
    match outcome {
        Ok(()) => {
            if w.wants_spare() {
                // Making it (a create and a preallocation) must not hold the acks back.
                inner.acks.announce();
            }
            w.prepare_spare();
            let mut st = p.lock();
            st.active = w.active.take();
            st.spare = w.spare.take();
            Ok(())
        }
        Err(f) => {
            let e = f.error.clone();
            for item in items {
                fail_item(item, &e);
            }
            // Even after a fatal error: files this round created must not outlive
            // it (`segments()` would not list them), nor unacknowledged bytes stay.
            let rolled_back = w.rollback();
            let fatal = f.fatal || rolled_back.is_err();
            if fatal {
                inner.poison(&e);
            }
            let mut st = p.lock();
            st.active = w.active.take();
            // Still the file after the active segment (a rotation that used it was
            // undone, removing it); forgotten, it would stay on disk and make every
            // later rotation fail to create it (EEXIST).
            st.spare = w.spare.take();
            Err(e)
        }
    }
}

/// Bytes written between writeback hints when rounds are not synced.
const WRITEBACK_EVERY: u64 = 1 << 20;

/// Staged bytes one round takes at most, so that one acknowledgement (and the promises
/// the caller resolves for it at once) stays bounded however much is queued, and other
/// partitions get their turn.
pub(crate) const ROUND_BYTES: usize = 1 << 20;

/// Takes the queue's head for one round: items up to `ROUND_BYTES` of frames (at least one).
fn take_round(queue: &mut std::collections::VecDeque<Item>) -> std::collections::VecDeque<Item> {
    let mut bytes = 0;
    let n = queue
        .iter()
        .take_while(|item| {
            let first = bytes == 0;
            if let Item::Frames(f) = item {
                bytes += f.buf.len().max(1);
            }
            first || bytes <= ROUND_BYTES
        })
        .count();
    queue.drain(..n.max(1)).collect()
}

pub(crate) fn fail_item(item: Item, e: &Error) {
    match item {
        Item::Frames(_) => {}
        Item::Sync(d) | Item::Truncate(_, d) => d.set(Err(e.clone())),
        Item::Purge(_, d) => d.set(Err(e.clone())),
    }
}

impl Writer<'_> {
    /// Opens the active segment's file if it was closed while parked, and notes the
    /// round for `Engine::close_idle_files`.
    fn open_active(&mut self) -> std::result::Result<(), Failed> {
        let tick = self.inner.rounds.fetch_add(1, Ordering::Relaxed);
        let Some(a) = self.active.as_mut() else { return Ok(()) };
        a.last_used = tick;
        if a.file.is_none() {
            let name = format::segment_file_name(self.p.id, a.index);
            let file = self
                .inner
                .fs
                .open(&self.inner.dir.join(&name), true)
                .map_err(|e| Failed {
                    error: Error::io(&e, format!("opening {name}")),
                    fatal: false,
                })?;
            a.file = Some(file);
            self.inner.files_opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn seg_size(&self) -> u64 {
        self.inner.opts.segment_size
    }

    /// Places every staged frame, seals it with its segment's salt, and writes each
    /// contiguous run with one call.
    fn write_frames(&mut self, mut f: Frames) -> std::result::Result<(), Failed> {
        let mut i = 0;
        let mut at = 0usize; // where recs[i] starts in f.buf
        let mut run = 0usize; // start of the bytes not yet written
        let mut unsealed = 0usize; // recs[unsealed..] are placed, not sealed yet
        while i < f.recs.len() {
            let n = (f.recs[i].batch_left as usize + 1).min(f.recs.len() - i);
            let group: u64 = f.recs[i..i + n].iter().map(|r| u64::from(r.frame_len)).sum();
            let fits = self
                .active
                .as_ref()
                .is_some_and(|a| a.offset + group <= self.seg_size() || a.offset == SEGMENT_HEADER_LEN as u64);
            if !fits {
                self.write_run(&mut f.buf[run..at], &f.recs[unsealed..i])?;
                run = at;
                unsealed = i;
                self.rotate(f.recs[i].lsn)?;
            }
            let Some(a) = self.active.as_mut() else {
                unreachable!("rotate leaves an active segment")
            };
            if self.round.touched.last().is_none_or(|t| t.index != a.index) {
                self.round.touched.push(SegMeta {
                    index: a.index,
                    first_lsn: a.first_lsn,
                    last_lsn: f.recs[i].lsn - 1,
                    bytes: a.offset,
                    salt: a.salt,
                    marks: Vec::new(),
                });
            }
            let Some(meta) = self.round.touched.last_mut() else {
                unreachable!("pushed above")
            };
            for r in &f.recs[i..i + n] {
                let len = r.frame_len as usize;
                if !a.dirty {
                    // Nothing placed in this segment since its last fdatasync: all that
                    // precedes this frame is durable, which recovery may rely on.
                    format::mark_sync_point(&mut f.buf[at..at + len]);
                    a.dirty = true;
                }
                if r.single {
                    self.round.positions.push(Position {
                        lsn: r.lsn,
                        segment: a.index,
                        offset: a.offset,
                    });
                }
                if a.last_mark.is_none_or(|o| a.offset >= o + MARK_EVERY) {
                    meta.marks.push((r.lsn, a.offset));
                    a.last_mark = Some(a.offset);
                }
                a.offset += len as u64;
                at += len;
                self.round.bytes += u64::from(r.payload_len);
            }
            self.round.records += n as u64;
            let last = f.recs[i + n - 1].lsn;
            meta.last_lsn = last;
            meta.bytes = a.offset;
            self.round.last_lsn = Some(last);
            i += n;
        }
        self.write_run(&mut f.buf[run..at], &f.recs[unsealed..])?;
        // Hand a normal-sized buffer back for the next appends: no regrowth (and page
        // faults) per round. A huge one (one big record) is freed, outside the lock.
        if f.buf.capacity() <= 4 << 20 {
            f.buf.clear();
            f.recs.clear();
            let mut st = self.p.lock();
            if st.free_frames.is_none() {
                st.free_frames = Some(f);
            }
        }
        Ok(())
    }

    /// Seals the frames of `recs`, placed in the active segment and laid end to end in
    /// `bytes`, with its salt (several side by side: `verify::seal_frames`), and writes
    /// them where they end: at the segment's offset.
    fn write_run(&mut self, bytes: &mut [u8], recs: &[Rec]) -> std::result::Result<(), Failed> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(a) = self.active.as_mut() else {
            unreachable!("bytes were placed in a segment")
        };
        verify::seal_frames(a.salt, bytes, recs.iter().map(|r| r.frame_len as usize));
        let bytes = &*bytes;
        let at = a.offset - bytes.len() as u64;
        a.dirty = true;
        a.file().and_then(|f| f.write_all_at(bytes, at)).map_err(|e| Failed {
            error: Error::io(&e, format!("writing {}", format::segment_file_name(self.p.id, a.index))),
            fatal: false,
        })?;
        self.inner
            .counters
            .bytes_written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // Without a sync per round, dirty pages pile up until rotation's fdatasync, which
        // then stalls the writer for the whole segment; start their writeback as we go
        // (as RocksDB's bytes_per_sync does), so that fdatasync finds little left to do.
        if self.inner.opts.sync != SyncMode::Always && a.offset - a.writeback_from >= WRITEBACK_EVERY {
            let _ = a
                .file()
                .and_then(|f| f.start_writeback(a.writeback_from, a.offset - a.writeback_from));
            a.writeback_from = a.offset;
        }
        Ok(())
    }

    fn sync_active(&mut self) -> std::result::Result<(), Failed> {
        let Some(a) = self.active.as_mut() else { return Ok(()) };
        if !a.dirty {
            return Ok(());
        }
        let started = std::time::Instant::now();
        a.file().and_then(|f| f.sync_data()).map_err(|e| Failed {
            error: Error::io(
                &e,
                format!("fdatasync of {}", format::segment_file_name(self.p.id, a.index)),
            ),
            fatal: true,
        })?;
        a.dirty = false;
        self.sync_took = Some(started.elapsed());
        self.inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Seals the active segment (synced, so nothing in it can go missing once a later
    /// segment exists) and starts the next one; its name becomes durable with the round's
    /// directory sync, before anything in it is acknowledged. Usually the spare made ahead
    /// is renamed into place, so a rotation costs the old segment's fdatasync, a rename and
    /// a header write, no create and no preallocation.
    fn rotate(&mut self, first_lsn: u64) -> std::result::Result<(), Failed> {
        self.sync_active()?;
        let index = self.active.as_ref().map_or(self.next_index, |a| a.index + 1);
        let (fs, dir, pid) = (self.inner.fs.as_ref(), &self.inner.dir, self.p.id);
        let spare = match self.spare.take() {
            Some(i) if i == index => segment::activate_spare(fs, dir, pid, index).ok(),
            Some(stale) => {
                let _ = fs.remove(&dir.join(format::spare_file_name(pid, stale)));
                None
            }
            None => None,
        };
        // Before the create: one that fails after making the file (its preallocation
        // failed, then so did removing it) leaves it for the rollback to remove.
        self.round.created.push(index);
        let file = match spare {
            Some(file) => file,
            None => {
                let prealloc = self.inner.opts.preallocate.then_some(self.seg_size());
                segment::create_file(fs, dir, pid, index, prealloc).map_err(|error| Failed { error, fatal: false })?
            }
        };
        let header =
            segment::start(file.as_ref(), pid, index, first_lsn).map_err(|error| Failed { error, fatal: false })?;
        self.round.touched.push(SegMeta {
            index,
            first_lsn,
            last_lsn: first_lsn - 1,
            bytes: SEGMENT_HEADER_LEN as u64,
            salt: header.salt,
            marks: Vec::new(),
        });
        self.inner.files_opened.fetch_add(1, Ordering::Relaxed);
        let mut started = Active::resume(Some(file), index, header.salt, first_lsn, SEGMENT_HEADER_LEN as u64);
        started.last_used = self.inner.rounds.load(Ordering::Relaxed);
        started.dirty = true; // the header is not synced yet
        self.active = Some(started);
        self.next_index = index + 1;
        Ok(())
    }

    /// Makes the next segment's spare once the active one is half full, between rounds,
    /// so that rotation does not wait for a create and a preallocation. Only partitions
    /// being written get one, and it holds no descriptor. Best effort: if it fails,
    /// rotation creates the file itself and reports the error.
    fn prepare_spare(&mut self) {
        let Some(a) = self.active.as_ref().filter(|_| self.wants_spare()) else {
            return;
        };
        let (fs, dir, pid, index) = (self.inner.fs.as_ref(), &self.inner.dir, self.p.id, a.index + 1);
        // One left by a failed earlier attempt would make the create fail (EEXIST).
        let _ = fs.remove(&dir.join(format::spare_file_name(pid, index)));
        let prealloc = self.inner.opts.preallocate.then_some(self.seg_size());
        if segment::create_spare(fs, dir, pid, index, prealloc).is_ok() {
            self.spare = Some(index);
        }
    }

    fn wants_spare(&self) -> bool {
        self.spare.is_none() && self.active.as_ref().is_some_and(|a| a.offset >= self.seg_size() / 2)
    }

    /// Removes the spare (before a truncate: it must not outlive the segment it was made
    /// to follow). A spare left behind by a crash is deleted at open, so no directory sync.
    pub(crate) fn drop_spare(&mut self) -> Result<()> {
        if let Some(i) = self.spare.take() {
            let name = format::spare_file_name(self.p.id, i);
            self.inner
                .fs
                .remove(&self.inner.dir.join(&name))
                .map_err(|e| Error::io(&e, format!("removing {name}")))?;
        }
        Ok(())
    }

    /// Makes the round durable as the sync mode asks and publishes it.
    fn commit(&mut self) -> std::result::Result<(), Failed> {
        if self.inner.opts.sync == SyncMode::Always {
            self.sync_active()?;
        }
        if !self.round.created.is_empty() {
            // A segment's name must be durable before anything in it is acknowledged:
            // a power loss could otherwise take the file and the records with it.
            self.inner.fs.sync_dir(&self.inner.dir).map_err(|e| Failed {
                error: Error::io(&e, "syncing the WAL directory"),
                fatal: true,
            })?;
        }
        let round = std::mem::take(&mut self.round);
        let mut st = self.p.lock();
        for t in round.touched {
            match st.segs.last_mut() {
                Some(last) if last.index == t.index => {
                    last.last_lsn = t.last_lsn;
                    last.bytes = t.bytes;
                    last.marks.extend(t.marks);
                }
                _ => st.segs.push(t),
            }
        }
        if let Some(first) = st.segs.first().map(|s| s.first_lsn) {
            if st.segs.len() == 1 || st.log_start > first {
                st.log_start = first;
            }
        }
        st.next_index = self.next_index;
        let published = round.last_lsn.filter(|_| round.records > 0);
        if let Some(through_lsn) = published {
            st.acked_lsn = through_lsn;
            st.unsettled -= round.records;
            st.unsettled_bytes -= round.bytes;
            st.events.push(AckEvent::Acked {
                count: round.records,
                bytes: round.bytes,
                through_lsn,
                positions: round.positions,
            });
            st.last_round = self
                .sync_took
                .filter(|_| self.inner.opts.sync == SyncMode::Always)
                .map(|sync_took| LastRound {
                    records: round.records,
                    at: std::time::Instant::now(),
                    sync_took,
                });
        }
        drop(st);
        if published.is_some() {
            self.inner.acks.record(self.p.id);
        }
        Ok(())
    }

    /// Runs a control operation after everything staged before it is committed.
    fn control<T>(
        &mut self,
        done: &Reply<T>,
        op: impl FnOnce(&mut Self) -> std::result::Result<T, Failed>,
    ) -> std::result::Result<(), Failed> {
        if let Err(f) = self.commit() {
            self.refuse(done, &f);
            return Err(f);
        }
        // The acks of what precedes the operation go out before its reply does.
        self.inner.acks.announce();
        match op(self) {
            Ok(v) => {
                done.set(Ok(v));
                Ok(())
            }
            Err(f) if f.fatal => {
                self.refuse(done, &f);
                Err(f)
            }
            // A failed purge fails that call only; appends go on.
            Err(f) => {
                done.set(Err(f.error));
                Ok(())
            }
        }
    }

    /// Fails a control operation. A fatal failure poisons the WAL first: its caller may
    /// append as soon as it hears, and that append must be refused, not staged.
    fn refuse<T>(&self, done: &Reply<T>, f: &Failed) {
        if f.fatal {
            self.inner.poison(&f.error);
        }
        done.set(Err(f.error.clone()));
    }

    /// Deletes the oldest sealed segments wholly below `min_lsn`, oldest first. Each leaves
    /// the table only once its file is gone, so a purge that fails midway (EIO, EACCES)
    /// leaves the table and the directory agreeing, with everything from the failure on
    /// still readable.
    fn purge(&mut self, min_lsn: u64) -> std::result::Result<PurgeResult, Failed> {
        let victims: Vec<(u64, u64)> = {
            let st = self.p.lock();
            st.segs
                .iter()
                .take(st.segs.len().saturating_sub(1))
                .take_while(|s| s.last_lsn < min_lsn)
                .map(|s| (s.index, s.bytes))
                .collect()
        };
        let mut res = PurgeResult::default();
        let mut failed = None;
        for &(index, bytes) in &victims {
            let name = format::segment_file_name(self.p.id, index);
            if let Err(e) = self.inner.fs.remove(&self.inner.dir.join(&name)) {
                failed = Some(Error::io(&e, format!("removing {name}")));
                break;
            }
            let mut st = self.p.lock();
            st.segs.remove(0);
            if let Some(first) = st.segs.first() {
                st.log_start = first.first_lsn;
            }
            drop(st);
            res.segments_deleted += 1;
            res.bytes_freed += bytes;
        }
        if res.segments_deleted > 0 {
            self.inner.fs.sync_dir(&self.inner.dir).map_err(|e| Failed {
                error: Error::io(&e, "syncing the WAL directory"),
                fatal: false,
            })?;
        }
        if let Some(error) = failed {
            return Err(Failed { error, fatal: false });
        }
        res.first_lsn = self.p.lock().first_retained();
        Ok(res)
    }

    /// A failed truncate is fatal: it may have removed later segments, cut the kept one
    /// or left a redo file that the next open replays (cutting anything appended since),
    /// and the appends queued behind it hold LSNs that assume it happened. Reopening
    /// finishes or undoes it consistently; going on from here cannot.
    fn truncate(&mut self, lsn: u64) -> std::result::Result<(), Failed> {
        self.drop_spare().map_err(|error| Failed { error, fatal: true })?;
        let files = truncate::Files {
            fs: self.inner.fs.as_ref(),
            dir: &self.inner.dir,
            opts: &self.inner.opts,
        };
        truncate::truncate_after(&files, self.p, &mut self.active, &mut self.next_index, lsn).map_err(|error| {
            self.p.lock().broken = Some(error.clone());
            Failed { error, fatal: true }
        })
    }

    /// Puts the disk back to the last published state after a failed round.
    fn rollback(&mut self) -> Result<()> {
        if self.round.touched.is_empty() && self.round.created.is_empty() {
            return Ok(()); // nothing was written (e.g. the file could not be opened)
        }
        let (published, salt) = {
            let st = self.p.lock();
            (
                st.segs.last().map(|s| (s.index, s.bytes, s.first_lsn)),
                st.segs.last().map_or(0, |s| s.salt),
            )
        };
        let dir = &self.inner.dir;
        let fs = self.inner.fs.as_ref();
        let created = std::mem::take(&mut self.round.created);
        if self.active.as_ref().is_some_and(|a| created.contains(&a.index)) {
            self.active = None;
        }
        for index in created.iter().rev() {
            let name = format::segment_file_name(self.p.id, *index);
            let path = dir.join(&name);
            // Once more if it fails (a file left would be a segment `segments()` does not
            // list); absent already is fine (its create failed), and is not tried again:
            // a second try that failed would stop the rollback before the round's earlier
            // segments (simulator seed 432828).
            let absent = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
            let removed = fs
                .remove(&path)
                .or_else(|e| if absent(&e) { Ok(()) } else { fs.remove(&path) });
            match removed {
                Err(e) if !absent(&e) => return Err(Error::io(&e, format!("removing {name}"))),
                _ => {}
            }
        }
        if !created.is_empty() {
            fs.sync_dir(dir)
                .map_err(|e| Error::io(&e, "syncing the WAL directory"))?;
            self.next_index = created[0];
        }
        self.round = Round::default();
        let Some((index, bytes, first_lsn)) = published else {
            self.active = None;
            return Ok(());
        };
        if self.active.is_none() {
            let name = format::segment_file_name(self.p.id, index);
            let file = fs
                .open(&dir.join(&name), true)
                .map_err(|e| Error::io(&e, format!("opening {name}")))?;
            self.active = Some(Active::resume(Some(file), index, salt, first_lsn, bytes));
        }
        if let Some(a) = self.active.as_mut() {
            let name = format::segment_file_name(self.p.id, a.index);
            a.file()
                .and_then(|f| f.set_len(bytes).and_then(|_| f.sync_data()))
                .map_err(|e| Error::io(&e, format!("cutting {name} back after a failed write")))?;
            a.offset = bytes;
            a.dirty = false;
        }
        Ok(())
    }
}
