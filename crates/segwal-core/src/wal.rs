//! The public WAL: open, the operations and the views. Each one checks its arguments
//! and hands the work to the engine (`engine.rs`: the shared state and its threads);
//! staging records is `stage.rs`, one writer round `commit.rs`.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::acks::Ack;
use crate::engine::Engine;
use crate::error::{Error, ErrorCode, Result};
use crate::format;
use crate::fs::{Fs, OsFs};
use crate::options::{Options, SyncMode, Truncation, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE};
use crate::partition::{Item, PurgeResult};
use crate::pending::{Done, Pending, Reply};
use crate::reader::{Reader, Start};
use crate::stage;

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

/// The options a WAL may be opened with (the rest is checked where it is used).
fn check_options(opts: &Options) -> Result<()> {
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
    Ok(())
}

fn lsn_out_of_range(lsn: u64, last: u64) -> Error {
    Error::new(
        ErrorCode::LsnOutOfRange,
        format!("lsn {lsn} is above the last LSN {last}"),
    )
}

pub struct Wal {
    engine: Arc<Engine>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Wal {
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Wal> {
        Wal::open_with(dir, opts, Arc::new(OsFs))
    }

    /// Opens through another file system (tests inject faults and power loss).
    pub fn open_with(dir: impl AsRef<Path>, opts: Options, fs: Arc<dyn Fs>) -> Result<Wal> {
        check_options(&opts)?;
        let engine = Engine::open(dir.as_ref(), opts, fs, true)?;
        let mut threads = Vec::new();
        let started = engine.start_threads(&mut threads);
        let wal = Wal {
            engine,
            threads: Mutex::new(threads),
        };
        started?; // on an error `wal` drops: closes, joining the threads started
        Ok(wal)
    }

    /// Opens without starting any thread: the caller runs the writers' rounds, the
    /// interval syncer's ticks and everything else through the returned [`Driver`], in
    /// whatever order it likes (the deterministic simulator picks it from a seed).
    /// Nothing is written and nothing is acknowledged until the driver runs.
    pub fn open_driven(dir: impl AsRef<Path>, opts: Options, fs: Arc<dyn Fs>) -> Result<(Wal, Driver)> {
        check_options(&opts)?;
        let engine = Engine::open(dir.as_ref(), opts, fs, false)?;
        let wal = Wal {
            engine: engine.clone(),
            threads: Mutex::new(Vec::new()),
        };
        Ok((wal, Driver { engine }))
    }

    /// Called (from engine threads, at most once until `take_acks` runs) when there are
    /// acknowledgements to take.
    pub fn set_notifier(&self, f: Arc<dyn Fn() + Send + Sync>) {
        self.engine.acks.set_notifier(f);
    }

    pub fn recovery(&self) -> Vec<Truncation> {
        self.engine.recovery.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.engine.dir
    }

    /// Stages one record; returns its LSN. The acknowledgement comes through `take_acks`,
    /// with the record's position.
    pub fn append(&self, partition: u16, payload: &[u8]) -> Result<u64> {
        stage::one(&self.engine, partition, payload, None)
    }

    /// Stages one record whose caller holds no promise (it learns of the record from the
    /// ack counts alone, so no position is reported). With `expected_lsn` the record is
    /// staged only if it gets exactly that LSN: a caller that hands LSNs out before they
    /// reach the engine can never have told its user a different one.
    pub fn write(&self, partition: u16, payload: &[u8], expected_lsn: Option<u64>) -> Result<u64> {
        stage::one(&self.engine, partition, payload, Some(expected_lsn))
    }

    /// The LSN the next record staged on `partition` gets.
    pub fn next_lsn(&self, partition: u16) -> Result<u64> {
        self.engine.check_open()?;
        Ok(self.engine.existing(partition).map_or(1, |p| p.lock().next_lsn))
    }

    /// The largest payload one record may have (a larger one is `RecordTooLarge`).
    pub fn max_payload(&self) -> u64 {
        stage::max_payload(&self.engine.opts)
    }

    /// Stages records laid end to end in `data` (record `i`: `lens[i]` bytes, to
    /// partition `parts[i]`), in order, locking each partition once per run of its
    /// records. `lsns[i]` is 0 for an append, or the LSN a written record must get
    /// (see `write`); each becomes the record's LSN, or 0 when it failed with the error
    /// returned for it.
    pub fn stage_many(&self, data: &[u8], lens: &[u32], parts: &[u16], lsns: &mut [u64]) -> Vec<(usize, Error)> {
        stage::many(&self.engine, data, lens, parts, lsns)
    }

    /// Stages a batch that will be in one segment and survive a crash whole or not at all.
    pub fn append_batch(&self, partition: u16, payloads: &[&[u8]]) -> Result<(u64, u64)> {
        if payloads.is_empty() {
            return Err(Error::invalid("payloads must hold at least one record"));
        }
        stage::batch(&self.engine, partition, payloads)
    }

    /// Everything acknowledged or failed since the last call, per partition, in order.
    pub fn take_acks(&self) -> Vec<Ack> {
        self.engine.acks.take(&self.engine.parts)
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Pending {
        if let Err(e) = self.engine.check_open() {
            return Pending::ready(Err(e));
        }
        self.engine.sync_everywhere()
    }

    /// Removes every record above `lsn`; the next append gets `lsn + 1`.
    pub fn truncate_after(&self, partition: u16, lsn: u64) -> Result<Pending> {
        self.engine.check_open()?;
        let Some(p) = self.engine.existing(partition) else {
            return if lsn == 0 {
                Ok(Pending::ready(Ok(())))
            } else {
                Err(lsn_out_of_range(lsn, 0))
            };
        };
        let mut st = p.lock();
        self.engine.check_writable(&st)?;
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
        self.engine
            .enqueue(p, st, Item::Truncate(lsn, Reply::new(done.clone())));
        Ok(Pending::queued(done))
    }

    /// Deletes the oldest segments whose records are all below `min_lsn` (never the active one).
    pub fn purge_before(&self, partition: u16, min_lsn: u64) -> Result<Pending<PurgeResult>> {
        self.engine.check_open()?;
        let Some(p) = self.engine.existing(partition) else {
            return Ok(Pending::ready(Ok(PurgeResult::default())));
        };
        let done = Done::new();
        self.engine
            .enqueue(p, p.lock(), Item::Purge(min_lsn, Reply::new(done.clone())));
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
        self.engine.close()
    }

    pub fn first_lsn(&self, partition: u16) -> Result<u64> {
        self.engine.check_open()?;
        Ok(self.engine.existing(partition).map_or(0, |p| p.lock().first_retained()))
    }

    pub fn last_lsn(&self, partition: u16) -> Result<u64> {
        self.engine.check_open()?;
        Ok(self.engine.existing(partition).map_or(0, |p| p.lock().acked_lsn))
    }

    pub fn partitions(&self) -> Result<Vec<u16>> {
        self.engine.check_open()?;
        Ok(self
            .engine
            .all_existing()
            .filter(|p| !p.lock().segs.is_empty())
            .map(|p| p.id)
            .collect())
    }

    pub fn segments(&self, partition: u16) -> Result<Vec<SegmentInfo>> {
        self.engine.check_open()?;
        let Some(p) = self.engine.existing(partition) else {
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
        self.engine
            .all_existing()
            .map(|p| p.lock().free_frames.as_ref().map_or(0, |f| f.buf.capacity()))
            .sum()
    }

    pub fn stats(&self) -> Result<Stats> {
        self.engine.check_open()?;
        let mut partitions = Vec::new();
        for p in self.engine.all_existing() {
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
        let c = &self.engine.counters;
        Ok(Stats {
            partitions,
            appends: c.appends.load(Relaxed),
            batches: c.batches.load(Relaxed),
            syncs: c.syncs.load(Relaxed),
            bytes_written: c.bytes_written.load(Relaxed),
        })
    }

    /// A reader positioned at `start`; may read the disk to check the position.
    pub fn reader(&self, partition: u16, start: Start) -> Result<Reader> {
        self.engine.check_open()?;
        let p = self.engine.partition(partition);
        Reader::new(
            self.engine.fs.clone(),
            self.engine.dir.clone(),
            self.engine.read_handles.clone(),
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
    engine: Arc<Engine>,
}

impl Driver {
    /// Partitions with work queued, in the order they became ready.
    pub fn ready(&self) -> Vec<u16> {
        self.engine.ready()
    }

    /// Runs one writer round of `partition` if it is ready (see [`Driver::ready`]);
    /// returns whether it ran. A partition with more work stays ready, at the back.
    pub fn step(&self, partition: u16) -> bool {
        self.engine.step(partition)
    }

    /// One tick of the interval syncer: a sync queued on every partition written since.
    pub fn tick_interval(&self) {
        self.engine.interval_tick();
    }

    /// Whether a close has finished (the writers would have exited).
    pub fn stopped(&self) -> bool {
        self.engine.stopped()
    }
}
