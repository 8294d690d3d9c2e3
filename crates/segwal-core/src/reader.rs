//! The chained reader: positioned by a binary search in the segment table (plus the
//! segment's seek points), it reads large chunks, verifies every frame, and moves to
//! segment `index + 1` at the end of each, insisting on LSN continuity.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};
use crate::format::{self, Decoded, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, FsFile};
use crate::handles::{ReadHandles, SegKey};
use crate::partition::{Cursor, PState, Partition, NO_CUT};
use crate::segment::{self, SegMeta, Target};
use crate::verify;

const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From this LSN; 0 means the start of the retained log.
    Lsn(u64),
    /// From the record at this position (as an append or a read reported it).
    Position { segment: u64, offset: u64 },
}

/// Records read in one go: payloads are ranges of `data`, so one buffer serves them all.
pub struct Batch {
    /// The records' frames in `data[..len]`; what follows is unspecified (a reused
    /// buffer keeps its old bytes, so that it need not be cleared before each read).
    pub data: Vec<u8>,
    pub len: usize,
    pub records: Vec<RecordRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    pub lsn: u64,
    pub segment: u64,
    pub offset: u64,
    pub payload_start: u32,
    pub payload_len: u32,
}

pub struct Reader {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    handles: Arc<ReadHandles>,
    part: Arc<Partition>,
    /// Where truncations reach this reader (see [`Cursor`]).
    cursor: Arc<Cursor>,
    /// The lowest LSN removed by a cut this reader learnt of and has not yet been
    /// judged against: kept until then, so that a batch read ahead and discarded by the
    /// caller cannot take the news with it.
    cut: u64,
    next_lsn: u64,
    /// Where `next_lsn` starts; `None` until sought.
    pos: Option<(u64, u64)>,
    /// The segment whose file this reader keeps open (see handles.rs).
    pinned: Option<SegKey>,
    /// The current segment's table entry once it is known to be sealed: a purge may
    /// take it out of the table while this reader finishes it.
    sealed: Option<SegMeta>,
}

