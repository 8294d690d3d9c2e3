//! Read-only inspection of a WAL directory, for the command line (`segwal inspect`,
//! `verify`, `dump`).
//!
//! Nothing here writes: no directory lock, no torn tail cut, no truncate redo replayed, so
//! these functions are safe to run next to a live writer (which may hold the directory).
//! A writer appending meanwhile may show up as a torn tail of the newest segment, which is
//! reported as such, never as corruption. Frames are decoded by `format` and `segment` (the
//! same code recovery and the reader use); the rules are those of docs/FORMAT.md.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};
use crate::format::{self, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, FsFile, OsFs};
use crate::recovery;
use crate::segment;
use crate::segment::FrameWalk;
use crate::truncate;

const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

/// What kind of trouble a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A partly written end of the newest segment (a crash, or a write in progress):
    /// open would cut it. Not damage.
    TornTail,
    /// Damage that open would refuse (`WAL_CORRUPTION`) or that `repair` would cut.
    Corruption,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::TornTail => "torn-tail",
            ProblemKind::Corruption => "corruption",
        }
    }
}

/// Where and why a partition is not clean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Segment file name (in the WAL directory).
    pub file: String,
    /// Byte offset in `file`: the damaged frame, or where the torn tail starts.
    pub offset: u64,
    pub reason: String,
    /// For a torn tail, the bytes open would cut (`file`'s size minus `offset`); 0 otherwise.
    pub torn_bytes: u64,
}

impl Problem {
    fn corruption(file: impl Into<String>, offset: u64, reason: impl Into<String>) -> Problem {
        Problem {
            kind: ProblemKind::Corruption,
            file: file.into(),
            offset,
            reason: reason.into(),
            torn_bytes: 0,
        }
    }

    fn torn(file: impl Into<String>, offset: u64, reason: impl Into<String>, torn_bytes: u64) -> Problem {
        Problem {
            kind: ProblemKind::TornTail,
            file: file.into(),
            offset,
            reason: reason.into(),
            torn_bytes,
        }
    }

    /// `WAL_CORRUPTION` error naming the file and offset.
    pub fn to_error(&self) -> Error {
        Error::corruption(self.file.clone(), self.offset, &self.reason)
    }
}

/// One segment file as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    pub index: u64,
    pub file: String,
    /// Logical file size.
    pub bytes: u64,
    /// From the header; `None` if the header is unreadable.
    pub first_lsn: Option<u64>,
    /// LSN of the last whole record (batch) found; `first_lsn - 1` when it holds none;
    /// `None` if unknown (unreadable header, or not looked at after earlier damage).
    pub last_lsn: Option<u64>,
    /// Creation time from the header, Unix milliseconds.
    pub created_ms: Option<u64>,
    /// The partition's newest segment (the one a writer appends to).
    pub newest: bool,
    /// A file a writer created ahead for its next segment and has not started (no header
    /// yet): not part of the log, and removed by the next open. Listed after the newest.
    pub spare: bool,
    /// What is wrong with this segment, if anything.
    pub problem: Option<Problem>,
    /// Whether every frame was read and checked (`verify`), not just the header and the
    /// last frame (`inspect`); false also for segments skipped after earlier damage.
    pub checked: bool,
}

impl SegmentReport {
    /// Records held (whole batches only).
    pub fn records(&self) -> u64 {
        match (self.first_lsn, self.last_lsn) {
            (Some(f), Some(l)) if l >= f => l - f + 1,
            _ => 0,
        }
    }
}

/// One partition as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    pub partition: u16,
    /// First LSN of the oldest segment (0 if unknown).
    pub first_lsn: u64,
    /// Last LSN before the first problem (`first_lsn - 1` if no record; 0 if unknown).
    pub last_lsn: u64,
    /// Sum of the segment file sizes.
    pub bytes: u64,
    pub segments: Vec<SegmentReport>,
    /// Every problem found, in file order; at most one corruption (the first: what
    /// follows it is not trusted) and at most one torn tail.
    pub problems: Vec<Problem>,
    /// A `part_{p}.truncating` redo file is present: the next open finishes a cut.
    pub pending_truncation: bool,
}

