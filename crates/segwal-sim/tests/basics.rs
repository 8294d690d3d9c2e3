mod common;

use common::*;
use segwal_core::{ErrorCode, Start};

#[test]
fn append_read_reopen_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let w = TestWal::open(dir.path(), opts(4096)).unwrap();
        for i in 1..=100u64 {
            assert_eq!(w.append(3, &payload(3, i, 100)), i);
        }
        let segs = w.wal.segments(3).unwrap();
        assert!(segs.len() > 1, "rotation happened");
        assert_eq!(segs[0].file, "part_3_0000000001.wal");
        assert_eq!(segs[1].file, "part_3_0000000002.wal");
        for pair in segs.windows(2) {
            assert_eq!(pair[1].first_lsn, pair[0].last_lsn + 1);
        }
        let all = w.read_all(3, 0).unwrap();
        assert_eq!(all.len(), 100);
        for (i, (lsn, p)) in all.iter().enumerate() {
            assert_eq!(*lsn, i as u64 + 1);
            assert_eq!(p, &payload(3, *lsn, 100));
        }
        w.wal.close().unwrap();
    }
    let w = TestWal::open(dir.path(), opts(4096)).unwrap();
    assert!(w.wal.recovery().is_empty());
    assert_eq!(w.wal.last_lsn(3).unwrap(), 100);
    let before = w.wal.segments(3).unwrap();
    assert_eq!(w.append(3, b"next"), 101);
    let after = w.wal.segments(3).unwrap();
    assert_eq!(after.last().unwrap().index, before.last().unwrap().index);
    assert_eq!(w.read_all(3, 95).unwrap().len(), 7);
}

#[test]
fn batches_and_positions() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(8192)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..50).map(|i| payload(0, i, 64)).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    for round in 0..10u64 {
        let (first, last) = w.wal.append_batch(0, &refs).unwrap();
        assert_eq!((first, last), (round * 50 + 1, round * 50 + 50));
        w.wait_acked(0, last).unwrap();
    }
    // Every record's position is a valid start.
    let mut r = w.wal.reader(0, Start::Lsn(0)).unwrap();
    let mut positions = Vec::new();
    while let Some(b) = r.next_batch(4096).unwrap() {
        positions.extend(b.records.iter().map(|x| (x.lsn, x.segment, x.offset)));
    }
    assert_eq!(positions.len(), 500);
    for &(lsn, segment, offset) in positions.iter().step_by(37) {
        let got = read_all(&w.wal, 0, Start::Position { segment, offset }).unwrap();
        assert_eq!(got[0].0, lsn);
        assert_eq!(got.len() as u64, 500 - lsn + 1);
    }
    // A batch never straddles segments.
    for s in w.wal.segments(0).unwrap() {
        assert_eq!(s.last_lsn % 50, 0, "{s:?}");
    }
    let e = w
        .wal
        .reader(0, Start::Position { segment: 1, offset: 72 })
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
}

#[test]
fn purge_rules() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(2048)).unwrap();
    for i in 1..=60u64 {
        w.append(1, &payload(1, i, 200));
    }
    let segs = w.wal.segments(1).unwrap();
    let n = segs.len();
    assert!(n >= 4);
    // Below the first segment's last LSN: nothing goes.
    let r = w.wal.purge_before(1, segs[0].last_lsn).unwrap().wait().unwrap();
    assert_eq!(r.segments_deleted, 0);
    let r = w.wal.purge_before(1, segs[1].last_lsn + 1).unwrap().wait().unwrap();
    assert_eq!(r.segments_deleted, 2);
    assert_eq!(r.bytes_freed, segs[0].bytes + segs[1].bytes);
    assert_eq!(r.first_lsn, segs[2].first_lsn);
    assert!(!dir.path().join(&segs[0].file).exists());
    // Everything: the active segment stays.
    let r = w.wal.purge_before(1, u64::MAX).unwrap().wait().unwrap();
    assert_eq!(r.segments_deleted as usize, n - 3);
    assert_eq!(w.wal.segments(1).unwrap().len(), 1);
    assert!(w.wal.segments(1).unwrap()[0].active);
    let e = w.wal.reader(1, Start::Lsn(1)).err().unwrap();
    assert_eq!(e.code, ErrorCode::LsnPurged);
    assert_eq!(w.read_all(1, 0).unwrap().first().unwrap().0, segs[n - 1].first_lsn);
}

