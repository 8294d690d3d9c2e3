//! One segment file: naming, creation (header, preallocation), and reading its frames.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::format::{self, Decoded, FrameInfo, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, FsFile};

/// What the engine knows of one segment: an entry of a partition's segment table.
#[derive(Debug, Clone)]
pub struct SegMeta {
    pub index: u64,
    pub first_lsn: u64,
    /// `first_lsn - 1` while the segment holds no record.
    pub last_lsn: u64,
    /// Logical size: header plus acknowledged frames.
    pub bytes: u64,
    pub salt: u32,
    /// Sparse (lsn, offset) seek points, ascending; empty for segments not written
    /// since open (readers then scan from the header).
    pub marks: Vec<(u64, u64)>,
}

/// Distance between seek points kept for segments written by this process.
pub const MARK_EVERY: u64 = 64 * 1024;

pub fn random_salt() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Makes the spare for segment `index`: a file under the spare's own name
/// (`format::spare_file_name`) with the segment's space reserved, made ahead of time so
/// that rotation does not wait for a create and a preallocation. No handle is kept (a
/// spare per partition must not cost a descriptor) and no directory sync is needed: it
/// becomes the segment by `activate_spare`, whose rename the round syncs before it
/// acknowledges anything in it; a spare left by a crash is deleted at open.
pub fn create_spare(fs: &dyn Fs, dir: &Path, partition: u16, index: u64, preallocate: Option<u64>) -> Result<()> {
    create_reserved(fs, dir, &format::spare_file_name(partition, index), preallocate).map(drop)
}

/// Creates `name` in `dir` with `preallocate` bytes reserved; removes it again if the
/// reservation fails, so that no half-made file is left for recovery to puzzle over.
fn create_reserved(fs: &dyn Fs, dir: &Path, name: &str, preallocate: Option<u64>) -> Result<Arc<dyn FsFile>> {
    let path = dir.join(name);
    let file = fs
        .create(&path)
        .map_err(|e| Error::io(&e, format!("creating {name}")))?;
    if let Some(len) = preallocate {
        if let Err(e) = preallocate_file(file.as_ref(), len) {
            drop(file);
            let _ = fs.remove(&path);
            return Err(Error::io(&e, format!("preallocating {name}")));
        }
    }
    Ok(file)
}

/// Turns the spare of segment `index` into the segment (rename) and opens it. Durable once
/// the directory is synced.
pub fn activate_spare(fs: &dyn Fs, dir: &Path, partition: u16, index: u64) -> Result<Arc<dyn FsFile>> {
    let name = format::segment_file_name(partition, index);
    let path = dir.join(&name);
    fs.rename(&dir.join(format::spare_file_name(partition, index)), &path)
        .map_err(|e| Error::io(&e, format!("renaming the spare into {name}")))?;
    fs.open(&path, true)
        .map_err(|e| Error::io(&e, format!("opening {name}")))
}

/// Creates segment `index` under its own name, with its space reserved (when there is no
/// spare). Durable once the directory is synced.
pub fn create_file(
    fs: &dyn Fs,
    dir: &Path,
    partition: u16,
    index: u64,
    preallocate: Option<u64>,
) -> Result<Arc<dyn FsFile>> {
    create_reserved(fs, dir, &format::segment_file_name(partition, index), preallocate)
}

/// Writes the header of a segment coming into use. Not synced here: the first commit's
/// fdatasync covers it together with the first records.
pub fn start(file: &dyn FsFile, partition: u16, index: u64, first_lsn: u64) -> Result<SegmentHeader> {
    let header = SegmentHeader {
        partition,
        index,
        first_lsn,
        salt: random_salt(),
        created_ms: now_ms(),
    };
    file.write_all_at(&header.encode(), 0).map_err(|e| {
        Error::io(
            &e,
            format!("writing the header of {}", format::segment_file_name(partition, index)),
        )
    })?;
    Ok(header)
}

/// Reserves space; file systems without fallocate just don't get the reservation.
pub fn preallocate_file(file: &dyn FsFile, len: u64) -> std::io::Result<()> {
    match file.preallocate(len) {
        Err(e) if crate::fs::preallocation_unsupported(&e) => Ok(()),
        other => other,
    }
}