impl PartitionReport {
    pub fn records(&self) -> u64 {
        if self.last_lsn >= self.first_lsn && self.first_lsn > 0 {
            self.last_lsn - self.first_lsn + 1
        } else {
            0
        }
    }

    /// The first corruption, if any.
    pub fn damage(&self) -> Option<&Problem> {
        self.problems.iter().find(|p| p.kind == ProblemKind::Corruption)
    }

    /// The torn tail, if any.
    pub fn torn_tail(&self) -> Option<&Problem> {
        self.problems.iter().find(|p| p.kind == ProblemKind::TornTail)
    }
}

/// Result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub partitions: Vec<PartitionReport>,
    /// Segment files checked in full.
    pub segments: u64,
    /// Records whose checksum was verified (whole batches only).
    pub records: u64,
    /// Bytes of segment files read and checked.
    pub bytes: u64,
}

impl VerifyReport {
    /// No corruption anywhere (torn tails are not damage).
    pub fn is_clean(&self) -> bool {
        self.partitions.iter().all(|p| p.damage().is_none())
    }

    pub fn damage(&self) -> impl Iterator<Item = &Problem> {
        self.partitions.iter().filter_map(PartitionReport::damage)
    }
}

/// Partitions, segments, LSN ranges and sizes: each segment's header and last frame (the
/// same O(segments) reads open does); a segment whose last frame does not check out is
/// scanned to tell a torn tail from damage. Partitions in ascending order.
pub fn inspect(dir: impl AsRef<Path>) -> Result<Vec<PartitionReport>> {
    inspect_with(&OsFs, dir.as_ref())
}

pub fn inspect_with(fs: &dyn Fs, dir: &Path) -> Result<Vec<PartitionReport>> {
    let layout = Layout::read(fs, dir)?;
    let mut done = 0;
    let mut out = Vec::with_capacity(layout.partitions.len());
    for (&p, files) in &layout.partitions {
        let mut walk = Walk {
            fs,
            dir,
            partition: p,
            clean: layout.clean,
            full: false,
            progress: &mut |_| {},
            done: &mut done,
        };
        out.push(walk.partition(files, layout.intents.contains(&p))?);
    }
    Ok(out)
}

/// Checks every frame of every segment (checksum, LSN order, batch boundaries) and the
/// LSN chain across segments. `progress(done, total)` is called with bytes of segment
/// files, now and then and once at the end with `done == total`. The first damage of each
/// partition is reported (what follows it is skipped); a torn tail of the newest segment is
/// reported as a torn tail.
pub fn verify(dir: impl AsRef<Path>, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
    verify_with(&OsFs, dir.as_ref(), progress)
}

pub fn verify_with(fs: &dyn Fs, dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
    let layout = Layout::read(fs, dir)?;
    let total = layout.total_bytes(fs, dir);
    let mut done = 0u64;
    progress(0, total);
    let mut report = VerifyReport {
        partitions: Vec::with_capacity(layout.partitions.len()),
        segments: 0,
        records: 0,
        bytes: 0,
    };
    for (&p, files) in &layout.partitions {
        let mut tick = |d: u64| progress(d, total.max(d));
        let mut walk = Walk {
            fs,
            dir,
            partition: p,
            clean: layout.clean,
            full: true,
            progress: &mut tick,
            done: &mut done,
        };
        let pr = walk.partition(files, layout.intents.contains(&p))?;
        for s in pr.segments.iter().filter(|s| s.checked) {
            report.segments += 1;
            report.records += s.records();
            report.bytes += s.bytes;
        }
        report.partitions.push(pr);
    }
    progress(done.max(total), done.max(total));
    Ok(report)
}

/// The segment files of a directory, by partition, and the partitions with a pending
/// truncate redo file.
struct Layout {
    partitions: BTreeMap<u16, PartFiles>,
    intents: BTreeSet<u16>,
    /// The last close was clean (see `recovery::CLEAN_FILE`): nothing can be torn.
    clean: bool,
}

