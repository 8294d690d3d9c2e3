//! The read-only inspection module (`segwal inspect` / `verify` / `dump`), on WALs written
//! through the engine's API.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use segwal_core::inspect::{self, ProblemKind};
use segwal_core::{ErrorCode, Start, Wal};

/// Positions (segment, offset) of every record of `partition`, via the engine's reader.
fn positions(wal: &Wal, partition: u16) -> Vec<(u64, u64, u64)> {
    let mut r = wal.reader(partition, Start::Lsn(0)).unwrap();
    let mut out = Vec::new();
    while let Some(b) = r.next_batch(64 * 1024).unwrap() {
        out.extend(b.records.iter().map(|x| (x.lsn, x.segment, x.offset)));
    }
    out
}

fn all_records(dir: &Path, partition: u16, from: u64) -> segwal_core::Result<Vec<inspect::Record>> {
    inspect::records(dir, partition, from)?.collect()
}

fn flip(path: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, at).unwrap();
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Partition 1: 60 records of 100 bytes then a batch of 5, over 4 KiB segments;
/// partition 7: three records, one segment. Returns the open WAL.
fn populate(dir: &Path) -> TestWal {
    let w = TestWal::open(dir, opts(4096)).unwrap();
    for i in 1..=60u64 {
        w.append(1, &payload(1, i, 100));
    }
    let batch: Vec<Vec<u8>> = (61..=65).map(|l| payload(1, l, 50)).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
    let (_, last) = w.wal.append_batch(1, &refs).unwrap();
    w.wait_acked(1, last).unwrap();
    w.append(7, b"hello");
    w.append(7, &[0xff, 0xfe, 0x00]);
    w.append(7, b"");
    w
}

#[test]
fn inspect_matches_the_engine_and_takes_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    // While the writer holds the directory.
    let before = snapshot(dir.path());
    let parts = inspect::inspect(dir.path()).unwrap();
    assert_eq!(snapshot(dir.path()), before, "inspect wrote nothing");
    assert_eq!(parts.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![1, 7]);
    for p in &parts {
        assert!(p.problems.is_empty(), "{p:?}");
        assert!(!p.pending_truncation);
        let engine = w.wal.segments(p.partition).unwrap();
        assert_eq!(p.segments.len(), engine.len());
        for (s, e) in p.segments.iter().zip(&engine) {
            assert_eq!(
                (s.index, &s.file, s.first_lsn, s.last_lsn, s.bytes, s.newest),
                (e.index, &e.file, Some(e.first_lsn), Some(e.last_lsn), e.bytes, e.active)
            );
            assert!(s.created_ms.is_some_and(|t| t > 0));
        }
        assert_eq!(p.first_lsn, w.wal.first_lsn(p.partition).unwrap());
        assert_eq!(p.last_lsn, w.wal.last_lsn(p.partition).unwrap());
        assert_eq!(p.bytes, engine.iter().map(|s| s.bytes).sum::<u64>());
    }
    assert!(parts[0].segments.len() > 2, "rotation happened");
    assert_eq!(parts[0].records(), 65);
    assert_eq!(parts[1].records(), 3);
    w.wal.close().unwrap();
}

#[test]
fn verify_clean_log_reports_progress_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let before = snapshot(dir.path());
    let mut calls = Vec::new();
    let r = inspect::verify(dir.path(), &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!(snapshot(dir.path()), before, "verify wrote nothing");
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.records, 68);
    let total: u64 = before
        .iter()
        .filter(|(n, _)| n.ends_with(".wal"))
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert_eq!(r.bytes, total);
    assert_eq!(
        r.segments,
        r.partitions.iter().map(|p| p.segments.len() as u64).sum::<u64>()
    );
    assert_eq!(calls.first(), Some(&(0, total)));
    assert_eq!(calls.last(), Some(&(total, total)));
    assert!(calls.windows(2).all(|c| c[0].0 <= c[1].0));
    assert!(r.partitions.iter().all(|p| p.segments.iter().all(|s| s.checked)));
    w.wal.close().unwrap();
}