/// Reads the frame that ends exactly at `end`, via its trailer, verified by its checksum.
pub fn read_frame_ending_at(file: &dyn FsFile, salt: u32, end: u64) -> std::io::Result<Option<(u64, FrameInfo)>> {
    if end < (SEGMENT_HEADER_LEN + format::FRAME_OVERHEAD) as u64 {
        return Ok(None);
    }
    let mut trailer = [0u8; format::FRAME_TRAILER_LEN];
    if file.read_full_at(&mut trailer, end - format::FRAME_TRAILER_LEN as u64)? < format::FRAME_TRAILER_LEN {
        return Ok(None);
    }
    let Some(flen) = format::trailer_frame_len(&trailer) else {
        return Ok(None);
    };
    if flen as u64 > end - SEGMENT_HEADER_LEN as u64 {
        return Ok(None);
    }
    let start = end - flen as u64;
    let mut buf = vec![0u8; flen];
    if file.read_full_at(&mut buf, start)? < flen {
        return Ok(None);
    }
    Ok(match format::decode(&buf, salt, flen as u64) {
        Decoded::Frame(f) if f.frame_len == flen => Some((start, f)),
        _ => None,
    })
}

/// The end of a frame sequence scanned from `start`, checking LSN continuity.
pub struct Scan {
    /// Offset just after the last frame that ends a batch (or a single record).
    pub good_end: u64,
    /// LSN of the record at `good_end - ...` (`expect_lsn - 1` if none).
    pub good_last_lsn: u64,
    /// Where decoding stopped, if before `end`, and why.
    pub stopped: Option<(u64, &'static str)>,
    /// Seek points gathered on the way.
    pub marks: Vec<(u64, u64)>,
    /// Where the last sync-point frame before `good_end` starts (0 if none: then not
    /// even the header is known to be durable): see [`resync`].
    pub sync_from: u64,
}

/// Walks frames forward from a known frame boundary, reading the file in large chunks:
/// the one loop behind scans, seeks, position checks and `inspect`'s record cursor.
/// `F` is how the file is held: borrowed (`&dyn FsFile`) or owned (`Arc<dyn FsFile>`).
pub struct FrameWalk<F> {
    file: F,
    salt: u32,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_at: u64,
    /// Offset of the next frame.
    pub pos: u64,
}

impl<F: Deref<Target: FsFile>> FrameWalk<F> {
    pub fn new(file: F, salt: u32, from: u64, end: u64, chunk: usize) -> FrameWalk<F> {
        FrameWalk {
            file,
            salt,
            end,
            chunk,
            buf: Vec::new(),
            buf_at: from,
            pos: from,
        }
    }

    /// The frame at `pos` (its offset, header and bytes), moving past it; `None` at the
    /// end; `Some(Err(why))` where no valid frame starts (then `pos` stays there).
    #[allow(clippy::type_complexity)]
    pub fn next_frame(
        &mut self,
    ) -> std::io::Result<Option<std::result::Result<(u64, FrameInfo, &[u8]), &'static str>>> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            let rel = (self.pos - self.buf_at) as usize;
            let window = self.buf.get(rel..).unwrap_or(&[]);
            match format::decode(window, self.salt, self.end - self.pos) {
                Decoded::Frame(f) => {
                    let at = self.pos;
                    self.pos += f.frame_len as u64;
                    let rel = (at - self.buf_at) as usize;
                    return Ok(Some(Ok((at, f, &self.buf[rel..rel + f.frame_len]))));
                }
                Decoded::NeedMore(need) if self.pos + need as u64 <= self.end && need > window.len() => {
                    let want = need.max(self.chunk).min((self.end - self.pos) as usize);
                    self.buf.clear();
                    self.buf.resize(want, 0);
                    let got = self.file.read_full_at(&mut self.buf, self.pos)?;
                    self.buf.truncate(got);
                    self.buf_at = self.pos;
                    if got < need {
                        return Ok(Some(Err("segment ends inside a record")));
                    }
                }
                Decoded::NeedMore(_) => return Ok(Some(Err("segment ends inside a record"))),
                Decoded::Invalid(why) => return Ok(Some(Err(why))),
            }
        }
    }
}

/// Scans frames from `start` to `end` (the logical size), checking LSN continuity.
pub fn scan(file: &dyn FsFile, salt: u32, start: u64, end: u64, expect_lsn: u64) -> std::io::Result<Scan> {
    let mut s = Scan {
        good_end: start,
        good_last_lsn: expect_lsn - 1,
        stopped: None,
        marks: Vec::new(),
        sync_from: 0,
    };
    let mut walk = FrameWalk::new(file, salt, start, end, 1 << 20);
    let mut lsn = expect_lsn;
    let mut last_mark = 0u64;
    let mut sync_at = 0u64;
    while let Some(step) = walk.next_frame()? {
        let (at, f) = match step {
            Ok((at, f, _)) if f.lsn == lsn => (at, f),
            Ok((at, _, _)) => {
                s.stopped = Some((at, "record out of LSN order"));
                break;
            }
            Err(why) => {
                s.stopped = Some((walk.pos, why));
                break;
            }
        };
        if at >= last_mark + MARK_EVERY || s.marks.is_empty() {
            s.marks.push((lsn, at));
            last_mark = at;
        }
        if f.sync_point {
            sync_at = at;
        }
        if f.batch_left == 0 {
            s.good_end = walk.pos;
            s.good_last_lsn = lsn;
            s.sync_from = sync_at;
        }
        lsn += 1;
    }
    Ok(s)
}

