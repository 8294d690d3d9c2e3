//! Discovery at open: one directory scan, each segment's header, each sealed segment's
//! last frame, and the newest segment's tail. A torn tail is cut; any other damage is
//! an error (or, with `repair`, the log is cut before it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::format::{self, FrameInfo, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, FsFile};
use crate::options::{Options, Truncation};
use crate::partition::{Active, PState};
use crate::segment::{self, SegMeta};
use crate::truncate;

pub(crate) struct Found {
    pub partitions: Vec<(u16, PState)>,
    pub truncations: Vec<Truncation>,
    pub clean_mark: CleanMark,
}

const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

/// Left by a `close()` that made everything durable; removed (durably) before the next
/// change to the log's files (see [`CleanMark`]). Its presence means no tail can be torn:
/// any damage found is damage, never a power loss's leftovers (Kafka's clean-shutdown file
/// does the same).
pub(crate) const CLEAN_FILE: &str = "segwal.clean";

/// Records a clean shutdown (see [`CLEAN_FILE`]); everything must be durable already.
pub(crate) fn mark_clean(fs: &dyn Fs, dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::io(&e, format!("marking {} cleanly closed", dir.display()));
    fs.create(&dir.join(CLEAN_FILE)).map_err(io)?;
    fs.sync_dir(dir).map_err(io)
}

/// The clean-close mark from open until it is gone. It must be gone, durably, before
/// the first change to any segment or name: a crash after a change would otherwise be
/// judged as if nothing could be torn. It goes with that first change (the first writer
/// round, or a cut recovery makes) rather than at open, so that an open that only reads
/// costs no directory fsync (~1 ms here), and a close with nothing changed leaves it.
pub(crate) struct CleanMark {
    present: AtomicBool,
    taking: Mutex<()>,
}

impl CleanMark {
    fn new(present: bool) -> CleanMark {
        CleanMark {
            present: AtomicBool::new(present),
            taking: Mutex::new(()),
        }
    }

    /// Nothing has changed since the clean close that left it.
    pub fn is_present(&self) -> bool {
        self.present.load(Ordering::Acquire)
    }

    /// Removes the mark, durably, if it is still there. Nothing has changed when it
    /// fails, so the change that called it can fail alone, and the next one tries again.
    pub fn take(&self, fs: &dyn Fs, dir: &Path) -> Result<()> {
        if !self.is_present() {
            return Ok(());
        }
        let _one = self.taking.lock().unwrap_or_else(|p| p.into_inner());
        if !self.is_present() {
            return Ok(());
        }
        let io = |e: std::io::Error| Error::io(&e, format!("removing {CLEAN_FILE}"));
        match fs.remove(&dir.join(CLEAN_FILE)) {
            // NotFound: an earlier try removed it, and then its directory sync failed.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        fs.sync_dir(dir).map_err(io)?;
        self.present.store(false, Ordering::Release);
        Ok(())
    }
}

/// The one torn-versus-damaged decision: open cuts what it calls torn, inspect and verify
/// report it the same way. The frames of a partition's newest segment stop checking out
/// at `at` (`None`: every frame is valid but the last batch is unfinished); that is a
/// torn tail, written after the last completed fdatasync, unless the last close was clean
/// (then nothing was unsynced) or a sync-point frame follows (`segment::damage_is_torn`).
pub(crate) fn is_torn(
    file: &dyn FsFile,
    salt: u32,
    at: Option<u64>,
    end: u64,
    min_lsn: u64,
    clean: bool,
) -> std::io::Result<bool> {
    Ok(!clean
        && match at {
            None => true,
            Some(at) => segment::damage_is_torn(file, salt, at, end, min_lsn)?,
        })
}

pub(crate) fn recover(fs: &dyn Fs, dir: &Path, opts: &Options) -> Result<Found> {
    let list = |fs: &dyn Fs| {
        fs.list_dir(dir)
            .map_err(|e| Error::io(&e, format!("listing {}", dir.display())))
    };
    let names = list(fs)?;
    let clean = names.iter().any(|n| n == CLEAN_FILE);
    let mark = CleanMark::new(clean);
    for name in names {
        if truncate::is_intent_file(&name) {
            mark.take(fs, dir)?;
            truncate::replay_intent(fs, dir, &name)?;
        } else if format::parse_spare_file_name(&name).is_some() {
            // A spare made ahead and never used: nothing in it was ever acknowledged.
            fs.remove(&dir.join(&name))
                .map_err(|e| Error::io(&e, format!("removing {name}")))?;
        }
    }
    let mut by_partition: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for name in list(fs)? {
        if let Some((p, index)) = format::parse_segment_file_name(&name) {
            by_partition.entry(p).or_default().push(index);
        }
    }
    let mut found = Found {
        partitions: Vec::new(),
        truncations: Vec::new(),
        clean_mark: mark,
    };
    for (p, mut indices) in by_partition {
        indices.sort_unstable();
        let mut r = PartitionRecovery {
            fs,
            dir,
            opts,
            clean,
            mark: &found.clean_mark,
            partition: p,
            truncations: &mut found.truncations,
            unsynced: None,
        };
        if let Some(st) = r.recover(&indices)? {
            found.partitions.push((p, st));
        }
    }
    if !clean {
        // Names a killed process created, renamed or removed may not be durable yet,
        // and the log is about to be read and extended as it is now. A clean close
        // synced them all.
        fs.sync_dir(dir)
            .map_err(|e| Error::io(&e, format!("syncing {}", dir.display())))?;
    }
    Ok(found)
}

struct PartitionRecovery<'a> {
    fs: &'a dyn Fs,
    dir: &'a Path,
    opts: &'a Options,
    /// The last close was clean: nothing can be torn, nothing is unsynced.
    clean: bool,
    /// Taken before anything is cut or removed.
    mark: &'a CleanMark,
    partition: u16,
    truncations: &'a mut Vec<Truncation>,
    /// The segment `check_tail` looked at last and where its stretch after the last
    /// sync point starts (see `segment::resync`).
    unsynced: Option<(u64, u64)>,
}