#[derive(Default, Clone)]
struct PartFiles {
    /// Segment indexes holding the log, ascending.
    indices: Vec<u64>,
    /// A last file without a valid header that open would remove (a spare created ahead,
    /// or a segment whose header never became durable): index, size, header all zero.
    unstarted: Option<(u64, u64, bool)>,
}

impl Layout {
    fn read(fs: &dyn Fs, dir: &Path) -> Result<Layout> {
        let names = fs
            .list_dir(dir)
            .map_err(|e| Error::io(&e, format!("listing {}", dir.display())))?;
        let mut layout = Layout {
            partitions: BTreeMap::new(),
            intents: BTreeSet::new(),
            clean: names.iter().any(|n| n == recovery::CLEAN_FILE),
        };
        for name in names {
            if let Some((p, index)) = format::parse_segment_file_name(&name) {
                layout.partitions.entry(p).or_default().indices.push(index);
            } else if truncate::is_intent_file(&name) {
                let p = name
                    .strip_prefix("part_")
                    .and_then(|r| r.strip_suffix(".truncating"))
                    .and_then(|p| p.parse::<u16>().ok());
                layout.intents.extend(p);
            }
        }
        for (&p, files) in layout.partitions.iter_mut() {
            files.indices.sort_unstable();
            let Some(&last) = files.indices.last() else { continue };
            let name = format::segment_file_name(p, last);
            let file = match fs.open(&dir.join(&name), false) {
                Ok(f) => f,
                // Removed since the listing (a writer dropping its spare at close).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    files.indices.pop();
                    continue;
                }
                Err(e) => return Err(Error::io(&e, format!("opening {name}"))),
            };
            let io = |e: std::io::Error| Error::io(&e, format!("reading {name}"));
            let len = file.len().map_err(io)?;
            let mut hb = [0u8; SEGMENT_HEADER_LEN];
            let got = file.read_full_at(&mut hb, 0).map_err(io)?;
            let zero = hb[..got].iter().all(|&b| b == 0);
            // The rule recovery removes such a file by.
            if SegmentHeader::decode(&hb[..got]).is_err() && (len <= HEADER || zero) {
                files.indices.pop();
                files.unstarted = Some((last, len, zero));
            }
        }
        Ok(layout)
    }

    /// Sum of the segment sizes (a file that vanished meanwhile counts 0).
    fn total_bytes(&self, fs: &dyn Fs, dir: &Path) -> u64 {
        let mut total = 0;
        for (&p, files) in &self.partitions {
            for &i in files.indices.iter().chain(files.unstarted.as_ref().map(|u| &u.0)) {
                let path = dir.join(format::segment_file_name(p, i));
                total += fs.open(&path, false).and_then(|f| f.len()).unwrap_or(0);
            }
        }
        total
    }
}

/// Walks one partition's segments, oldest first.
struct Walk<'a> {
    fs: &'a dyn Fs,
    dir: &'a Path,
    partition: u16,
    clean: bool,
    /// Scan every frame (verify) rather than trust the last one (inspect).
    full: bool,
    /// Called with the bytes done so far (over all partitions).
    progress: &'a mut dyn FnMut(u64),
    done: &'a mut u64,
}

/// How far the frames of a segment check out.
struct Frames {
    /// Just after the last frame that ends a batch.
    good_end: u64,
    good_last_lsn: u64,
    /// Where decoding stopped before the end, and why.
    stopped: Option<(u64, &'static str)>,
}

impl Walk<'_> {
    fn name(&self, index: u64) -> String {
        format::segment_file_name(self.partition, index)
    }

    fn advance(&mut self, bytes: u64) {
        *self.done += bytes;
        (self.progress)(*self.done);
    }