/// The last LSN of a segment whose tail checks out back to its last sync point: walking
/// back from `end` through the trailers, every frame is valid (checksum, and an LSN one
/// below the frame after it), the last one ends a batch, and the walk reaches a frame
/// marked as a sync point (`format::FLAG_SYNC_POINT`: everything before it was durable
/// when it was written) or the header (whose first LSN the first frame must hold).
/// `None` if anything fails. After a power loss only what was written after the last
/// completed fdatasync can be missing, and writeback may have persisted the end of it and
/// not its middle, so that whole stretch, and no more, must be checked: one writer round
/// with sync 'always', however large (a multi-MiB batch is one round).
pub fn intact_tail(file: &dyn FsFile, salt: u32, first_lsn: u64, end: u64) -> std::io::Result<Option<u64>> {
    Ok(intact_tail_from(file, salt, first_lsn, end)?.map(|(last, _)| last))
}

/// [`intact_tail`], and where the stretch it checked starts: the sync-point frame it
/// reached, or 0 when it reached the header (see [`resync`]).
pub fn intact_tail_from(file: &dyn FsFile, salt: u32, first_lsn: u64, end: u64) -> std::io::Result<Option<(u64, u64)>> {
    const CHUNK: u64 = 1 << 20;
    let header = SEGMENT_HEADER_LEN as u64;
    if end <= header {
        return Ok((end == header).then(|| (first_lsn - 1, 0)));
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_at = end;
    let mut pos = end;
    let mut last: Option<u64> = None;
    let mut after: Option<FrameInfo> = None;
    while pos > header {
        if pos - buf_at < format::FRAME_TRAILER_LEN as u64 {
            buf_at = pos.saturating_sub(CHUNK).max(header);
            buf.resize((pos - buf_at) as usize, 0);
            if file.read_full_at(&mut buf, buf_at)? < buf.len() {
                return Ok(None);
            }
        }
        let Some(flen) = format::trailer_frame_len(&buf[..(pos - buf_at) as usize]) else {
            return Ok(None);
        };
        if flen as u64 > pos - header {
            return Ok(None);
        }
        let start = pos - flen as u64;
        if start < buf_at {
            // A frame larger than what is buffered: read it (and what precedes it) whole.
            buf_at = start.min(pos.saturating_sub(CHUNK)).max(header);
            buf.resize((pos - buf_at) as usize, 0);
            if file.read_full_at(&mut buf, buf_at)? < buf.len() {
                return Ok(None);
            }
        }
        let frame = &buf[(start - buf_at) as usize..(pos - buf_at) as usize];
        let f = match format::decode(frame, salt, end - start) {
            Decoded::Frame(f) if f.frame_len == flen && f.lsn >= first_lsn => f,
            _ => return Ok(None),
        };
        let continues = match after {
            None => f.batch_left == 0,
            Some(a) => f.lsn + 1 == a.lsn && (f.batch_left == 0 || f.batch_left == a.batch_left + 1),
        };
        if !continues {
            return Ok(None);
        }
        last.get_or_insert(f.lsn);
        if f.sync_point {
            return Ok(last.map(|l| (l, start)));
        }
        after = Some(f);
        pos = start;
    }
    Ok(after.filter(|a| a.lsn == first_lsn).and(last).map(|l| (l, 0)))
}

/// Makes `[from, end)` of the newest segment durable for real: reads it and writes it
/// back, then fdatasyncs. `from` is where the stretch not known to be durable starts
/// (its last sync point, see [`intact_tail_from`] and [`Scan::sync_from`]). A plain
/// fdatasync is not enough: after a failed one (in the process that wrote these bytes,
/// perhaps killed since), Linux marks the lost pages clean, so they stay readable from
/// the page cache but no later fdatasync writes them (PostgreSQL's "fsyncgate"); open
/// would hand out records, and LSNs after them, that a power loss then takes away.
/// Writing the bytes again dirties those pages, so the fdatasync really persists them.
/// The size is set again too: a cut (`ftruncate`) whose fdatasync failed may not be on
/// disk either, leaving old bytes past the end that a power loss would bring back.
pub fn resync(file: &dyn FsFile, from: u64, end: u64) -> std::io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    file.set_len(end)?;
    let mut buf = Vec::new();
    let mut at = from;
    while at < end {
        let n = (end - at).min(CHUNK) as usize;
        buf.resize(n, 0);
        let got = file.read_full_at(&mut buf, at)?;
        if got < n {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "segment shorter than recovered",
            ));
        }
        file.write_all_at(&buf, at)?;
        at += n as u64;
    }
    file.sync_data()
}