#[test]
fn records_read_every_record_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let pos = positions(&w.wal, 1);
    let all = all_records(dir.path(), 1, 0).unwrap();
    assert_eq!(all.len(), 65);
    for (r, &(lsn, seg, off)) in all.iter().zip(&pos) {
        assert_eq!((r.lsn, r.segment, r.offset), (lsn, seg, off));
        let len = if lsn <= 60 { 100 } else { 50 };
        assert_eq!(r.payload, payload(1, lsn, len));
    }
    // From the middle of a segment, from inside the batch, at the end.
    let from30 = all_records(dir.path(), 1, 30).unwrap();
    assert_eq!(from30.first().map(|r| r.lsn), Some(30));
    assert_eq!(from30.len(), 36);
    let from63 = all_records(dir.path(), 1, 63).unwrap();
    assert_eq!(from63.iter().map(|r| r.lsn).collect::<Vec<_>>(), vec![63, 64, 65]);
    assert!(all_records(dir.path(), 1, 66).unwrap().is_empty());
    let e = all_records(dir.path(), 1, 67).unwrap_err();
    assert_eq!(e.code, ErrorCode::LsnOutOfRange);
    // Partition 7: payloads as written, the empty one too; unknown partitions are empty.
    let p7 = all_records(dir.path(), 7, 0).unwrap();
    let payloads: Vec<&[u8]> = p7.iter().map(|r| &r.payload[..]).collect();
    assert_eq!(payloads, vec![&b"hello"[..], &[0xff, 0xfe, 0x00][..], &b""[..]]);
    assert!(all_records(dir.path(), 9, 0).unwrap().is_empty());
    w.wal.close().unwrap();
}

#[test]
fn purged_start_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let r = w.wal.purge_before(1, 40).unwrap().wait().unwrap();
    assert!(r.segments_deleted > 0);
    let first = w.wal.first_lsn(1).unwrap();
    assert!(first > 1);
    let e = inspect::records(dir.path(), 1, first - 1).err().unwrap();
    assert_eq!(e.code, ErrorCode::LsnPurged);
    assert_eq!(all_records(dir.path(), 1, 0).unwrap()[0].lsn, first);
    assert_eq!(all_records(dir.path(), 1, first).unwrap().len() as u64, 65 - first + 1);
    let parts = inspect::inspect(dir.path()).unwrap();
    assert_eq!(parts[0].first_lsn, first);
    assert!(inspect::verify(dir.path(), &mut |_, _| {}).unwrap().is_clean());
    w.wal.close().unwrap();
}

#[test]
fn flipped_byte_in_a_sealed_segment_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let pos = positions(&w.wal, 1);
    w.wal.close().unwrap();
    // A payload byte of LSN 3, in segment 1.
    let (_, seg, off) = pos[2];
    assert_eq!(seg, 1);
    flip(&dir.path().join("part_1_0000000001.wal"), off + 30);
    // inspect trusts the last frame of a sealed segment: nothing to see there.
    let parts = inspect::inspect(dir.path()).unwrap();
    assert!(parts[0].problems.is_empty(), "{:?}", parts[0].problems);
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(!r.is_clean());
    let d = r.partitions[0].damage().unwrap();
    assert_eq!((d.file.as_str(), d.offset), ("part_1_0000000001.wal", off));
    assert!(d.reason.contains("checksum"), "{d:?}");
    assert_eq!(r.partitions[0].last_lsn, 2);
    assert!(r.partitions[1].problems.is_empty(), "other partitions are checked too");
    // Later segments are listed, not checked.
    assert!(r.partitions[0].segments[1..].iter().all(|s| !s.checked));
    // The reader yields what precedes the damage, then the error.
    let mut it = inspect::records(dir.path(), 1, 0).unwrap();
    assert_eq!(it.next().unwrap().unwrap().lsn, 1);
    assert_eq!(it.next().unwrap().unwrap().lsn, 2);
    let e = it.next().unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::Corruption);
    assert_eq!(
        (e.file.as_deref(), e.offset),
        (Some("part_1_0000000001.wal"), Some(off))
    );
    assert!(it.next().is_none());
}