/// A segment's size and what its header's place holds, with the file still open.
struct RawHeader {
    len: u64,
    bytes: [u8; SEGMENT_HEADER_LEN],
    /// Bytes of `bytes` the file had.
    got: usize,
    file: Arc<dyn FsFile>,
}

impl RawHeader {
    fn read(&self) -> &[u8] {
        &self.bytes[..self.got]
    }
}

/// A segment whose header checked out. No descriptor is kept: a partition may have
/// thousands of segments, and open must not need one descriptor per segment.
struct Opened {
    index: u64,
    len: u64,
    header: SegmentHeader,
    /// The frame that ends at `len` and where it starts (`None`: none checks out), read
    /// through the descriptor the header was read through: what a sealed segment, or the
    /// newest after a clean close, is judged by. Reading it apart opened every segment
    /// twice (1,000 segments: 28 ms per open against 20 on 648d61e).
    last: Option<(u64, FrameInfo)>,
}

impl PartitionRecovery<'_> {
    fn name(&self, index: u64) -> String {
        format::segment_file_name(self.partition, index)
    }

    fn open(&self, index: u64, write: bool) -> Result<Arc<dyn FsFile>> {
        self.fs
            .open(&self.dir.join(self.name(index)), write)
            .map_err(self.io(index, "opening"))
    }

    fn io(&self, index: u64, doing: &str) -> impl Fn(std::io::Error) -> Error + '_ {
        let name = self.name(index);
        let doing = doing.to_string();
        move |e| Error::io(&e, format!("{doing} {name}"))
    }

    fn recover(&mut self, indices: &[u64]) -> Result<Option<PState>> {
        let indices = self.drop_unstarted(indices)?;
        let mut segs: Vec<Opened> = Vec::new();
        for (i, &index) in indices.iter().enumerate() {
            if let Some(prev) = segs.last() {
                if index != prev.index + 1 {
                    let damage = Error::corruption(self.name(prev.index + 1), 0, "segment file missing");
                    self.repair_or(damage, &indices[i..])?;
                    break;
                }
            }
            let raw = self.read_header(index)?;
            let (len, hb) = (raw.len, raw.read());
            let header = SegmentHeader::decode(hb).and_then(|h| {
                if h.partition != self.partition || h.index != index {
                    Err("segment header names another partition or index")
                } else if segs.last().is_some_and(|p| h.first_lsn < p.header.first_lsn) {
                    Err("segment starts below the previous segment's first LSN")
                } else {
                    Ok(h)
                }
            });
            match header {
                Ok(header) => {
                    let last = segment::read_frame_ending_at(raw.file.as_ref(), header.salt, len)
                        .map_err(self.io(index, "reading"))?;
                    segs.push(Opened {
                        index,
                        len,
                        header,
                        last,
                    });
                }
                // A segment whose header never became durable before a crash: nothing in
                // it was ever acknowledged.
                Err(_) if i + 1 == indices.len() && (len <= HEADER || hb.iter().all(|&b| b == 0)) => {
                    // Closed before it goes: Windows removes an open file only once closed.
                    drop(raw);
                    self.remove(index, len)?;
                }
                Err(why) => {
                    drop(raw);
                    self.repair_or(Error::corruption(self.name(index), 0, why), &indices[i..])?;
                    break;
                }
            }
        }
        if segs.is_empty() {
            return Ok(None);
        }
        let mut metas: Vec<SegMeta> = Vec::with_capacity(segs.len());
        let n = segs.len();
        for i in 0..n {
            let s = &segs[i];
            let next_first = segs.get(i + 1).map(|x| x.header.first_lsn);
            let meta = match next_first {
                Some(nf) if !self.opts.repair => self.check_sealed(s, nf - 1)?,
                _ => match self.check_tail(s, next_first)? {
                    (meta, true) => meta,
                    (meta, false) => {
                        // Damage repaired here: what follows is gone.
                        let later: Vec<u64> = segs[i + 1..].iter().map(|x| x.index).collect();
                        self.remove_all(&later)?;
                        metas.push(meta);
                        break;
                    }
                },
            };
            metas.push(meta);
        }
        let last = metas
            .last()
            .map(|m| (m.index, m.bytes, m.salt, m.first_lsn, m.last_lsn));
        let Some((index, bytes, salt, first_lsn, last_lsn)) = last else {
            return Ok(None);
        };
        let file = self.open(index, true)?;
        // A killed process may have left records in the page cache that never reached
        // the disk, or whose fdatasync failed; they are part of the log from now on
        // (readers see them, LSNs go on after them), so they must be as durable as
        // everything acknowledged: what follows the last sync point is written again.
        if !self.clean {
            let from = self.unsynced.filter(|&(i, _)| i == index).map_or(0, |(_, from)| from);
            segment::resync(file.as_ref(), from, bytes).map_err(self.io(index, "syncing"))?;
        }
        if self.opts.preallocate {
            // Best effort: a full disk must not stop the log from opening.
            let _ = segment::preallocate_file(file.as_ref(), self.opts.segment_size.max(bytes));
        }
        let mut st = PState::empty(index + 1);
        st.next_lsn = last_lsn + 1;
        st.acked_lsn = last_lsn;
        st.log_start = metas[0].first_lsn;
        st.segs = metas;
        // No descriptor is kept: a WAL with 10,000 partitions must open under a small
        // `ulimit -n`; the first writer round reopens it.
        drop(file);
        st.active = Some(Active::resume(None, index, salt, first_lsn, bytes));
        Ok(Some(st))
    }

    /// Removes the newest segments whose header never became durable (nothing where the
    /// header goes: empty, or zeros): a rotation's rename and the process, or the power,
    /// died before its first fdatasync. With sync 'none' or an interval the segment before
    /// may not have its header durable either; it is then judged by the rules for the
    /// newest one (a torn tail), not as damage in the middle of the log.
    fn drop_unstarted<'i>(&mut self, mut indices: &'i [u64]) -> Result<&'i [u64]> {
        while let [.., prev, last] = *indices {
            if last != prev + 1 {
                break;
            }
            let raw = self.read_header(last)?;
            let (len, started) = (raw.len, raw.read().iter().any(|&b| b != 0));
            drop(raw);
            if started {
                break;
            }
            self.remove(last, len)?;
            indices = &indices[..indices.len() - 1];
        }
        Ok(indices)
    }

    /// A segment's logical size and the bytes where its header goes, read through `file`.
    fn read_header(&self, index: u64) -> Result<RawHeader> {
        let file = self.open(index, false)?;
        let len = file.len().map_err(self.io(index, "reading the size of"))?;
        let mut bytes = [0u8; SEGMENT_HEADER_LEN];
        let got = file.read_full_at(&mut bytes, 0).map_err(self.io(index, "reading"))?;
        Ok(RawHeader { len, bytes, got, file })
    }

    /// A sealed segment must end with exactly the record before the next one's first.
    fn check_sealed(&self, s: &Opened, last_lsn: u64) -> Result<SegMeta> {
        let name = self.name(s.index);
        let meta = SegMeta {
            index: s.index,
            first_lsn: s.header.first_lsn,
            last_lsn,
            bytes: s.len,
            salt: s.header.salt,
            marks: Vec::new(),
        };
        if last_lsn + 1 == s.header.first_lsn {
            if s.len == HEADER {
                return Ok(meta);
            }
            return Err(Error::corruption(
                name,
                HEADER,
                "segment holds records the next segment's first LSN leaves no room for",
            ));
        }
        match s.last {
            Some((_, f)) if f.lsn == last_lsn && f.batch_left == 0 => Ok(meta),
            Some((at, f)) => Err(Error::corruption(
                name,
                at,
                format!(
                    "sealed segment ends with record {} where the next segment expects {last_lsn}",
                    f.lsn
                ),
            )),
            None => Err(Error::corruption(
                name,
                s.len,
                "sealed segment is truncated or its last record is damaged",
            )),
        }
    }

    /// Checks (and, for the newest segment, cuts) a tail; with `repair`, scans it whole.
    /// Returns false when the segment was cut because of damage (later segments must go).
    fn check_tail(&mut self, s: &Opened, next_first: Option<u64>) -> Result<(SegMeta, bool)> {
        let first = s.header.first_lsn;
        let mut meta = SegMeta {
            index: s.index,
            first_lsn: first,
            last_lsn: first - 1,
            bytes: s.len,
            salt: s.header.salt,
            marks: Vec::new(),
        };
        self.unsynced = Some((s.index, 0));
        if s.len == HEADER && next_first.is_none_or(|nf| nf == first) {
            return Ok((meta, true));
        }
        if self.clean && !self.opts.repair && next_first.is_none() {
            if let Some((_, f)) = s.last.filter(|(_, f)| f.batch_left == 0 && f.lsn >= first) {
                // Nothing can be torn after a clean close, so nothing after a sync point
                // needs checking: the last frame gives the last LSN, as a sealed
                // segment's does. Walking back to the last sync point instead read the
                // whole segment when it was written without one (sync 'none'): 20 ms per
                // open for a 64 MiB active segment, against 2.5 on 648d61e.
                meta.last_lsn = f.lsn;
                self.unsynced = Some((s.index, s.len));
                return Ok((meta, true));
            }
        }
        let file = self.open(s.index, false)?;
        if !self.clean && !self.opts.repair && next_first.is_none() {
            if let Some((last, from)) = segment::intact_tail_from(file.as_ref(), s.header.salt, first, s.len)
                .map_err(self.io(s.index, "reading"))?
            {
                meta.last_lsn = last;
                self.unsynced = Some((s.index, from));
                return Ok((meta, true));
            }
        }
        let scan = segment::scan(file.as_ref(), s.header.salt, HEADER, s.len.max(HEADER), first)
            .map_err(self.io(s.index, "reading"))?;
        meta.last_lsn = scan.good_last_lsn;
        meta.marks = scan.marks;
        self.unsynced = Some((s.index, scan.sync_from));
        let clean = scan.good_end == s.len && next_first.is_none_or(|nf| nf == scan.good_last_lsn + 1);
        if clean {
            return Ok((meta, true));
        }
        let (bad_at, why) = scan.stopped.unwrap_or((scan.good_end, "incomplete batch"));
        // Frames all valid to the end but the last batch unfinished (a tear on a frame
        // boundary) is a torn tail too; so is damage with nothing valid after it.
        let torn = next_first.is_none()
            && is_torn(
                file.as_ref(),
                s.header.salt,
                scan.stopped.map(|(at, _)| at),
                s.len,
                scan.good_last_lsn + 1,
                self.clean,
            )
            .map_err(self.io(s.index, "reading"))?;
        if !torn && !self.opts.repair {
            let why = match (scan.stopped, next_first) {
                (Some(_), _) => why,
                (None, Some(_)) => "sealed segment ends before the next segment's first LSN",
                (None, None) => "segment ends inside a batch after a clean shutdown",
            };
            return Err(Error::corruption(self.name(s.index), bad_at, why));
        }
        self.cut(s, scan.good_end)?;
        meta.bytes = scan.good_end;
        meta.marks.retain(|&(_, off)| off < scan.good_end);
        Ok((meta, torn))
    }

    fn cut(&mut self, s: &Opened, at: u64) -> Result<()> {
        self.mark.take(self.fs, self.dir)?;
        let file = self.open(s.index, true)?;
        file.set_len(at)
            .and_then(|_| file.sync_data())
            .map_err(self.io(s.index, "cutting the torn tail of"))?;
        self.truncations.push(Truncation {
            partition: self.partition,
            segment: s.index,
            truncated_bytes: s.len - at,
        });
        Ok(())
    }

    /// With `repair`, drops `indices` (damaged and everything after); otherwise fails.
    fn repair_or(&mut self, damage: Error, indices: &[u64]) -> Result<()> {
        if !self.opts.repair {
            return Err(damage);
        }
        self.remove_all(indices)
    }

    fn remove_all(&mut self, indices: &[u64]) -> Result<()> {
        for &index in indices.iter().rev() {
            let len = self
                .open(index, false)?
                .len()
                .map_err(self.io(index, "reading the size of"))?;
            self.remove(index, len)?;
        }
        Ok(())
    }

    fn remove(&mut self, index: u64, len: u64) -> Result<()> {
        let name = self.name(index);
        self.mark.take(self.fs, self.dir)?;
        self.fs
            .remove(&self.dir.join(&name))
            .map_err(|e| Error::io(&e, format!("removing {name}")))?;
        self.fs
            .sync_dir(self.dir)
            .map_err(|e| Error::io(&e, "syncing the WAL directory"))?;
        if len > 0 {
            self.truncations.push(Truncation {
                partition: self.partition,
                segment: index,
                truncated_bytes: len,
            });
        }
        Ok(())
    }
}
