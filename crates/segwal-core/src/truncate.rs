//! `truncate_after`: a suffix cut for consensus-log rewinds, crash-safe at every step.
//!
//! Later segments go first (newest first), so a crash leaves a shorter log, never a hole.
//! A cut inside a batch must also mark the last kept record as the batch's end, or
//! recovery would take the kept part for a torn batch; that rewrite is two separate
//! writes, so it goes through a small redo file (`part_{p}.truncating`) that open replays.

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::{self, FRAME_HEADER_LEN, FRAME_TRAILER_LEN, SEGMENT_HEADER_LEN};
use crate::fs::Fs;
use crate::options::Options;
use crate::partition::{Active, Partition};
use crate::segment::{self, SegMeta};

const INTENT_MAGIC: [u8; 8] = *b"SGWLCUT1";
const INTENT_LEN: usize = 8 + 8 + 8 + 8 + 8 + FRAME_HEADER_LEN + FRAME_TRAILER_LEN + 4;

fn intent_name(partition: u16) -> String {
    format!("part_{partition}.truncating")
}

pub(crate) fn is_intent_file(name: &str) -> bool {
    name.strip_prefix("part_")
        .and_then(|r| r.strip_suffix(".truncating"))
        .is_some_and(|p| p.parse::<u16>().is_ok())
}

/// The cut of one segment: new length, and the rewritten last frame's header and trailer.
struct Cut {
    partition: u16,
    segment: u64,
    len: u64,
    frame_at: u64,
    header: [u8; FRAME_HEADER_LEN],
    trailer: [u8; FRAME_TRAILER_LEN],
}

impl Cut {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(INTENT_LEN);
        b.extend_from_slice(&INTENT_MAGIC);
        b.extend_from_slice(&u64::from(self.partition).to_le_bytes());
        b.extend_from_slice(&self.segment.to_le_bytes());
        b.extend_from_slice(&self.len.to_le_bytes());
        b.extend_from_slice(&self.frame_at.to_le_bytes());
        b.extend_from_slice(&self.header);
        b.extend_from_slice(&self.trailer);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Cut> {
        if b.len() != INTENT_LEN || b[..8] != INTENT_MAGIC {
            return None;
        }
        let (body, crc) = b.split_at(INTENT_LEN - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return None;
        }
        let u = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        let mut header = [0u8; FRAME_HEADER_LEN];
        header.copy_from_slice(&b[40..40 + FRAME_HEADER_LEN]);
        let mut trailer = [0u8; FRAME_TRAILER_LEN];
        trailer.copy_from_slice(&b[40 + FRAME_HEADER_LEN..40 + FRAME_HEADER_LEN + FRAME_TRAILER_LEN]);
        Some(Cut {
            partition: u16::try_from(u(8)).ok()?,
            segment: u(16),
            len: u(24),
            frame_at: u(32),
            header,
            trailer,
        })
    }

    /// Whether the segment still reaches the cut. A cut only ever shortens a file; one
    /// that a power loss left shorter (or took) lost its unsynced tail, the records past
    /// the cut with it: with sync 'none' not even its header need have been synced before
    /// the truncate. What is left is recovery's to judge as a torn tail; lengthening it to
    /// the cut would make a torn header look like damage (simulator seed 403271).
    fn fits(&self, fs: &dyn Fs, dir: &Path) -> Result<bool> {
        let name = format::segment_file_name(self.partition, self.segment);
        match fs.open(&dir.join(&name), false) {
            Ok(file) => Ok(file
                .len()
                .map_err(|e| Error::io(&e, format!("reading the length of {name}")))?
                >= self.len),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&e, format!("opening {name}"))),
        }
    }

    /// Applies the cut; idempotent, so open can replay it after a crash.
    fn apply(&self, fs: &dyn Fs, dir: &Path) -> Result<std::sync::Arc<dyn crate::fs::FsFile>> {
        let name = format::segment_file_name(self.partition, self.segment);
        let io = |e: std::io::Error| Error::io(&e, format!("truncating {name}"));
        let file = fs.open(&dir.join(&name), true).map_err(io)?;
        file.set_len(self.len).map_err(io)?;
        file.write_all_at(&self.header, self.frame_at).map_err(io)?;
        file.write_all_at(&self.trailer, self.len - FRAME_TRAILER_LEN as u64)
            .map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(file)
    }
}

pub(crate) fn replay_intent(fs: &dyn Fs, dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    let io = |e: std::io::Error| Error::io(&e, format!("replaying {name}"));
    let f = fs.open(&path, false).map_err(io)?;
    let mut b = vec![0u8; INTENT_LEN + 1];
    let got = f.read_full_at(&mut b, 0).map_err(io)?;
    // A torn intent means the cut itself never started.
    if let Some(cut) = Cut::decode(&b[..got]) {
        if cut.fits(fs, dir)? {
            cut.apply(fs, dir)?;
        }
    }
    fs.remove(&path).map_err(io)?;
    fs.sync_dir(dir).map_err(io)
}

/// Where a partition's files are and how new segments are made: what a cut needs of the WAL.
pub(crate) struct Files<'a> {
    pub fs: &'a dyn Fs,
    pub dir: &'a Path,
    pub opts: &'a Options,
}

