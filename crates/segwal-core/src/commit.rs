//! The writer side of group commit: a worker takes everything a partition has staged,
//! places it in segments (rotating as needed), writes it with as few syscalls as it
//! can, fdatasyncs once, and publishes one acknowledgement for the whole round.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, SEGMENT_HEADER_LEN};
use crate::fs::FsFile;
use crate::partition::{AckEvent, Active, Frames, Item, Partition, Position, PurgeResult, Reply};
use crate::segment::{self, SegMeta, MARK_EVERY};
use crate::truncate;
use crate::wal::{Inner, SyncMode};

/// What one round changed, published under the partition lock when it is durable.
#[derive(Default)]
struct Round {
    /// Segments written in this round, oldest first; the first may be the one that was
    /// active before the round.
    touched: Vec<SegMeta>,
    /// Segments created in this round (removed again if the round fails).
    created: Vec<u64>,
    positions: Vec<Position>,
    last_lsn: Option<u64>,
    generation: u64,
}

struct Writer<'a> {
    inner: &'a Inner,
    p: &'a Partition,
    active: Option<Active>,
    spare: Option<(u64, Arc<dyn FsFile>)>,
    next_index: u64,
    round: Round,
}

/// An error of the round, and whether it leaves the on-disk state unknown.
struct Failed {
    error: Error,
    fatal: bool,
}