#[test]
fn damage_in_the_newest_segment_with_records_after_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let pos = positions(&w.wal, 7);
    w.wal.close().unwrap();
    flip(&dir.path().join("part_7_0000000001.wal"), pos[0].2 + 8);
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    let p = &r.partitions[1];
    let d = p.damage().unwrap();
    assert_eq!((d.file.as_str(), d.offset), ("part_7_0000000001.wal", pos[0].2));
    assert!(p.torn_tail().is_none());
    // Open (and inspect) check the newest segment back to its last sync point only:
    // records written after a completed fdatasync prove the damage was synced, so it is
    // never cut; reading reaches it and reports it, read-only too.
    let w = TestWal::open(dir.path(), opts(4096)).unwrap();
    assert!(w.wal.recovery().is_empty());
    let e = w.read_all(7, 0).unwrap_err();
    assert_eq!((e.code, e.offset), (ErrorCode::Corruption, Some(pos[0].2)));
    drop(w);
    let e = all_records(dir.path(), 7, 0).unwrap_err();
    assert_eq!((e.code, e.offset), (ErrorCode::Corruption, Some(pos[0].2)));
}

#[test]
fn torn_tail_is_reported_not_cut_and_matches_what_open_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let newest = w.wal.segments(1).unwrap().last().unwrap().clone();
    w.wal.close().unwrap();
    let path = dir.path().join(&newest.file);
    // Half of a next frame: a crash in the middle of a write.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[0x11; 40], newest.bytes).unwrap();
    drop(f);
    as_if_killed(dir.path());
    let before = snapshot(dir.path());
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(r.is_clean(), "a torn tail is not damage: {r:?}");
    let t = r.partitions[0].torn_tail().unwrap().clone();
    assert_eq!(
        (t.kind, t.file.as_str(), t.offset, t.torn_bytes),
        (ProblemKind::TornTail, newest.file.as_str(), newest.bytes, 40)
    );
    assert_eq!(r.partitions[0].last_lsn, 65);
    let i = inspect::inspect(dir.path()).unwrap();
    assert_eq!(i[0].torn_tail(), Some(&t));
    assert_eq!(all_records(dir.path(), 1, 0).unwrap().len(), 65);
    assert_eq!(snapshot(dir.path()), before, "nothing was cut");
    let w = TestWal::open(dir.path(), opts(4096)).unwrap();
    let cut = w.wal.recovery();
    assert_eq!(cut.len(), 1);
    assert_eq!((cut[0].segment, cut[0].truncated_bytes), (newest.index, t.torn_bytes));
    w.wal.close().unwrap();
}

#[test]
fn torn_batch_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
    w.append(0, b"solo");
    let batch: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8; 20]).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|b| &b[..]).collect();
    let (_, last) = w.wal.append_batch(0, &refs).unwrap();
    w.wait_acked(0, last).unwrap();
    let seg = w.wal.segments(0).unwrap()[0].clone();
    w.wal.close().unwrap();
    let path = dir.path().join(&seg.file);
    // Cut inside the third frame of the batch (frames are 56 bytes).
    let solo_end = 64 + 40;
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(solo_end + 2 * 56 + 20).unwrap();
    drop(f);
    as_if_killed(dir.path());
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(r.is_clean(), "{r:?}");
    let t = r.partitions[0].torn_tail().unwrap();
    assert_eq!((t.offset, t.torn_bytes), (solo_end, 2 * 56 + 20));
    assert_eq!(r.partitions[0].last_lsn, 1);
    assert_eq!(all_records(dir.path(), 0, 0).unwrap().len(), 1);
}