impl Reader {
    pub(crate) fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        handles: Arc<ReadHandles>,
        part: Arc<Partition>,
        start: Start,
    ) -> Result<Reader> {
        let held = part.clone();
        let _reading = held.reading();
        let mut st = held.lock();
        if let Some(e) = &st.broken {
            return Err(e.clone());
        }
        let cursor = st.register_reader();
        let (next_lsn, pos) = match start {
            Start::Lsn(lsn) => {
                let lsn = if lsn == 0 { st.log_start } else { lsn };
                if lsn < st.log_start {
                    return Err(purged(part.id, lsn, st.log_start));
                }
                if lsn > st.acked_lsn + 1 {
                    return Err(Error::new(
                        ErrorCode::LsnOutOfRange,
                        format!(
                            "fromLsn {lsn} is above lastLsn + 1 ({}) of partition {}",
                            st.acked_lsn + 1,
                            part.id
                        ),
                    ));
                }
                // At the end: the next record goes right after the last one.
                let pos = if lsn == st.acked_lsn + 1 {
                    st.segs.last().map(|s| (s.index, s.bytes))
                } else {
                    None
                };
                (lsn, pos)
            }
            Start::Position { segment, offset } => {
                let Some(seg) = find_seg(&st, segment) else {
                    if st.segs.first().is_some_and(|s| segment < s.index) {
                        return Err(Error::new(
                            ErrorCode::LsnPurged,
                            format!("from.segment {segment} of partition {} has been purged", part.id),
                        ));
                    }
                    return Err(Error::invalid(format!(
                        "from.segment {segment} does not exist in partition {}",
                        part.id
                    )));
                };
                let seg = seg.clone();
                drop(st);
                let lsn = record_at(&Files::new(&fs, &dir, &handles, part.id), &seg, offset)?;
                (lsn, Some((segment, offset)))
            }
        };
        Ok(Reader {
            fs,
            dir,
            handles,
            part,
            cursor,
            cut: NO_CUT,
            next_lsn,
            pos,
            pinned: None,
            sealed: None,
        })
    }

    /// LSN of the next record this reader will return.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Goes back to `lsn` (at most where it is now), as if the records from there on had
    /// not been read: a caller that read ahead and dropped what it read ahead (a truncate
    /// removed it) resumes where its own caller is. Truncations are judged against this
    /// position at the next batch.
    pub fn rewind(&mut self, lsn: u64) {
        if lsn < self.next_lsn {
            self.next_lsn = lsn;
            self.pos = None;
        }
    }

    /// The next records, about `max_bytes` of them (at least one whole record);
    /// `None` when the reader has caught up with the acknowledged log.
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Option<Batch>> {
        self.next_batch_in(Vec::new(), max_bytes)
    }

    /// [`Reader::next_batch`], reading into `buf` (grown as needed, never cleared):
    /// callers that recycle batch buffers save the allocation, page faults and zeroing
    /// of a fresh one per batch.
    pub fn next_batch_in(&mut self, buf: Vec<u8>, max_bytes: usize) -> Result<Option<Batch>> {
        let pid = self.part.id;
        // No truncate changes a file while this batch is read (see `Partition::reading`).
        let part = self.part.clone();
        let _reading = part.reading();
        loop {
            let (seg, acked, next) = {
                let st = self.part.lock();
                if let Some(e) = &st.broken {
                    return Err(e.clone());
                }
                let cut = self.cursor.take();
                if cut != NO_CUT {
                    self.cut = self.cut.min(cut);
                    // The segment it was in may be gone or cut: find the place again by LSN.
                    self.pos = None;
                    self.sealed = None;
                }
                if self.cut != NO_CUT {
                    // API.md: a reader whose next LSN is at most the cut goes on (with the
                    // records appended after the truncation); any other has read removed
                    // records, or started above what is left, and fails.
                    if self.next_lsn > self.cut {
                        return Err(Error::new(
                            ErrorCode::LsnOutOfRange,
                            format!(
                                "partition {pid} was truncated after LSN {} while it was being read (next LSN {})",
                                self.cut - 1,
                                self.next_lsn
                            ),
                        ));
                    }
                    self.cut = NO_CUT;
                }
                if st.acked_lsn < self.next_lsn {
                    return Ok(None);
                }
                let Some((index, _)) = self.pos else {
                    let Some(i) = st.seg_for_lsn(self.next_lsn) else {
                        return Err(purged(pid, self.next_lsn, st.log_start));
                    };
                    let s = &st.segs[i];
                    let mark = s.marks.iter().rev().find(|&&(l, _)| l <= self.next_lsn);
                    let (from_lsn, from) = mark.copied().unwrap_or((s.first_lsn, HEADER));
                    let seek = (s.clone(), from_lsn, from);
                    drop(st);
                    self.seek(seek)?;
                    continue;
                };
                // Only a purge removes a segment below the cut (a cut resets `pos`). A
                // sealed segment never changes, so a reader inside one finishes it (its
                // file stays open while pinned); one that had not reached it is overtaken.
                let seg = match find_seg(&st, index) {
                    Some(seg) => seg.clone(),
                    None => match &self.sealed {
                        Some(s) if s.index == index => s.clone(),
                        // It was at the end of a segment purged since: its next record is
                        // retained, in a later segment; find it by LSN.
                        _ if self.next_lsn >= st.log_start && st.seg_for_lsn(self.next_lsn).is_some() => {
                            self.pos = None;
                            continue;
                        }
                        _ => return Err(purged(pid, self.next_lsn, st.log_start)),
                    },
                };
                let next = find_seg(&st, index + 1).cloned();
                if next.is_some() {
                    self.sealed = Some(seg.clone());
                }
                let next = match next {
                    // It finished a segment purged under it, and the next one went too.
                    None if st.segs.first().is_some_and(|s| s.index > index) => {
                        Err(purged(pid, self.next_lsn, st.log_start))
                    }
                    n => Ok(n),
                };
                (seg, st.acked_lsn, next)
            };
            let (index, offset) = self.pos.unwrap_or_default();
            if offset >= seg.bytes {
                let Some(next) = next? else {
                    return Err(Error::corruption(
                        format::segment_file_name(pid, index + 1),
                        0,
                        format!("segment file missing (needed for LSN {})", self.next_lsn),
                    ));
                };
                if next.first_lsn != self.next_lsn {
                    return Err(Error::corruption(
                        format::segment_file_name(pid, next.index),
                        0,
                        format!(
                            "segment starts at LSN {} where {} was expected",
                            next.first_lsn, self.next_lsn
                        ),
                    ));
                }
                self.pos = Some((next.index, HEADER));
                continue;
            }
            return self.read(buf, &seg, offset, acked, max_bytes).map(Some);
        }
    }

    /// `seg`'s file, kept open while this reader is in it.
    fn pin(&mut self, seg: &SegMeta) -> Result<Arc<dyn FsFile>> {
        let files = Files::new(&self.fs, &self.dir, &self.handles, self.part.id);
        let key = files.key(seg);
        let file = self
            .handles
            .pin(self.fs.as_ref(), &files.path(seg), key)
            .map_err(|e| files.error(e, seg, self.next_lsn))?;
        if let Some(old) = self.pinned.replace(key) {
            self.handles.unpin(old);
        }
        Ok(file)
    }

    fn seek(&mut self, (seg, from_lsn, from): (SegMeta, u64, u64)) -> Result<()> {
        let file = self.pin(&seg)?;
        let name = format::segment_file_name(self.part.id, seg.index);
        let mut found = Vec::new();
        let (at, _) = segment::find_frame(
            file.as_ref(),
            seg.salt,
            from,
            seg.bytes,
            (from_lsn, Target::Lsn(self.next_lsn)),
            Some(&mut found),
        )
        .map_err(|e| Error::io(&e, format!("reading {name}")))?
        .map_err(|(off, why)| Error::corruption(name, off, why))?;
        self.pos = Some((seg.index, at));
        if !found.is_empty() {
            // Keep what the scan learned: the next seek into this segment starts closer.
            let mut st = self.part.lock();
            if let Some(s) = st.segs.iter_mut().find(|s| s.index == seg.index && s.salt == seg.salt) {
                s.marks.extend(found);
                s.marks.sort_unstable();
                s.marks.dedup();
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: Vec<u8>, seg: &SegMeta, offset: u64, acked: u64, max_bytes: usize) -> Result<Batch> {
        let file = self.pin(seg)?;
        let name = format::segment_file_name(self.part.id, seg.index);
        let io = |e: std::io::Error| Error::io(&e, format!("reading {name}"));
        let avail = seg.bytes - offset;
        let mut want = (max_bytes.max(4096) as u64).min(avail) as usize;
        let mut data = buf;
        // Room for the whole batch at once: growing step by step would copy what was read.
        data.reserve(want.saturating_sub(data.len()));
        // The batch is read in steps, each verified while it is still in the CPU's cache
        // (a whole MiB read at once had left its start in memory by the time the frames
        // were walked). `short`: the file ended before `got` reached what was asked.
        let mut got = file
            .read_range_into(&mut data, 0, want.min(READ_STEP), offset)
            .map_err(io)?;
        let mut short = got < want.min(READ_STEP);
        if got == 0 {
            // The file ends where the segment table has acknowledged records (it was cut
            // under us). An empty batch would not move the reader: callers reading until
            // `None` would spin.
            return Err(Error::corruption(name, offset, "segment file ends before its records"));
        }
        let mut records = Vec::with_capacity(records_in(&data[..got], want));
        let mut pos = 0usize;
        while self.next_lsn <= acked {
            if pos == got && got < want && !short {
                let to = want.min(got + READ_STEP);
                let n = file.read_range_into(&mut data, got, to, offset).map_err(io)?;
                short = got + n < to;
                got += n;
            }
            if pos >= got {
                break;
            }
            // The common case: a run of frames whose headers say they are the next
            // records, their checksums then verified together (verify.rs). A frame that
            // is anything else, or whose checksum fails, ends the run and goes through
            // `decode` alone below, which says what is wrong.
            let first = records.len();
            let (mut at, mut stopped) = (pos, false);
            while at < got && self.next_lsn + ((records.len() - first) as u64) <= acked && records.len() - first < RUN {
                match format::decode_unverified(&data[at..got], seg.bytes - (offset + at as u64)) {
                    Decoded::Frame(f) if f.lsn == self.next_lsn + (records.len() - first) as u64 => {
                        records.push(RecordRef {
                            lsn: f.lsn,
                            segment: seg.index,
                            offset: offset + at as u64,
                            payload_start: (at + format::FRAME_HEADER_LEN) as u32,
                            payload_len: f.payload_len,
                        });
                        at += f.frame_len;
                    }
                    _ => {
                        stopped = true;
                        break;
                    }
                }
            }
            let run = &records[first..];
            let frame = |r: &RecordRef| {
                let start = r.payload_start as usize - format::FRAME_HEADER_LEN;
                &data[start..start + format::frame_len(r.payload_len as usize)]
            };
            if let Some(bad) = verify::first_mismatch(seg.salt, run.iter().map(frame)) {
                records.truncate(first + bad);
                stopped = true;
            }
            if let Some(last) = records[first..].last() {
                pos = last.payload_start as usize - format::FRAME_HEADER_LEN
                    + format::frame_len(last.payload_len as usize);
                self.next_lsn = last.lsn + 1;
            }
            if !stopped {
                continue;
            }
            let here = offset + pos as u64;
            match format::decode(&data[pos..got], seg.salt, seg.bytes - here) {
                // Damage ahead: hand out the good records before it first; the next call
                // starts at the damage and reports it (a record is never unreadable
                // because a later one is damaged).
                Decoded::Frame(f) if f.lsn != self.next_lsn && !records.is_empty() => break,
                Decoded::Invalid(_) if !records.is_empty() => break,
                Decoded::Frame(f) => {
                    if f.lsn != self.next_lsn {
                        return Err(Error::corruption(
                            name,
                            here,
                            format!("record {} where {} was expected", f.lsn, self.next_lsn),
                        ));
                    }
                    let r = f.payload_range();
                    records.push(RecordRef {
                        lsn: f.lsn,
                        segment: seg.index,
                        offset: here,
                        payload_start: (pos + r.start) as u32,
                        payload_len: f.payload_len,
                    });
                    pos += f.frame_len;
                    self.next_lsn += 1;
                }
                // The frame goes on past this step, within the batch: read on.
                Decoded::NeedMore(need) if pos + need <= want && !short => {
                    let to = want.min((pos + need).max(got + READ_STEP));
                    let n = file.read_range_into(&mut data, got, to, offset).map_err(io)?;
                    short = got + n < to;
                    got += n;
                }
                Decoded::NeedMore(need) if records.is_empty() && here + need as u64 <= seg.bytes && want < need => {
                    // One record larger than the batch: read it whole.
                    want = need;
                    let n = file.read_range_into(&mut data, got, want, offset).map_err(io)?;
                    got += n;
                    if got < need {
                        return Err(Error::corruption(name, here, "segment ends inside a record"));
                    }
                }
                Decoded::NeedMore(_) if !records.is_empty() => break,
                Decoded::NeedMore(_) => return Err(Error::corruption(name, here, "segment ends inside a record")),
                Decoded::Invalid(why) => return Err(Error::corruption(name, here, why)),
            }
        }
        self.pos = Some((seg.index, offset + pos as u64));
        Ok(Batch {
            data,
            len: pos,
            records,
        })
    }
}

/// Bytes read from a file at a time: small enough that a step is still in the CPU's
/// cache when its frames are verified, large enough that the calls cost nothing much.
const READ_STEP: usize = 128 << 10;

/// Frames walked before their checksums are verified together: a run stays in the
/// CPU's first-level cache between the two passes.
const RUN: usize = 64;

/// Records in `bytes` of frames like the first one of `data`, roughly (room reserved up
/// front rather than grown record by record).
fn records_in(data: &[u8], bytes: usize) -> usize {
    let first = match format::decode_unverified(data, u64::MAX) {
        Decoded::Frame(f) => f.frame_len,
        Decoded::NeedMore(n) => n,
        Decoded::Invalid(_) => return 1,
    };
    bytes / first.max(format::FRAME_OVERHEAD) + 1
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(key) = self.pinned.take() {
            self.handles.unpin(key);
        }
    }
}