impl Inner {
    /// Runs one round of `p` (everything staged up to `ROUND_BYTES`), then puts the
    /// partition back at the end of the writers' queue if more is staged: a partition
    /// whose queue refills as fast as it drains must not keep a writer to itself while
    /// other partitions' appends, syncs, purges and truncates wait (API.md: appends to
    /// different partitions do not wait on each other).
    pub(crate) fn process(&self, p: &Arc<Partition>) {
        let (items, active, next_index) = {
            let mut st = p.lock();
            if st.queue.is_empty() {
                st.scheduled = false;
                return;
            }
            (
                take_round(&mut st.queue),
                (st.active.take(), st.spare.take()),
                st.next_index,
            )
        };
        let (active, spare) = active;
        let mut w = Writer {
            inner: self,
            p,
            active,
            spare,
            next_index,
            round: Round::default(),
        };
        let mut items = items.into_iter();
        let mut outcome = Ok(());
        for item in items.by_ref() {
            if self.is_poisoned.load(Ordering::SeqCst) {
                outcome = Err(Failed {
                    error: self.poison_error(),
                    fatal: true,
                });
                fail_item(item, &self.poison_error());
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
        if outcome.is_ok() {
            outcome = w.commit();
        }
        match outcome {
            Ok(()) => {
                w.prepare_spare();
                let mut st = p.lock();
                st.active = w.active.take();
                st.spare = w.spare.take();
            }
            Err(f) => {
                let e = f.error.clone();
                for item in items {
                    fail_item(item, &e);
                }
                let fatal = f.fatal || w.rollback().is_err();
                if fatal {
                    self.poison(&e);
                }
                let mut st = p.lock();
                st.active = w.active.take();
                // Still the file after the active segment (a rotation that used it was
                // undone, removing it); forgotten, it would stay on disk and make every
                // later rotation fail to create it (EEXIST).
                st.spare = w.spare.take();
                drop(st);
                self.fail_all(p, &e);
            }
        }
        let mut st = p.lock();
        if st.queue.is_empty() {
            st.scheduled = false;
        } else {
            drop(st);
            self.requeue(p);
        }
    }

    /// Rejects everything staged and unacknowledged; LSNs restart after the last acked one.
    /// The event goes out even when `next_lsn` is not above `acked_lsn + 1`: appends made
    /// after a `truncate_after` that has not run yet hold LSNs at or below the acked one.
    pub(crate) fn fail_all(&self, p: &Partition, e: &Error) {
        let mut st = p.lock();
        for item in std::mem::take(&mut st.queue) {
            fail_item(item, e);
        }
        let first_lsn = st.acked_lsn + 1;
        st.next_lsn = first_lsn;
        st.failure_unreported = true;
        st.events.push(AckEvent::Failed {
            first_lsn,
            error: e.clone(),
        });
        drop(st);
        self.publish(p.id);
    }
}

/// Bytes written between writeback hints when rounds are not synced.
const WRITEBACK_EVERY: u64 = 1 << 20;

/// Staged bytes one round takes at most, so that one acknowledgement (and the promises
/// the caller resolves for it at once) stays bounded however much is queued, and so
/// that only the last `ROUND_BYTES` of a segment can be unsynced when the power goes
/// (recovery checks that much of the tail: `segment::TAIL_CHECK`).
pub(crate) const ROUND_BYTES: usize = segment::TAIL_CHECK as usize;

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

fn fail_item(item: Item, e: &Error) {
    match item {
        Item::Frames(_) => {}
        Item::Sync(d) | Item::Truncate(_, d) => d.set(Err(e.clone())),
        Item::Purge(_, d) => d.set(Err(e.clone())),
    }
}

impl Writer<'_> {
    fn seg_size(&self) -> u64 {
        self.inner.opts.segment_size
    }

    /// Places every staged frame, seals it with its segment's salt, and writes each
    /// contiguous run with one call.
    fn write_frames(&mut self, mut f: Frames) -> std::result::Result<(), Failed> {
        let mut i = 0;
        let mut at = 0usize; // where recs[i] starts in f.buf
        let mut run = 0usize; // start of the bytes not yet written
                              // Truncate commits what came before it, so one round never mixes generations.
        self.round.generation = f.generation;
        while i < f.recs.len() {
            let n = (f.recs[i].batch_left as usize + 1).min(f.recs.len() - i);
            let group: u64 = f.recs[i..i + n].iter().map(|r| u64::from(r.frame_len)).sum();
            let fits = self
                .active
                .as_ref()
                .is_some_and(|a| a.offset + group <= self.seg_size() || a.offset == SEGMENT_HEADER_LEN as u64);
            if !fits {
                self.write_run(&f.buf[run..at])?;
                run = at;
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
                format::seal(&mut f.buf[at..at + len], a.salt);
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
            }
            let last = f.recs[i + n - 1].lsn;
            meta.last_lsn = last;
            meta.bytes = a.offset;
            self.round.last_lsn = Some(last);
            i += n;
        }
        self.write_run(&f.buf[run..at])?;
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

    /// Writes bytes that end at the active segment's offset.
    fn write_run(&mut self, bytes: &[u8]) -> std::result::Result<(), Failed> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(a) = self.active.as_mut() else {
            unreachable!("bytes were placed in a segment")
        };
        let at = a.offset - bytes.len() as u64;
        a.dirty = true;
        a.file.write_all_at(bytes, at).map_err(|e| Failed {
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
            let _ = a.file.start_writeback(a.writeback_from, a.offset - a.writeback_from);
            a.writeback_from = a.offset;
        }
        Ok(())
    }

    fn sync_active(&mut self) -> std::result::Result<(), Failed> {
        let Some(a) = self.active.as_mut() else { return Ok(()) };
        if !a.dirty {
            return Ok(());
        }
        a.file.sync_data().map_err(|e| Failed {
            error: Error::io(
                &e,
                format!("fdatasync of {}", format::segment_file_name(self.p.id, a.index)),
            ),
            fatal: true,
        })?;
        a.dirty = false;
        self.inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Seals the active segment (synced, so nothing in it can go missing once a later
    /// segment exists) and starts the next one, whose directory entry is durable before
    /// anything is written to it. Usually the next file was created ahead of time, so
    /// a rotation costs the old segment's fdatasync and a header write, no more.
    fn rotate(&mut self, first_lsn: u64) -> std::result::Result<(), Failed> {
        self.sync_active()?;
        let index = self.active.as_ref().map_or(self.next_index, |a| a.index + 1);
        let fs = self.inner.fs.as_ref();
        let file = match self.spare.take() {
            Some((i, f)) if i == index => f,
            stale => {
                if let Some((i, _)) = stale {
                    let _ = fs.remove(&self.inner.dir.join(format::segment_file_name(self.p.id, i)));
                }
                let prealloc = self.inner.opts.preallocate.then_some(self.seg_size());
                segment::create_file(fs, &self.inner.dir, self.p.id, index, prealloc)
                    .map_err(|error| Failed { error, fatal: false })?
            }
        };
        self.round.created.push(index);
        let header = segment::start(file.as_ref(), self.p.id, index, first_lsn)
            .map_err(|error| Failed { error, fatal: false })?;
        self.round.touched.push(SegMeta {
            index,
            first_lsn,
            last_lsn: first_lsn - 1,
            bytes: SEGMENT_HEADER_LEN as u64,
            salt: header.salt,
            marks: Vec::new(),
        });
        let mut started = Active::resume(file, index, header.salt, first_lsn, SEGMENT_HEADER_LEN as u64);
        started.dirty = true; // the header is not synced yet
        self.active = Some(started);
        self.next_index = index + 1;
        Ok(())
    }

    /// Creates the next segment's file once the active one is half full, between rounds,
    /// so that rotation does not wait for a create, a preallocation and a directory sync.
    /// Best effort: if it fails, rotation creates the file itself and reports the error.
    fn prepare_spare(&mut self) {
        let Some(a) = self.active.as_ref() else { return };
        if self.spare.is_some() || a.offset < self.seg_size() / 2 {
            return;
        }
        let prealloc = self.inner.opts.preallocate.then_some(self.seg_size());
        if let Ok(f) = segment::create_file(
            self.inner.fs.as_ref(),
            &self.inner.dir,
            self.p.id,
            a.index + 1,
            prealloc,
        ) {
            self.spare = Some((a.index + 1, f));
        }
    }

    /// Removes the spare file (before a truncate or at close: it must not outlive the
    /// segment it was made to follow).
    pub(crate) fn drop_spare(&mut self) -> Result<()> {
        if let Some((i, _)) = self.spare.take() {
            let name = format::segment_file_name(self.p.id, i);
            self.inner
                .fs
                .remove(&self.inner.dir.join(&name))
                .map_err(|e| Error::io(&e, format!("removing {name}")))?;
            self.inner
                .fs
                .sync_dir(&self.inner.dir)
                .map_err(|e| Error::io(&e, "syncing the WAL directory"))?;
        }
        Ok(())
    }

    /// Makes the round durable as the sync mode asks and publishes it.
    fn commit(&mut self) -> std::result::Result<(), Failed> {
        if self.inner.opts.sync == SyncMode::Always {
            self.sync_active()?;
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
        let through_lsn = round.last_lsn;
        if let Some(through_lsn) = through_lsn {
            st.acked_lsn = through_lsn;
            st.events.push(AckEvent::Acked {
                through_lsn,
                positions: round.positions,
                generation: round.generation,
            });
        }
        drop(st);
        if through_lsn.is_some() {
            self.inner.publish(self.p.id);
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
            done.set(Err(f.error.clone()));
            return Err(f);
        }
        match op(self) {
            Ok(v) => {
                done.set(Ok(v));
                Ok(())
            }
            Err(f) if f.fatal => {
                done.set(Err(f.error.clone()));
                Err(f)
            }
            // A failed purge fails that call only; appends go on.
            Err(f) => {
                done.set(Err(f.error));
                Ok(())
            }
        }
    }

    fn purge(&mut self, min_lsn: u64) -> std::result::Result<PurgeResult, Failed> {
        let victims: Vec<SegMeta> = {
            let mut st = self.p.lock();
            let keep_from = st
                .segs
                .iter()
                .take(st.segs.len().saturating_sub(1))
                .take_while(|s| s.last_lsn < min_lsn)
                .count();
            let v: Vec<SegMeta> = st.segs.drain(..keep_from).collect();
            if let Some(first) = st.segs.first() {
                st.log_start = first.first_lsn;
            }
            v
        };
        let mut res = PurgeResult::default();
        for s in &victims {
            let name = format::segment_file_name(self.p.id, s.index);
            self.inner.fs.remove(&self.inner.dir.join(&name)).map_err(|e| Failed {
                error: Error::io(&e, format!("removing {name}")),
                fatal: false,
            })?;
            res.segments_deleted += 1;
            res.bytes_freed += s.bytes;
        }
        if !victims.is_empty() {
            self.inner.fs.sync_dir(&self.inner.dir).map_err(|e| Failed {
                error: Error::io(&e, "syncing the WAL directory"),
                fatal: false,
            })?;
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
        truncate::truncate_after(self.inner, self.p, &mut self.active, &mut self.next_index, lsn)
            .map_err(|error| Failed { error, fatal: true })
    }

    /// Puts the disk back to the last published state after a failed round.
    fn rollback(&mut self) -> Result<()> {
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
            fs.remove(&dir.join(&name))
                .map_err(|e| Error::io(&e, format!("removing {name}")))?;
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
            self.active = Some(Active::resume(file, index, salt, first_lsn, bytes));
        }
        if let Some(a) = self.active.as_mut() {
            let name = format::segment_file_name(self.p.id, a.index);
            a.file
                .set_len(bytes)
                .and_then(|_| a.file.sync_data())
                .map_err(|e| Error::io(&e, format!("cutting {name} back after a failed write")))?;
            a.offset = bytes;
            a.dirty = false;
        }
        Ok(())
    }
}