    fn partition(&mut self, files: &PartFiles, pending_truncation: bool) -> Result<PartitionReport> {
        let indices = &files.indices;
        let mut report = PartitionReport {
            partition: self.partition,
            first_lsn: 0,
            last_lsn: 0,
            bytes: 0,
            segments: Vec::with_capacity(indices.len()),
            problems: Vec::new(),
            pending_truncation,
        };
        // The LSN the next segment must start at, once known.
        let mut expect: Option<u64> = None;
        let mut damaged = false;
        for (i, &index) in indices.iter().enumerate() {
            let newest = i + 1 == indices.len();
            if i > 0 && index != indices[i - 1] + 1 && !damaged {
                let missing = self.name(indices[i - 1] + 1);
                report
                    .problems
                    .push(Problem::corruption(missing, 0, "segment file missing"));
                damaged = true;
            }
            let (seg, problem) = match self.segment(index, newest, expect, damaged) {
                Ok(x) => x,
                // Purged by a live writer since the listing: the log starts later.
                Err(e) if report.segments.is_empty() && e.errno.as_deref() == Some("ENOENT") => continue,
                Err(e) => return Err(e),
            };
            report.bytes += seg.bytes;
            if report.segments.is_empty() {
                report.first_lsn = seg.first_lsn.unwrap_or(0);
                report.last_lsn = report.first_lsn.saturating_sub(1);
            }
            if !damaged {
                if let Some(last) = seg.last_lsn {
                    report.last_lsn = last;
                    expect = Some(last + 1);
                }
            }
            if let Some(problem) = problem {
                damaged |= problem.kind == ProblemKind::Corruption;
                report.problems.push(problem);
            }
            report.segments.push(seg);
        }
        if let Some((index, len, zero)) = files.unstarted {
            let name = self.name(index);
            // A spare is empty (preallocated with the size kept) or all zeros; anything
            // else there was written by a writer that crashed before its header was.
            let problem = (!(zero && len <= HEADER)).then(|| {
                Problem::torn(
                    name.clone(),
                    0,
                    "new segment whose header was never written (open removes it)",
                    len,
                )
            });
            self.advance(len);
            report.bytes += len;
            report.problems.extend(problem.clone());
            report.segments.push(SegmentReport {
                index,
                file: name,
                bytes: len,
                first_lsn: None,
                last_lsn: None,
                created_ms: None,
                newest: false,
                spare: problem.is_none(),
                problem,
                checked: self.full,
            });
        }
        Ok(report)
    }