fn find_seg(st: &PState, index: u64) -> Option<&SegMeta> {
    let first = st.segs.first()?.index;
    st.segs
        .get(usize::try_from(index.checked_sub(first)?).ok()?)
        .filter(|s| s.index == index)
}

fn purged(partition: u16, lsn: u64, first: u64) -> Error {
    Error::new(
        ErrorCode::LsnPurged,
        format!("LSN {lsn} of partition {partition} has been purged (first retained LSN {first})"),
    )
}

/// Segment files as readers open them: through the shared handles, a file gone meaning
/// its records were purged.
struct Files<'a> {
    fs: &'a Arc<dyn Fs>,
    dir: &'a Path,
    handles: &'a ReadHandles,
    pid: u16,
}

impl<'a> Files<'a> {
    fn new(fs: &'a Arc<dyn Fs>, dir: &'a Path, handles: &'a ReadHandles, pid: u16) -> Files<'a> {
        Files { fs, dir, handles, pid }
    }

    fn key(&self, seg: &SegMeta) -> SegKey {
        SegKey {
            partition: self.pid,
            index: seg.index,
            salt: seg.salt,
        }
    }

    fn path(&self, seg: &SegMeta) -> PathBuf {
        self.dir.join(format::segment_file_name(self.pid, seg.index))
    }

    /// `seg`'s file for one look; `lsn` is what the caller wants from it.
    fn open(&self, seg: &SegMeta, lsn: u64) -> Result<Arc<dyn FsFile>> {
        self.handles
            .get(self.fs.as_ref(), &self.path(seg), self.key(seg))
            .map_err(|e| self.error(e, seg, lsn))
    }

    /// An error opening `seg`'s file: a file gone means its records were purged.
    fn error(&self, e: std::io::Error, seg: &SegMeta, lsn: u64) -> Error {
        let name = format::segment_file_name(self.pid, seg.index);
        if e.kind() == std::io::ErrorKind::NotFound {
            // Truncates do not remove files under a reader (`Partition::reading`), so
            // only a purge did, after the reader looked at the segment table.
            Error::new(
                ErrorCode::LsnPurged,
                format!("LSN {lsn} of partition {}: {name} has been purged", self.pid),
            )
        } else {
            Error::io(&e, format!("opening {name}"))
        }
    }
}

/// The LSN of the record that starts at `offset` in `seg` (or the next LSN at its end).
/// Walks from the nearest seek point before it, so a copy of a frame inside a payload
/// is never taken for a record.
fn record_at(files: &Files<'_>, seg: &SegMeta, offset: u64) -> Result<u64> {
    let pid = files.pid;
    let not_a_record = || {
        Error::invalid(format!(
            "from {{ segment: {}, offset: {offset} }} is not the start of a record in partition {pid}",
            seg.index
        ))
    };
    if offset < HEADER || !offset.is_multiple_of(8) || offset > seg.bytes {
        return Err(not_a_record());
    }
    if offset == seg.bytes {
        return Ok(seg.last_lsn + 1);
    }
    let (from_lsn, from) = seg
        .marks
        .iter()
        .rev()
        .find(|&&(_, o)| o <= offset)
        .copied()
        .unwrap_or((seg.first_lsn, HEADER));
    let name = format::segment_file_name(pid, seg.index);
    let file = files.open(seg, from_lsn)?;
    match segment::find_frame(
        file.as_ref(),
        seg.salt,
        from,
        seg.bytes,
        (from_lsn, Target::Offset(offset)),
        None,
    )
    .map_err(|e| Error::io(&e, format!("reading {name}")))?
    {
        Ok((_, frame)) => match format::decode(&frame, seg.salt, frame.len() as u64) {
            format::Decoded::Frame(f) => Ok(f.lsn),
            _ => Err(not_a_record()),
        },
        Err((_, why)) if why == segment::NOT_A_BOUNDARY => Err(not_a_record()),
        Err((off, why)) => Err(Error::corruption(name, off, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Options, SyncMode, Wal};

    /// xorshift: the tests' records and choices, replayable from the printed seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Mostly small records, some of 100-300 KiB: runs of frames cross the reader's
    /// 128 KiB steps and batch ends anywhere, and some records are larger than a batch.
    fn payloads(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let len = match rng.below(20) {
                    0 => 100_000 + rng.below(200_000),
                    1 => 0,
                    _ => rng.below(400),
                } as usize;
                (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
            })
            .collect()
    }

    fn read_all(wal: &Wal, max_bytes: usize) -> (Vec<(RecordRef, Vec<u8>)>, Option<Error>) {
        let mut r = wal.reader(1, Start::Lsn(0)).expect("reader");
        let (mut out, mut buf) = (Vec::new(), Vec::new());
        loop {
            match r.next_batch_in(std::mem::take(&mut buf), max_bytes) {
                Ok(Some(b)) => {
                    assert!(!b.records.is_empty(), "an empty batch");
                    for rec in &b.records {
                        let s = rec.payload_start as usize;
                        out.push((*rec, b.data[s..s + rec.payload_len as usize].to_vec()));
                    }
                    buf = b.data;
                }
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    /// Every record comes back whole and in order, whatever the batch size, from a
    /// recycled buffer; then one damaged byte anywhere in a record stops the read exactly
    /// there, after every record before it, with the file and offset of the damaged one.
    #[test]
    #[cfg(unix)]
    fn runs_and_steps_read_every_record_and_stop_at_damage() {
        for seed in 1..=6u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let dir = tempfile::tempdir().expect("tempdir");
            let opts = Options {
                sync: SyncMode::None,
                segment_size: 4 << 20,
                ..Options::default()
            };
            let wal = Wal::open(dir.path(), opts).expect("open");
            let recs = payloads(&mut rng, 600);
            for chunk in recs.chunks(1 + rng.below(40) as usize) {
                let refs: Vec<&[u8]> = chunk.iter().map(|p| &p[..]).collect();
                wal.append_batch(1, &refs).expect("append");
            }
            wal.sync().wait().expect("sync");
            let mut clean = Vec::new();
            for max_bytes in [4 << 10, 64 << 10, 200 << 10, 1 << 20, 3 << 20] {
                let (got, err) = read_all(&wal, max_bytes);
                assert!(err.is_none(), "seed {seed}, maxBytes {max_bytes}: {err:?}");
                assert_eq!(got.len(), recs.len(), "seed {seed}, maxBytes {max_bytes}");
                for (i, ((r, p), want)) in got.iter().zip(&recs).enumerate() {
                    assert_eq!((r.lsn, p), (i as u64 + 1, want), "seed {seed}, maxBytes {max_bytes}");
                }
                clean = got;
            }
            for _ in 0..4 {
                let k = rng.below(recs.len() as u64) as usize;
                let (r, _) = clean[k];
                let flen = format::frame_len(r.payload_len as usize) as u64;
                let at = r.offset + rng.below(flen);
                let path = dir.path().join(format::segment_file_name(1, r.segment));
                let flip = |f: &std::fs::File| {
                    use std::os::unix::fs::FileExt;
                    let mut b = [0u8];
                    f.read_exact_at(&mut b, at).expect("read");
                    f.write_all_at(&[b[0] ^ 0x40], at).expect("write");
                };
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .expect("segment");
                flip(&f);
                for max_bytes in [4 << 10, 1 << 20] {
                    let (got, err) = read_all(&wal, max_bytes);
                    let err = err.unwrap_or_else(|| panic!("seed {seed}: damage at {at} of record {k} not seen"));
                    assert_eq!(got.len(), k, "seed {seed}: records before the damaged one");
                    assert_eq!(err.code, ErrorCode::Corruption, "seed {seed}: {err:?}");
                    assert_eq!(
                        (err.file.as_deref(), err.offset),
                        (Some(&*format::segment_file_name(1, r.segment)), Some(r.offset)),
                        "seed {seed}: {err:?}"
                    );
                }
                flip(&f);
            }
            wal.close().expect("close");
        }
    }
}
