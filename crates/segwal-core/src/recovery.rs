//! Discovery at open: one directory scan, each segment's header, each sealed segment's
//! last frame, and the newest segment's tail. A torn tail is cut; any other damage is
//! an error (or, with `repair`, the log is cut before it).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{self, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::fs::{Fs, FsFile};
use crate::partition::{Active, PState};
use crate::segment::{self, SegMeta};
use crate::truncate;
use crate::wal::{Options, Truncation};

pub(crate) struct Found {
    pub partitions: Vec<(u16, PState)>,
    pub truncations: Vec<Truncation>,
}

const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

pub(crate) fn recover(fs: &dyn Fs, dir: &Path, opts: &Options) -> Result<Found> {
    let list = |fs: &dyn Fs| {
        fs.list_dir(dir)
            .map_err(|e| Error::io(&e, format!("listing {}", dir.display())))
    };
    for name in list(fs)? {
        if truncate::is_intent_file(&name) {
            truncate::replay_intent(fs, dir, &name)?;
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
    };
    for (p, mut indices) in by_partition {
        indices.sort_unstable();
        let mut r = PartitionRecovery {
            fs,
            dir,
            opts,
            partition: p,
            truncations: &mut found.truncations,
        };
        if let Some(st) = r.recover(&indices)? {
            found.partitions.push((p, st));
        }
    }
    Ok(found)
}

struct PartitionRecovery<'a> {
    fs: &'a dyn Fs,
    dir: &'a Path,
    opts: &'a Options,
    partition: u16,
    truncations: &'a mut Vec<Truncation>,
}

struct Opened {
    index: u64,
    file: Arc<dyn FsFile>,
    len: u64,
    header: SegmentHeader,
}