    /// Looks at one segment. `expect`: the LSN it must start at (from the previous one);
    /// `skip`: earlier damage, so only its header is read (for the listing).
    fn segment(
        &mut self,
        index: u64,
        newest: bool,
        expect: Option<u64>,
        skip: bool,
    ) -> Result<(SegmentReport, Option<Problem>)> {
        let name = self.name(index);
        let io = |doing: &'static str| {
            let name = name.clone();
            move |e: std::io::Error| Error::io(&e, format!("{doing} {name}"))
        };
        let file = self.fs.open(&self.dir.join(&name), false).map_err(io("opening"))?;
        let len = file.len().map_err(io("reading the size of"))?;
        let mut seg = SegmentReport {
            index,
            file: name.clone(),
            bytes: len,
            first_lsn: None,
            last_lsn: None,
            created_ms: None,
            newest,
            spare: false,
            problem: None,
            checked: false,
        };
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        let got = file.read_full_at(&mut hb, 0).map_err(io("reading"))?;
        let header = SegmentHeader::decode(&hb[..got]).and_then(|h| {
            if h.partition != self.partition || h.index != index {
                Err("segment header names another partition or index")
            } else if h.first_lsn == 0 {
                Err("segment header has first LSN 0")
            } else {
                Ok(h)
            }
        });
        let header = match header {
            Ok(h) => h,
            Err(why) => {
                if skip {
                    self.advance(len);
                    return Ok((seg, None));
                }
                let problem = Problem::corruption(name, 0, why);
                seg.checked = self.full;
                seg.problem = Some(problem.clone());
                self.advance(len);
                return Ok((seg, Some(problem)));
            }
        };
        seg.first_lsn = Some(header.first_lsn);
        seg.created_ms = Some(header.created_ms);
        if skip {
            self.advance(len);
            return Ok((seg, None));
        }
        seg.checked = self.full;
        if let Some(e) = expect.filter(|&e| e != header.first_lsn) {
            let problem = Problem::corruption(
                name,
                0,
                format!(
                    "segment starts at LSN {} where {e} was expected (the previous segment ends at {})",
                    header.first_lsn,
                    e - 1
                ),
            );
            seg.problem = Some(problem.clone());
            self.advance(len);
            return Ok((seg, Some(problem)));
        }
        let frames = self
            .frames(file.as_ref(), &header, len, newest)
            .map_err(io("reading"))?;
        seg.last_lsn = Some(frames.good_last_lsn);
        if frames.good_end == len {
            return Ok((seg, None));
        }
        // Every frame up to the end checks out but the last batch is unfinished (torn
        // if newest); or decoding stopped at `bad_at` (torn if nothing valid follows).
        let (bad_at, why) = frames.stopped.unwrap_or((frames.good_end, "incomplete batch"));
        let torn = newest
            && recovery::is_torn(
                file.as_ref(),
                header.salt,
                frames.stopped.map(|(at, _)| at),
                len,
                frames.good_last_lsn + 1,
                self.clean,
            )
            .map_err(io("reading"))?;
        let problem = if torn {
            Problem::torn(name, frames.good_end, why, len - frames.good_end)
        } else if newest && self.clean {
            Problem::corruption(name, bad_at, format!("{why} (after a clean shutdown)"))
        } else if newest {
            Problem::corruption(name, bad_at, format!("{why} (synced records follow)"))
        } else {
            Problem::corruption(name, bad_at, format!("{why} (in a sealed segment)"))
        };
        seg.problem = Some(problem.clone());
        Ok((seg, Some(problem)))
    }

    /// Frames of a segment: the last one only when it checks out and `!self.full`,
    /// otherwise a scan of all of them. Reports progress for the whole segment.
    fn frames(&mut self, file: &dyn FsFile, header: &SegmentHeader, len: u64, newest: bool) -> std::io::Result<Frames> {
        let first = header.first_lsn;
        if len <= HEADER {
            // (A valid header means `len == HEADER`: an empty segment.)
            self.advance(len);
            return Ok(Frames {
                good_end: len,
                good_last_lsn: first - 1,
                stopped: None,
            });
        }
        if !self.full {
            if let Some((_, f)) = segment::read_frame_ending_at(file, header.salt, len)? {
                // Like open: the last frame, and for the newest segment everything back
                // to its last sync point.
                let intact = || segment::intact_tail(file, header.salt, first, len);
                if f.batch_left == 0 && f.lsn >= first && (!newest || intact()?.is_some()) {
                    self.advance(len);
                    return Ok(Frames {
                        good_end: len,
                        good_last_lsn: f.lsn,
                        stopped: None,
                    });
                }
            }
        }
        self.advance(HEADER);
        let frames = self.scan(file, header.salt, len, first)?;
        self.advance(len - frames.good_end.max(HEADER));
        Ok(frames)
    }

    /// `segment::scan` over `[HEADER, len)` in windows, for progress. A window that ends
    /// inside a frame (or a batch) is retried from the last batch end, larger if needed.
    fn scan(&mut self, file: &dyn FsFile, salt: u32, len: u64, first: u64) -> std::io::Result<Frames> {
        const WINDOW: u64 = 8 << 20;
        let mut out = Frames {
            good_end: HEADER,
            good_last_lsn: first - 1,
            stopped: None,
        };
        let mut window = WINDOW;
        while out.good_end < len {
            let pos = out.good_end;
            let end = pos.saturating_add(window).min(len);
            let s = segment::scan(file, salt, pos, end, out.good_last_lsn + 1)?;
            let advanced = s.good_end > pos;
            if advanced {
                self.advance(s.good_end - pos);
                out.good_end = s.good_end;
                out.good_last_lsn = s.good_last_lsn;
                window = WINDOW;
            }
            let cut_by_window = end < len
                && match s.stopped {
                    None => true,
                    // The only reasons that depend on where the window ends.
                    Some((_, why)) => why == "segment ends inside a record" || why == "record length out of range",
                };
            if cut_by_window {
                if !advanced {
                    window = window.saturating_mul(2);
                }
                continue;
            }
            out.stopped = s.stopped;
            break;
        }
        Ok(out)
    }
}