#[test]
fn missing_segment_and_bad_header() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let segs = w.wal.segments(1).unwrap();
    w.wal.close().unwrap();
    assert!(segs.len() >= 3);
    std::fs::remove_file(dir.path().join(&segs[1].file)).unwrap();
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    let d = r.partitions[0].damage().unwrap();
    assert_eq!((d.file.as_str(), d.offset), (segs[1].file.as_str(), 0));
    assert!(d.reason.contains("missing"));
    assert_eq!(r.partitions[0].last_lsn, segs[0].last_lsn);
    let it: Vec<_> = inspect::records(dir.path(), 1, 0).unwrap().collect();
    assert_eq!(it.iter().filter(|r| r.is_ok()).count() as u64, segs[0].last_lsn);
    assert_eq!(it.last().unwrap().as_ref().unwrap_err().code, ErrorCode::Corruption);

    flip(&dir.path().join(&segs[2].file), 30);
    std::fs::write(dir.path().join(&segs[1].file), b"").unwrap();
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    let d = r.partitions[0].damage().unwrap();
    assert_eq!((d.file.as_str(), d.offset), (segs[1].file.as_str(), 0));
    assert!(d.reason.contains("header"), "{d:?}");
}

#[test]
fn chain_break_between_segments_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let segs = w.wal.segments(1).unwrap();
    w.wal.close().unwrap();
    // Drop the last record of segment 1 (a whole frame, so the segment itself is fine).
    let f = OpenOptions::new()
        .write(true)
        .open(dir.path().join(&segs[0].file))
        .unwrap();
    f.set_len(segs[0].bytes - 136).unwrap();
    drop(f);
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    let d = r.partitions[0].damage().unwrap().clone();
    assert_eq!((d.file.as_str(), d.offset), (segs[1].file.as_str(), 0));
    assert!(d.reason.contains("where"), "{d:?}");
    assert_eq!(inspect::inspect(dir.path()).unwrap()[0].damage(), Some(&d));
}

#[test]
fn pending_truncation_empty_and_missing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    assert!(inspect::inspect(dir.path()).unwrap().is_empty());
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(r.is_clean() && r.partitions.is_empty() && r.records == 0);
    let w = populate(dir.path());
    w.wal.close().unwrap();
    std::fs::write(dir.path().join("part_7.truncating"), b"x").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
    let parts = inspect::inspect(dir.path()).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.pending_truncation).collect::<Vec<_>>(),
        vec![false, true]
    );
    let e = inspect::inspect(dir.path().join("nope")).unwrap_err();
    assert_eq!((e.code, e.errno.as_deref()), (ErrorCode::Io, Some("ENOENT")));
}

#[test]
fn unstarted_last_file_is_a_spare_or_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    let segs = w.wal.segments(1).unwrap();
    w.wal.close().unwrap();
    let next = segwal_core::format::segment_file_name(1, segs.last().unwrap().index + 1);
    for (content, torn) in [
        (vec![], false),
        (vec![0u8; 64], false),
        (vec![0x11u8; 20], true),
        (vec![0u8; 200], true),
    ] {
        std::fs::write(dir.path().join(&next), &content).unwrap();
        let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
        assert!(r.is_clean(), "{r:?}");
        let p = &r.partitions[0];
        let last = p.segments.last().unwrap();
        assert_eq!(
            (last.file.as_str(), last.spare, last.newest),
            (next.as_str(), !torn, false)
        );
        assert!(p.segments[p.segments.len() - 2].newest);
        assert_eq!(p.last_lsn, 65);
        match p.torn_tail() {
            Some(t) => {
                assert!(torn);
                assert_eq!(
                    (t.file.as_str(), t.offset, t.torn_bytes),
                    (next.as_str(), 0, content.len() as u64)
                );
            }
            None => assert!(!torn),
        }
        assert_eq!(inspect::inspect(dir.path()).unwrap()[0].problems, p.problems);
        assert_eq!(all_records(dir.path(), 1, 0).unwrap().len(), 65);
        assert!(all_records(dir.path(), 1, 66).unwrap().is_empty());
    }
}