#[test]
fn truncate_after_across_segments_and_inside_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(2048)).unwrap();
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| payload(2, i, 100)).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    for _ in 0..12 {
        let (_, last) = w.wal.append_batch(2, &refs).unwrap();
        w.wait_acked(2, last).unwrap();
    }
    assert_eq!(w.wal.last_lsn(2).unwrap(), 60);
    w.wal.truncate_after(2, 23).unwrap().wait().unwrap();
    assert_eq!(w.wal.last_lsn(2).unwrap(), 23);
    assert_eq!(w.append(2, b"after"), 24);
    drop(w);
    let w = TestWal::open(dir.path(), opts(2048)).unwrap();
    assert!(w.wal.recovery().is_empty(), "{:?}", w.wal.recovery());
    assert_eq!(w.wal.last_lsn(2).unwrap(), 24);
    let all = w.read_all(2, 0).unwrap();
    assert_eq!(all.len(), 24);
    assert_eq!(all[23].1, b"after");
    w.wal.truncate_after(2, 0).unwrap().wait().unwrap();
    assert_eq!(w.wal.last_lsn(2).unwrap(), 0);
    assert_eq!(w.append(2, b"one"), 1);
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let file;
    {
        let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
        for i in 1..=10 {
            w.append(0, &payload(0, i, 50));
        }
        file = dir.path().join(&w.wal.segments(0).unwrap()[0].file);
    }
    let full = std::fs::metadata(&file).unwrap().len();
    let frame = 32 + 56;
    for cut in 1..frame {
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(full - cut).unwrap();
        drop(f);
        as_if_killed(dir.path());
        let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
        let rec = w.wal.recovery();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].truncated_bytes, frame - cut);
        assert_eq!(w.wal.last_lsn(0).unwrap(), 9);
        assert_eq!(w.append(0, &payload(0, 10, 50)), 10);
    }
    // Trailing garbage
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(&[0xAB; 100]).unwrap();
    }
    as_if_killed(dir.path());
    let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(w.wal.recovery()[0].truncated_bytes, 100);
    assert_eq!(w.wal.last_lsn(0).unwrap(), 10);
}

#[test]
fn errors() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(1024)).unwrap();
    assert_eq!(
        TestWal::open(dir.path(), opts(1024)).err().unwrap().code,
        ErrorCode::Locked
    );
    assert_eq!(
        w.wal.append(0, &[0u8; 2000]).err().unwrap().code,
        ErrorCode::RecordTooLarge
    );
    assert_eq!(
        w.wal.reader(0, Start::Lsn(5)).err().unwrap().code,
        ErrorCode::LsnOutOfRange
    );
    assert!(w
        .wal
        .reader(0, Start::Lsn(1))
        .unwrap()
        .next_batch(100)
        .unwrap()
        .is_none());
    w.wal.close().unwrap();
    assert_eq!(w.wal.append(0, b"x").err().unwrap().code, ErrorCode::Closed);
    assert!(Wal_open_bad_size(dir.path()));
}

#[allow(non_snake_case)]
fn Wal_open_bad_size(dir: &std::path::Path) -> bool {
    segwal_core::Wal::open(dir, opts(100)).err().unwrap().code == ErrorCode::InvalidArgument
}

#[test]
fn a_reader_finishes_a_segment_purged_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(4096)).unwrap();
    for i in 1..=100u64 {
        w.append(0, &payload(0, i, 100));
    }
    let mut r = w.wal.reader(0, Start::Lsn(1)).unwrap();
    let first = r.next_batch(256).unwrap().unwrap();
    assert_eq!(first.records[0].lsn, 1);
    let seg1_last = w.wal.segments(0).unwrap()[0].last_lsn;
    w.wal.purge_before(0, seg1_last + 1).unwrap().wait().unwrap();
    let mut lsns: Vec<u64> = first.records.iter().map(|x| x.lsn).collect();
    while let Some(b) = r.next_batch(256).unwrap() {
        lsns.extend(b.records.iter().map(|x| x.lsn));
    }
    assert_eq!(lsns, (1..=100).collect::<Vec<_>>());
}