/// A record read by [`records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub lsn: u64,
    /// Segment index and byte offset where the record's frame starts.
    pub segment: u64,
    pub offset: u64,
    pub payload: Vec<u8>,
}

/// The records of one partition, in LSN order, read straight from the files (see
/// [`records`]).
pub struct Records {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    partition: u16,
    /// Segment indexes from the one holding the start on.
    indices: Vec<u64>,
    at: usize,
    cur: Option<Cursor>,
    next_lsn: u64,
    from_lsn: u64,
    /// Records of the batch being read, held until its last frame checks out.
    batch: Vec<Record>,
    ready: VecDeque<Record>,
    done: bool,
    clean: bool,
}

struct Cursor {
    index: u64,
    name: String,
    file: Arc<dyn FsFile>,
    walk: FrameWalk<Arc<dyn FsFile>>,
    salt: u32,
    len: u64,
    newest: bool,
}

/// Reads the records of `partition` from `from_lsn` on (0: from the first retained),
/// checking every frame, without the directory lock. Yields only whole batches: a torn
/// tail of the newest segment (or a write in progress) ends the iteration quietly; any
/// other damage is a `WAL_CORRUPTION` item naming the file and offset, after which the
/// iteration ends. A `from_lsn` below the first retained LSN fails with `WAL_LSN_PURGED`;
/// one above the last LSN + 1 with `WAL_LSN_OUT_OF_RANGE` once the end is reached.
/// A partition without segments yields nothing.
pub fn records(dir: impl AsRef<Path>, partition: u16, from_lsn: u64) -> Result<Records> {
    records_with(Arc::new(OsFs), dir.as_ref(), partition, from_lsn)
}

pub fn records_with(fs: Arc<dyn Fs>, dir: &Path, partition: u16, from_lsn: u64) -> Result<Records> {
    let layout = Layout::read(fs.as_ref(), dir)?;
    let indices = layout
        .partitions
        .get(&partition)
        .map(|f| f.indices.clone())
        .unwrap_or_default();
    let mut it = Records {
        fs,
        dir: dir.to_path_buf(),
        partition,
        indices,
        at: 0,
        cur: None,
        next_lsn: 0,
        from_lsn,
        batch: Vec::new(),
        ready: VecDeque::new(),
        done: false,
        clean: layout.clean,
    };
    if it.indices.is_empty() {
        it.done = true;
        return Ok(it);
    }
    // Start at the last segment whose first LSN is at or below `from_lsn`; headers are
    // read from the newest back, so a recent start costs few reads. A header that does
    // not decode is passed over here: reading reports it if it gets there.
    if from_lsn > 0 {
        let mut start = None;
        let mut oldest_first = None;
        for (i, &index) in it.indices.iter().enumerate().rev() {
            let Ok(header) = it.header(index) else { continue };
            if header.first_lsn <= from_lsn {
                start = Some(i);
                break;
            }
            oldest_first = Some(header.first_lsn);
        }
        match start {
            Some(i) => {
                it.indices.drain(..i);
            }
            None => {
                // (Unless the oldest header is damaged: then reading meets the damage.)
                let oldest_ok_or_gone = match it.header(it.indices[0]) {
                    Ok(_) => true,
                    Err(e) => e.errno.as_deref() == Some("ENOENT"),
                };
                if let Some(first) = oldest_first.filter(|_| oldest_ok_or_gone) {
                    return Err(Error::new(
                        ErrorCode::LsnPurged,
                        format!("LSN {from_lsn} of partition {partition} has been purged (first retained LSN {first})"),
                    ));
                }
                // No readable header at or below: read from the oldest (and meet the damage).
            }
        }
    }
    Ok(it)
}