pub(crate) fn truncate_after(
    files: &Files<'_>,
    p: &Partition,
    active: &mut Option<Active>,
    next_index: &mut u64,
    lsn: u64,
) -> Result<()> {
    // Readers wait while files change (see `Partition::reading`).
    let _cutting = p.cutting();
    let (keep, victims) = {
        let mut st = p.lock();
        if st.segs.is_empty() || lsn >= st.acked_lsn {
            return Ok(());
        }
        st.note_cut(lsn + 1);
        let k = st.seg_for_lsn(lsn).unwrap_or(0);
        (
            st.segs[k].clone(),
            st.segs[k + 1..].iter().map(|s| s.index).collect::<Vec<_>>(),
        )
    };
    let (fs, dir) = (files.fs, files.dir);
    let pid = p.id;
    if active.as_ref().is_some_and(|a| a.index != keep.index) {
        *active = None;
    }
    for index in victims.iter().rev() {
        let name = format::segment_file_name(pid, *index);
        fs.remove(&dir.join(&name))
            .map_err(|e| Error::io(&e, format!("removing {name}")))?;
        // Forget each as it goes: whatever fails later, the table lists exactly the
        // files there are.
        let mut st = p.lock();
        st.segs.retain(|s| s.index < *index);
        st.acked_lsn = st.acked_lsn.min(st.segs.last().map_or(0, |s| s.last_lsn));
    }
    if !victims.is_empty() {
        fs.sync_dir(dir)
            .map_err(|e| Error::io(&e, "syncing the WAL directory"))?;
    }
    let (file, cut) = cut_segment(files, pid, &keep, active.take(), lsn)?;
    // Below `keep.first_lsn` only for `truncate_after(p, 0)` after a purge (see cut_segment).
    let first_lsn = keep.first_lsn.min(lsn + 1);
    if files.opts.preallocate {
        let _ = segment::preallocate_file(file.as_ref(), files.opts.segment_size.max(cut));
    }
    *active = Some(Active::resume(Some(file), keep.index, keep.salt, first_lsn, cut));
    *next_index = keep.index + 1;
    let mut st = p.lock();
    st.next_index = *next_index;
    if let Some(s) = st.segs.last_mut() {
        s.first_lsn = first_lsn;
        s.last_lsn = lsn.max(s.first_lsn - 1);
        s.bytes = cut;
        s.marks.retain(|&(m, _)| m <= lsn);
    }
    st.acked_lsn = lsn;
    st.log_start = st.log_start.min(first_lsn);
    Ok(())
}

/// Cuts `seg` right after record `lsn` (to its header if `lsn` precedes it).
fn cut_segment(
    files: &Files<'_>,
    pid: u16,
    seg: &SegMeta,
    active: Option<Active>,
    lsn: u64,
) -> Result<(std::sync::Arc<dyn crate::fs::FsFile>, u64)> {
    let (fs, dir) = (files.fs, files.dir);
    let name = format::segment_file_name(pid, seg.index);
    let io = |e: std::io::Error| Error::io(&e, format!("truncating {name}"));
    let file = match active {
        Some(Active {
            file: Some(f), index, ..
        }) if index == seg.index => f,
        _ => fs.open(&dir.join(&name), true).map_err(io)?,
    };
    if lsn >= seg.last_lsn {
        return Ok((file, seg.bytes));
    }
    if lsn < seg.first_lsn {
        let cut = SEGMENT_HEADER_LEN as u64;
        file.set_len(cut).and_then(|_| file.sync_data()).map_err(io)?;
        if lsn + 1 != seg.first_lsn {
            // `truncate_after(p, 0)` after a purge: the log starts again at LSN 1, and the
            // header must say so, since open takes the next LSN from it. The records are
            // gone (synced above) before the header changes, so no crash shows the new
            // header with old records; a torn header makes the file an invalid header-only
            // newest segment, which open removes: an empty partition, as asked.
            let mut hb = [0u8; SEGMENT_HEADER_LEN];
            let got = file.read_full_at(&mut hb, 0).map_err(io)?;
            let mut header =
                format::SegmentHeader::decode(&hb[..got]).map_err(|why| Error::corruption(name.clone(), 0, why))?;
            header.first_lsn = lsn + 1;
            file.write_all_at(&header.encode(), 0)
                .and_then(|_| file.sync_data())
                .map_err(io)?;
        }
        return Ok((file, cut));
    }
    let (from_lsn, from) = seg
        .marks
        .iter()
        .rev()
        .find(|&&(m, _)| m <= lsn)
        .copied()
        .unwrap_or((seg.first_lsn, SEGMENT_HEADER_LEN as u64));
    let (at, mut frame) = segment::find_frame(
        file.as_ref(),
        seg.salt,
        from,
        seg.bytes,
        (from_lsn, segment::Target::Lsn(lsn)),
        None,
    )
    .map_err(io)?
    .map_err(|(off, why)| Error::corruption(name.clone(), off, why))?;
    let cut = at + frame.len() as u64;
    if frame[16..20] == [0, 0, 0, 0] {
        file.set_len(cut).and_then(|_| file.sync_data()).map_err(io)?;
        return Ok((file, cut));
    }
    // The last kept record now ends its batch.
    frame[16..20].copy_from_slice(&0u32.to_le_bytes());
    format::seal(&mut frame, seg.salt);
    let mut c = Cut {
        partition: pid,
        segment: seg.index,
        len: cut,
        frame_at: at,
        header: [0; FRAME_HEADER_LEN],
        trailer: [0; FRAME_TRAILER_LEN],
    };
    c.header.copy_from_slice(&frame[..FRAME_HEADER_LEN]);
    c.trailer.copy_from_slice(&frame[frame.len() - FRAME_TRAILER_LEN..]);
    let ipath = dir.join(intent_name(pid));
    let _ = fs.remove(&ipath);
    let intent = fs.create(&ipath).map_err(io)?;
    intent
        .write_all_at(&c.encode(), 0)
        .and_then(|_| intent.sync_data())
        .map_err(io)?;
    fs.sync_dir(dir).map_err(io)?;
    drop(file);
    let file = c.apply(fs, dir)?;
    fs.remove(&ipath).and_then(|_| fs.sync_dir(dir)).map_err(io)?;
    Ok((file, cut))
}