#[test]
fn live_writer_with_a_spare_segment() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(4096)).unwrap();
    // Past half of the first segment: the writer creates the next file ahead.
    for i in 1..=20u64 {
        w.append(3, &payload(3, i, 100));
    }
    let names: Vec<String> = snapshot(dir.path()).into_iter().map(|(n, _)| n).collect();
    let spare_expected = names.iter().any(|n| n == "part_3_0000000002.wal");
    let p = &inspect::inspect(dir.path()).unwrap()[0];
    assert!(p.problems.is_empty(), "{p:?}");
    assert_eq!(p.last_lsn, 20);
    assert!(p.segments[0].newest);
    assert_eq!(
        p.segments.iter().filter(|s| s.spare).count(),
        usize::from(spare_expected)
    );
    let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(r.partitions[0].problems.is_empty(), "{r:?}");
    assert_eq!(r.records, 20);
    assert_eq!(all_records(dir.path(), 3, 0).unwrap().len(), 20);
    // Appends keep going meanwhile; what inspect reads stays consistent.
    for i in 21..=80u64 {
        w.wal.append(3, &payload(3, i, 100)).unwrap();
        if i % 10 == 0 {
            let r = inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
            assert!(r.is_clean(), "{r:?}");
            let got = all_records(dir.path(), 3, 0).unwrap();
            assert!(got.iter().enumerate().all(|(k, rec)| rec.lsn == k as u64 + 1));
        }
    }
    w.wait_acked(3, 80).unwrap();
    w.wal.close().unwrap();
}

/// The OS file system, except that listings also name a segment purged meanwhile.
struct Phantom(String);

impl segwal_core::fs::Fs for Phantom {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        segwal_core::fs::OsFs.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut names = segwal_core::fs::OsFs.list_dir(dir)?;
        names.push(self.0.clone());
        Ok(names)
    }
    fn open(&self, path: &Path, write: bool) -> std::io::Result<std::sync::Arc<dyn segwal_core::fs::FsFile>> {
        segwal_core::fs::OsFs.open(path, write)
    }
    fn create(&self, path: &Path) -> std::io::Result<std::sync::Arc<dyn segwal_core::fs::FsFile>> {
        segwal_core::fs::OsFs.create(path)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        segwal_core::fs::OsFs.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        segwal_core::fs::OsFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        segwal_core::fs::OsFs.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> std::io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        segwal_core::fs::OsFs.lock_dir(dir)
    }
}

#[test]
fn segments_purged_during_a_read_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let w = populate(dir.path());
    assert_eq!(w.wal.purge_before(1, 40).unwrap().wait().unwrap().segments_deleted, 1);
    let first = w.wal.first_lsn(1).unwrap();
    let fs = Phantom("part_1_0000000001.wal".into());
    let parts = inspect::inspect_with(&fs, dir.path()).unwrap();
    assert_eq!((parts[0].segments[0].index, parts[0].first_lsn), (2, first));
    assert!(parts[0].problems.is_empty());
    let r = inspect::verify_with(&fs, dir.path(), &mut |_, _| {}).unwrap();
    assert!(r.is_clean() && r.partitions[0].problems.is_empty(), "{r:?}");
    let fs = std::sync::Arc::new(fs);
    let all: Vec<_> = inspect::records_with(fs.clone(), dir.path(), 1, 0)
        .unwrap()
        .collect::<segwal_core::Result<_>>()
        .unwrap();
    assert_eq!(all[0].lsn, first);
    let e = inspect::records_with(fs, dir.path(), 1, 1).err().unwrap();
    assert_eq!(e.code, ErrorCode::LsnPurged);
    w.wal.close().unwrap();
}