impl Records {
    fn name(&self, index: u64) -> String {
        format::segment_file_name(self.partition, index)
    }

    fn header(&self, index: u64) -> Result<SegmentHeader> {
        let name = self.name(index);
        let file = self
            .fs
            .open(&self.dir.join(&name), false)
            .map_err(|e| Error::io(&e, format!("opening {name}")))?;
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        let got = file
            .read_full_at(&mut hb, 0)
            .map_err(|e| Error::io(&e, format!("reading {name}")))?;
        match SegmentHeader::decode(&hb[..got]) {
            Ok(h) if h.partition == self.partition && h.index == index && h.first_lsn > 0 => Ok(h),
            Ok(_) => Err(Error::corruption(
                name,
                0,
                "segment header names another partition or index",
            )),
            Err(why) => Err(Error::corruption(name, 0, why)),
        }
    }

    /// Opens segment `self.indices[self.at]`; false at the end of the log.
    fn open_next(&mut self) -> Result<bool> {
        let Some(&index) = self.indices.get(self.at) else {
            return Ok(false);
        };
        let newest = self.at + 1 == self.indices.len();
        let name = self.name(index);
        if let Some(prev) = &self.cur {
            if index != prev.index + 1 {
                return Err(Error::corruption(
                    self.name(prev.index + 1),
                    0,
                    format!("segment file missing (needed for LSN {})", self.next_lsn),
                ));
            }
        }
        let file = match self.fs.open(&self.dir.join(&name), false) {
            Ok(f) => f,
            // Purged by a live writer since the listing, before anything was read: from
            // the start of the log, the log now starts later; from an LSN, it is gone.
            Err(e) if self.cur.is_none() && !newest && e.kind() == std::io::ErrorKind::NotFound => {
                if self.from_lsn > 0 {
                    return Err(Error::new(
                        ErrorCode::LsnPurged,
                        format!(
                            "LSN {} of partition {} has been purged (while being read)",
                            self.from_lsn, self.partition
                        ),
                    ));
                }
                self.at += 1;
                return self.open_next();
            }
            Err(e) => return Err(Error::io(&e, format!("opening {name}"))),
        };
        let len = file
            .len()
            .map_err(|e| Error::io(&e, format!("reading the size of {name}")))?;
        let header = self.header(index)?;
        if self.cur.is_some() && header.first_lsn != self.next_lsn {
            return Err(Error::corruption(
                name,
                0,
                format!(
                    "segment starts at LSN {} where {} was expected",
                    header.first_lsn, self.next_lsn
                ),
            ));
        }
        self.next_lsn = header.first_lsn;
        self.at += 1;
        self.cur = Some(Cursor {
            index,
            name,
            walk: FrameWalk::new(Arc::clone(&file), header.salt, HEADER.min(len), len, 1 << 20),
            file,
            salt: header.salt,
            len,
            newest,
        });
        Ok(true)
    }

    /// Reads frames until a batch completes (moved to `ready`) or the log ends.
    fn fill(&mut self) -> Result<()> {
        loop {
            let (step, segment) = match self.cur.as_mut() {
                Some(cur) => (
                    cur.walk
                        .next_frame()
                        .map_err(|e| Error::io(&e, format!("reading {}", cur.name)))?,
                    cur.index,
                ),
                None => (None, 0),
            };
            match step {
                None => {
                    if let Some(first) = self.batch.first() {
                        // Every frame checks out, but the segment ends inside a batch.
                        let at = first.offset;
                        return self.stop(at, "incomplete batch", false);
                    }
                    if self.open_next()? {
                        continue;
                    }
                    self.done = true;
                    if self.from_lsn > self.next_lsn {
                        return Err(Error::new(
                            ErrorCode::LsnOutOfRange,
                            format!(
                                "fromLsn {} is above lastLsn + 1 ({}) of partition {}",
                                self.from_lsn, self.next_lsn, self.partition
                            ),
                        ));
                    }
                    return Ok(());
                }
                Some(Ok((at, f, _))) if f.lsn != self.next_lsn => {
                    return self.stop(at, "record out of LSN order", true)
                }
                Some(Ok((at, f, bytes))) => {
                    self.batch.push(Record {
                        lsn: f.lsn,
                        segment,
                        offset: at,
                        payload: bytes[f.payload_range()].to_vec(),
                    });
                    self.next_lsn += 1;
                    if f.batch_left == 0 {
                        let from = self.from_lsn;
                        self.ready.extend(self.batch.drain(..).filter(|r| r.lsn >= from));
                        if !self.ready.is_empty() {
                            return Ok(());
                        }
                    }
                }
                Some(Err(why)) => {
                    let at = self.cur.as_ref().map_or(HEADER, |c| c.walk.pos);
                    return self.stop(at, why, true);
                }
            }
        }
    }