impl PartitionRecovery<'_> {
    fn name(&self, index: u64) -> String {
        format::segment_file_name(self.partition, index)
    }

    fn io(&self, index: u64, doing: &str) -> impl Fn(std::io::Error) -> Error + '_ {
        let name = self.name(index);
        let doing = doing.to_string();
        move |e| Error::io(&e, format!("{doing} {name}"))
    }

    fn recover(&mut self, indices: &[u64]) -> Result<Option<PState>> {
        let indices = self.drop_spares(indices)?;
        let mut segs: Vec<Opened> = Vec::new();
        for (i, &index) in indices.iter().enumerate() {
            if let Some(prev) = segs.last() {
                if index != prev.index + 1 {
                    let damage = Error::corruption(self.name(prev.index + 1), 0, "segment file missing");
                    self.repair_or(damage, &indices[i..])?;
                    break;
                }
            }
            let file = self
                .fs
                .open(&self.dir.join(self.name(index)), false)
                .map_err(self.io(index, "opening"))?;
            let len = file.len().map_err(self.io(index, "reading the size of"))?;
            let mut hb = [0u8; SEGMENT_HEADER_LEN];
            let got = file.read_full_at(&mut hb, 0).map_err(self.io(index, "reading"))?;
            let header = SegmentHeader::decode(&hb[..got]).and_then(|h| {
                if h.partition != self.partition || h.index != index {
                    Err("segment header names another partition or index")
                } else if segs.last().is_some_and(|p| h.first_lsn < p.header.first_lsn) {
                    Err("segment starts below the previous segment's first LSN")
                } else {
                    Ok(h)
                }
            });
            match header {
                Ok(header) => segs.push(Opened {
                    index,
                    file,
                    len,
                    header,
                }),
                // A segment created ahead, or one whose header never became durable before
                // a crash: nothing in it was ever acknowledged.
                Err(_) if i + 1 == indices.len() && (len <= HEADER || hb[..got].iter().all(|&b| b == 0)) => {
                    self.remove(index, len)?;
                }
                Err(why) => {
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
        let file = self
            .fs
            .open(&self.dir.join(self.name(index)), true)
            .map_err(self.io(index, "opening"))?;
        if self.opts.preallocate {
            // Best effort: a full disk must not stop the log from opening.
            let _ = segment::preallocate_file(file.as_ref(), self.opts.segment_size.max(bytes));
        }
        let mut st = PState::empty(index + 1);
        st.next_lsn = last_lsn + 1;
        st.acked_lsn = last_lsn;
        st.log_start = metas[0].first_lsn;
        st.segs = metas;
        st.active = Some(Active::resume(file, index, salt, first_lsn, bytes));
        Ok(Some(st))
    }

    /// Removes the files created ahead and never used (nothing where the header goes:
    /// empty, or zeros) at the end of the partition. With sync None or an interval, the
    /// newest segment in use may not have its header durable yet while the spare created
    /// after it has its directory entry; that segment is then judged by the rules for the
    /// newest one (a torn tail), not as damage in the middle of the log.
    fn drop_spares<'i>(&mut self, mut indices: &'i [u64]) -> Result<&'i [u64]> {
        while let [.., prev, last] = *indices {
            if last != prev + 1 {
                break;
            }
            let file = self
                .fs
                .open(&self.dir.join(self.name(last)), false)
                .map_err(self.io(last, "opening"))?;
            let len = file.len().map_err(self.io(last, "reading the size of"))?;
            let mut hb = [0u8; SEGMENT_HEADER_LEN];
            let got = file.read_full_at(&mut hb, 0).map_err(self.io(last, "reading"))?;
            if hb[..got].iter().any(|&b| b != 0) {
                break;
            }
            drop(file);
            self.remove(last, len)?;
            indices = &indices[..indices.len() - 1];
        }
        Ok(indices)
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
        match segment::read_frame_ending_at(s.file.as_ref(), s.header.salt, s.len)
            .map_err(self.io(s.index, "reading"))?
        {
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
        if s.len == HEADER && next_first.is_none_or(|nf| nf == first) {
            return Ok((meta, true));
        }
        if !self.opts.repair && next_first.is_none() {
            if let Some((at, f)) = segment::read_frame_ending_at(s.file.as_ref(), s.header.salt, s.len)
                .map_err(self.io(s.index, "reading"))?
            {
                let intact = || segment::tail_is_intact(s.file.as_ref(), s.header.salt, (at, f.lsn), s.len);
                if f.batch_left == 0 && f.lsn >= first && intact().map_err(self.io(s.index, "reading"))? {
                    meta.last_lsn = f.lsn;
                    return Ok((meta, true));
                }
            }
        }
        let scan = segment::scan(s.file.as_ref(), s.header.salt, HEADER, s.len.max(HEADER), first)
            .map_err(self.io(s.index, "reading"))?;
        meta.last_lsn = scan.good_last_lsn;
        meta.marks = scan.marks;
        let clean = scan.good_end == s.len && next_first.is_none_or(|nf| nf == scan.good_last_lsn + 1);
        if clean {
            return Ok((meta, true));
        }
        let (bad_at, why) = scan.stopped.unwrap_or((scan.good_end, "incomplete batch"));
        // Frames all valid to the end but the last batch unfinished (a tear on a frame
        // boundary) is a torn tail too; so is damage with nothing valid after it.
        let torn = next_first.is_none()
            && (scan.stopped.is_none()
                || segment::damage_is_torn(s.file.as_ref(), s.header.salt, bad_at, s.len, scan.good_last_lsn + 1)
                    .map_err(self.io(s.index, "reading"))?);
        if !torn && !self.opts.repair {
            let why = if scan.stopped.is_none() {
                "sealed segment ends before the next segment's first LSN"
            } else {
                why
            };
            return Err(Error::corruption(self.name(s.index), bad_at, why));
        }
        self.cut(s, scan.good_end)?;
        meta.bytes = scan.good_end;
        meta.marks.retain(|&(_, off)| off < scan.good_end);
        Ok((meta, torn))
    }

    fn cut(&mut self, s: &Opened, at: u64) -> Result<()> {
        let file = self
            .fs
            .open(&self.dir.join(self.name(s.index)), true)
            .map_err(self.io(s.index, "opening"))?;
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
                .fs
                .open(&self.dir.join(self.name(index)), false)
                .and_then(|f| f.len())
                .map_err(self.io(index, "reading the size of"))?;
            self.remove(index, len)?;
        }
        Ok(())
    }

    fn remove(&mut self, index: u64, len: u64) -> Result<()> {
        let name = self.name(index);
        self.fs
            .remove(&self.dir.join(&name))
            .map_err(|e| Error::io(&e, format!("removing {name}")))?;
        self.fs
            .sync_dir(self.dir)
            .map_err(|e| Error::io(&e, "syncing the WAL directory"))?;
        self.truncations.push(Truncation {
            partition: self.partition,
            segment: index,
            truncated_bytes: len,
        });
        Ok(())
    }
}