/// Whether damage at `at` in the newest segment is a torn tail (cut it) rather than
/// damage to data that was synced (an error). It is torn unless a valid frame marked as
/// a sync point (`format::FLAG_SYNC_POINT`) follows it: such a frame was written only
/// after every byte before it, the damaged ones included, was durable. Without one, the
/// damage lies in what was written after the last completed fdatasync, where a power loss
/// legitimately leaves holes (writeback persists pages out of order); nothing there was
/// acknowledged with sync 'always', and with 'none' or an interval nothing there was
/// promised. (Damage to the last synced round with nothing written after it is
/// indistinguishable from a torn write of that round; it is cut as one.)
pub fn damage_is_torn(file: &dyn FsFile, salt: u32, at: u64, end: u64, min_lsn: u64) -> std::io::Result<bool> {
    Ok(valid_frame_after(file, salt, at, end, |f| f.sync_point && f.lsn >= min_lsn)?.is_none())
}

/// Looks for a valid frame of this segment that satisfies `wanted` at an aligned offset
/// in `(from, end)`.
pub fn valid_frame_after(
    file: &dyn FsFile,
    salt: u32,
    from: u64,
    end: u64,
    wanted: impl Fn(&FrameInfo) -> bool,
) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 1 << 20;
    let mut at = (from + 8) & !7;
    while at + (format::FRAME_OVERHEAD as u64) <= end {
        let chunk_end = (at + CHUNK).min(end);
        let mut buf = vec![0u8; (chunk_end - at) as usize];
        let got = file.read_full_at(&mut buf, at)?;
        buf.truncate(got);
        let mut off = 0usize;
        while off + format::FRAME_HEADER_LEN <= buf.len() {
            let here = at + off as u64;
            match format::decode(&buf[off..], salt, end - here) {
                Decoded::Frame(f) if wanted(&f) => return Ok(Some(here)),
                Decoded::NeedMore(need) if here + need as u64 <= end => {
                    let mut frame = vec![0u8; need];
                    if file.read_full_at(&mut frame, here)? == need {
                        if let Decoded::Frame(f) = format::decode(&frame, salt, end - here) {
                            if wanted(&f) {
                                return Ok(Some(here));
                            }
                        }
                    }
                }
                _ => {}
            }
            off += 8;
        }
        let next = at + off as u64;
        if next <= at {
            break;
        }
        at = next;
    }
    Ok(None)
}

/// Where a segment is damaged and why.
pub type Damage = (u64, &'static str);

/// What `find_frame` looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Lsn(u64),
    /// The frame starting exactly at this offset.
    Offset(u64),
}

/// The `Damage` reason `find_frame` gives when a `Target::Offset` falls inside a frame.
pub const NOT_A_BOUNDARY: &str = "not the start of a record";

/// Finds a frame by walking frames from `from` (which holds `from_lsn`): only a walk from
/// a known boundary proves where records start (a payload may contain a copy of a frame).
/// Returns its offset and bytes. Damage on the way is reported as `Err((offset, why))`.
/// Seek points every `MARK_EVERY` bytes passed on the way are added to `marks`.
pub fn find_frame(
    file: &dyn FsFile,
    salt: u32,
    from: u64,
    end: u64,
    (from_lsn, target): (u64, Target),
    mut marks: Option<&mut Vec<(u64, u64)>>,
) -> std::io::Result<std::result::Result<(u64, Vec<u8>), Damage>> {
    let mut walk = FrameWalk::new(file, salt, from, end, 256 << 10);
    let mut lsn = from_lsn;
    let mut last_mark = from;
    loop {
        if let Target::Offset(o) = target {
            if walk.pos > o {
                return Ok(Err((o, NOT_A_BOUNDARY)));
            }
        }
        match walk.next_frame()? {
            None => break,
            Some(Err(why)) => return Ok(Err((walk.pos, why))),
            Some(Ok((at, f, _))) if f.lsn != lsn => return Ok(Err((at, "record out of LSN order"))),
            Some(Ok((at, f, bytes))) if target == Target::Lsn(f.lsn) || target == Target::Offset(at) => {
                return Ok(Ok((at, bytes.to_vec())))
            }
            Some(Ok((at, _, _))) => {
                if let Some(m) = marks.as_deref_mut() {
                    if at >= last_mark + MARK_EVERY {
                        m.push((lsn, at));
                        last_mark = at;
                    }
                }
                lsn += 1;
            }
        }
    }
    match target {
        Target::Offset(o) => Ok(Err((o, NOT_A_BOUNDARY))),
        Target::Lsn(_) => Ok(Err((walk.pos, "record not found in its segment"))),
    }
}