    /// Reading stopped at `at`: the end of the log if that is a torn tail of the newest
    /// segment (an unfinished last batch, or a bad frame with nothing valid after it),
    /// damage otherwise.
    fn stop(&mut self, at: u64, why: &str, bad_frame: bool) -> Result<()> {
        self.done = true;
        let min_lsn = self.batch.first().map_or(self.next_lsn, |r| r.lsn);
        self.batch.clear();
        let Some(cur) = &self.cur else {
            return Ok(());
        };
        let torn = cur.newest
            && recovery::is_torn(
                cur.file.as_ref(),
                cur.salt,
                bad_frame.then_some(at),
                cur.len,
                min_lsn,
                self.clean,
            )
            .map_err(|e| Error::io(&e, format!("reading {}", cur.name)))?;
        if torn {
            return Ok(());
        }
        Err(Error::corruption(cur.name.clone(), at, why))
    }
}

impl Iterator for Records {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // The integration tests (tests/inspect.rs) write real WALs; these check the
    // windowed scan on hand-made segments.
    use super::*;
    use crate::format::{push_frame, seal};

    fn segment_file(dir: &Path, partition: u16, index: u64, first_lsn: u64, frames: &[(u64, u32, usize)]) -> u32 {
        let h = SegmentHeader {
            partition,
            index,
            first_lsn,
            salt: 0x5eed_0000 + index as u32,
            created_ms: 1,
        };
        let mut b = h.encode().to_vec();
        for &(lsn, batch_left, size) in frames {
            let start = b.len();
            push_frame(&mut b, lsn, batch_left, &vec![lsn as u8; size]);
            seal(&mut b[start..], h.salt);
        }
        std::fs::write(dir.join(format::segment_file_name(partition, index)), b).unwrap();
        h.salt
    }

    #[test]
    fn windowed_scan_crosses_large_frames_and_batches() {
        let dir = tempfile::tempdir().unwrap();
        // 3 MiB frames against the 8 MiB window, and a batch spanning ~20 MiB.
        let mut frames: Vec<(u64, u32, usize)> = (1..=5).map(|l| (l, 0, 3 << 20)).collect();
        frames.extend((6..=12).map(|l| (l, (12 - l) as u32, 3 << 20)));
        frames.push((13, 0, 17 << 20));
        segment_file(dir.path(), 0, 1, 1, &frames);
        let mut calls = Vec::new();
        let r = verify(dir.path(), &mut |d, t| calls.push((d, t))).unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.records, 13);
        assert_eq!(r.partitions[0].last_lsn, 13);
        assert!(calls.len() > 3);
        let total = calls[0].1;
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(*calls.last().unwrap(), (total, total));
    }

    #[test]
    fn out_of_order_lsn_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        segment_file(dir.path(), 2, 1, 1, &[(1, 0, 10), (2, 0, 10), (4, 0, 10)]);
        segment_file(dir.path(), 2, 2, 5, &[(5, 0, 10)]);
        let r = verify(dir.path(), &mut |_, _| {}).unwrap();
        let d = r.partitions[0].damage().unwrap();
        assert_eq!(d.file, "part_2_0000000001.wal");
        assert_eq!(d.offset, 64 + 2 * 48);
        assert!(d.reason.contains("out of LSN order"), "{d:?}");
    }
}
