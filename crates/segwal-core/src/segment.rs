//! One segment file: naming, creation (header, preallocation), and reading its frames.

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

/// Creates an empty segment file with its space reserved and its directory entry
/// durable. The header is written when the segment comes into use (`start`); until
/// then the file is a spare that recovery removes (an all-zero header).
pub fn create_file(
    fs: &dyn Fs,
    dir: &Path,
    partition: u16,
    index: u64,
    preallocate: Option<u64>,
) -> Result<Arc<dyn FsFile>> {
    let name = format::segment_file_name(partition, index);
    let path = dir.join(&name);
    let file = fs
        .create(&path)
        .map_err(|e| Error::io(&e, format!("creating {name}")))?;
    let done = (|| {
        if let Some(len) = preallocate {
            preallocate_file(file.as_ref(), len).map_err(|e| Error::io(&e, format!("preallocating {name}")))?;
        }
        fs.sync_dir(dir).map_err(|e| Error::io(&e, "syncing the WAL directory"))
    })();
    match done {
        Ok(()) => Ok(file),
        Err(e) => {
            // Leave no half-made segment behind for recovery to puzzle over.
            let _ = fs.remove(&path);
            let _ = fs.sync_dir(dir);
            Err(e)
        }
    }
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

/// Creates a segment durably: space reserved, header written and synced, directory synced.
pub fn create(
    fs: &dyn Fs,
    dir: &Path,
    partition: u16,
    index: u64,
    first_lsn: u64,
    preallocate: Option<u64>,
) -> Result<(Arc<dyn FsFile>, SegmentHeader)> {
    let file = create_file(fs, dir, partition, index, preallocate)?;
    let header = start(file.as_ref(), partition, index, first_lsn)?;
    file.sync_data()
        .map_err(|e| Error::io(&e, format!("syncing {}", format::segment_file_name(partition, index))))?;
    Ok((file, header))
}

/// Reserves space; file systems without fallocate just don't get the reservation.
pub fn preallocate_file(file: &dyn FsFile, len: u64) -> std::io::Result<()> {
    match file.preallocate(len) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)) => Ok(()),
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
}

/// Walks frames forward from a known frame boundary, reading the file in large chunks:
/// the one loop behind scans, seeks and position checks.
pub struct FrameWalk<'a> {
    file: &'a dyn FsFile,
    salt: u32,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_at: u64,
    /// Offset of the next frame.
    pub pos: u64,
}

impl<'a> FrameWalk<'a> {
    pub fn new(file: &'a dyn FsFile, salt: u32, from: u64, end: u64, chunk: usize) -> FrameWalk<'a> {
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
    };
    let mut walk = FrameWalk::new(file, salt, start, end, 1 << 20);
    let mut lsn = expect_lsn;
    let mut last_mark = 0u64;
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
        if f.batch_left == 0 {
            s.good_end = walk.pos;
            s.good_last_lsn = lsn;
        }
        lsn += 1;
    }
    Ok(s)
}

/// Bytes before the end of the newest segment that open verifies frame by frame: at
/// least what one writer round writes before its fdatasync (`commit::ROUND_BYTES`).
pub const TAIL_CHECK: u64 = 1 << 20;

/// Verifies the frames in the last `TAIL_CHECK` bytes before `end`, walking back from
/// the last one (which starts at `last_at` and holds `last_lsn`) through the trailers,
/// in one read. After a power loss, writeback may have persisted the end of an
/// unfinished round and not its middle; the frame that ends the file then checks out
/// while the bytes before it do not. Returns false at the first frame that fails.
pub fn tail_is_intact(
    file: &dyn FsFile,
    salt: u32,
    (last_at, last_lsn): (u64, u64),
    end: u64,
) -> std::io::Result<bool> {
    let header = SEGMENT_HEADER_LEN as u64;
    let from = last_at.saturating_sub(TAIL_CHECK).max(header);
    let mut buf = vec![0u8; (last_at - from) as usize];
    if file.read_full_at(&mut buf, from)? < buf.len() {
        return Ok(false);
    }
    let (mut pos, mut lsn) = (buf.len(), last_lsn);
    while pos > 0 {
        let Some(flen) = format::trailer_frame_len(&buf[..pos]) else {
            return Ok(false);
        };
        if flen > pos {
            // The frame starts before the checked window: what was checked is intact.
            return Ok(from > header);
        }
        let start = pos - flen;
        match format::decode(&buf[start..pos], salt, end - (from + start as u64)) {
            Decoded::Frame(f) if f.frame_len == flen && f.lsn + 1 == lsn => {}
            _ => return Ok(false),
        }
        pos = start;
        lsn -= 1;
    }
    Ok(true)
}

/// Whether damage at `at` in the newest segment is a torn tail (cut it) rather than a
/// hole in the middle of the log (an error): nothing valid follows it, or zeros from it
/// to the end of its page, or a whole zero page, lie between it and the next valid
/// frame. Writeback after a power loss may persist later pages of an unfinished write
/// and not earlier ones, which read back as zeros; a page once written and synced does
/// not turn to zeros, so records after such a hole were never acknowledged. Bit rot, by
/// contrast, leaves no zero page.
pub fn damage_is_torn(file: &dyn FsFile, salt: u32, at: u64, end: u64, min_lsn: u64) -> std::io::Result<bool> {
    let Some(next) = valid_frame_after(file, salt, at, end, min_lsn)? else {
        return Ok(true);
    };
    const PAGE: u64 = 4096;
    // A round rarely starts on a page boundary: when the page holding its start was not
    // written back but later ones were, the hole is the rest of that page. A frame never
    // reads as zeros (its kind and trailer are not zero), so zeros from the damage to the
    // end of its page were never a synced record either.
    if !at.is_multiple_of(PAGE) {
        let mut rest = vec![0u8; (PAGE - at % PAGE) as usize];
        if file.read_full_at(&mut rest, at)? == rest.len() && rest.iter().all(|&b| b == 0) {
            return Ok(true);
        }
    }
    let mut page = at.div_ceil(PAGE) * PAGE;
    let mut buf = vec![0u8; PAGE as usize];
    while page + PAGE <= next {
        if file.read_full_at(&mut buf, page)? == buf.len() && buf.iter().all(|&b| b == 0) {
            return Ok(true);
        }
        page += PAGE;
    }
    Ok(false)
}

/// Looks for any valid frame of this segment at an aligned offset in `[from, end)`:
/// proof that damage at `from` is not a torn tail but a hole in the middle of the log.
pub fn valid_frame_after(
    file: &dyn FsFile,
    salt: u32,
    from: u64,
    end: u64,
    min_lsn: u64,
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
                Decoded::Frame(f) if f.lsn >= min_lsn => return Ok(Some(here)),
                Decoded::NeedMore(need) if here + need as u64 <= end => {
                    let mut frame = vec![0u8; need];
                    if file.read_full_at(&mut frame, here)? == need {
                        if let Decoded::Frame(f) = format::decode(&frame, salt, end - here) {
                            if f.lsn >= min_lsn {
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