#[test]
fn a_batch_torn_on_a_frame_boundary_is_a_torn_tail_for_open_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let file;
    {
        let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
        w.append(0, b"solo");
        let (_, last) = w.wal.append_batch(0, &[&[1u8; 20][..]; 4]).unwrap();
        w.wait_acked(0, last).unwrap();
        file = dir.path().join(&w.wal.segments(0).unwrap()[0].file);
    }
    // Header, the single record (40 bytes), two whole frames of the batch (56 each).
    let keep = 64 + 40 + 2 * 56;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(keep)
        .unwrap();
    as_if_killed(dir.path());
    let report = segwal_core::inspect::verify(dir.path(), &mut |_, _| {}).unwrap();
    let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(w.wal.recovery()[0].truncated_bytes, 2 * 56);
    assert_eq!(w.wal.last_lsn(0).unwrap(), 1);
    assert!(
        format!("{report:?}").contains("torn"),
        "verify agrees it is a torn tail: {report:?}"
    );
}

#[test]
fn a_frame_copied_into_a_payload_is_not_a_from_position() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
    w.append(0, b"first record");
    let seg = &w.wal.segments(0).unwrap()[0];
    let bytes = std::fs::read(dir.path().join(&seg.file)).unwrap();
    let frame = bytes[64..64 + 32 + 16].to_vec();
    // Record 2's payload is record 1's whole frame, 8-byte aligned inside the file.
    w.append(0, &frame);
    let forged = 64 + 48 + 24;
    let e = w
        .wal
        .reader(
            0,
            Start::Position {
                segment: seg.index,
                offset: forged,
            },
        )
        .err()
        .unwrap();
    assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
    let ok = read_all(
        &w.wal,
        0,
        Start::Position {
            segment: seg.index,
            offset: 64 + 48,
        },
    )
    .unwrap();
    assert_eq!(ok[0].0, 2);
}

/// A page of zeros where synced records were is damage like any other (records written
/// after a completed fdatasync prove it was synced), not a writeback hole: open keeps
/// the log, and reading reaches the damage and reports it. (Holes in what was never
/// synced are the power-loss tests' subject.)
#[test]
fn a_zero_page_or_garbage_in_synced_records_is_damage_reported_on_read() {
    for zero_page in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let file = {
            let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
            for i in 1..=200u64 {
                w.append(0, &payload(0, i, 100));
            }
            dir.path().join(&w.wal.segments(0).unwrap()[0].file)
        };
        let mut bytes = std::fs::read(&file).unwrap();
        if zero_page {
            bytes[3 * 4096..4 * 4096].fill(0);
        } else {
            bytes[3 * 4096 + 100] ^= 0x40;
        }
        std::fs::write(&file, &bytes).unwrap();
        as_if_killed(dir.path());
        let w = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
        assert_eq!(w.wal.recovery(), vec![]);
        assert_eq!(w.wal.last_lsn(0).unwrap(), 200);
        let e = w.read_all(0, 0).err().unwrap();
        assert_eq!(e.code, ErrorCode::Corruption, "zero page {zero_page}: {e}");
        assert!(e.file.is_some() && e.offset.is_some());
    }
}

#[test]
fn reading_into_recycled_dirty_buffers_gives_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), opts(64 << 10)).unwrap();
    let sizes = |lsn: u64| {
        if lsn.is_multiple_of(97) {
            9000
        } else {
            10 + (lsn as usize * 7) % 300
        }
    };
    for lsn in 1..=600u64 {
        assert_eq!(w.append(5, &payload(5, lsn, sizes(lsn))), lsn);
    }
    let expect = w.read_all(5, 0).unwrap();
    // Buffers handed back dirty (0xAB everywhere), some shorter than a batch and some
    // longer, as a caller's pool would; records of 9000 B exceed the 4 KiB batches.
    let mut r = w.wal.reader(5, Start::Lsn(0)).unwrap();
    let mut spare: Vec<Vec<u8>> = vec![vec![0xAB; 100], vec![0xAB; 20_000], Vec::new()];
    let mut got = Vec::new();
    let mut turn = 0usize;
    loop {
        let buf = spare.pop().unwrap_or_else(|| vec![0xAB; (turn * 1237) % 12_000]);
        turn += 1;
        let Some(b) = r.next_batch_in(buf, 4096).unwrap() else {
            break;
        };
        assert!(b.len <= b.data.len());
        for rec in &b.records {
            let s = rec.payload_start as usize;
            assert!(s + rec.payload_len as usize <= b.len);
            got.push((rec.lsn, b.data[s..s + rec.payload_len as usize].to_vec()));
        }
        let mut data = b.data;
        data.fill(0xAB);
        spare.insert(0, data);
    }
    assert_eq!(got, expect);
}
