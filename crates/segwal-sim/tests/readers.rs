//! Readers against truncations and purges made while they read (issue #9: 2, 3, 10).

mod common;

use common::*;
use segwal_core::{ErrorCode, Options, Reader, Start, SyncMode};

fn fast(segment_size: u64) -> Options {
    Options {
        sync: SyncMode::None,
        ..opts(segment_size)
    }
}

/// Appends records `from..=to` to partition 0 (payloads from `payload`).
fn fill(w: &TestWal, from: u64, to: u64, len: usize) {
    for l in from..=to {
        assert_eq!(w.wal.append(0, &payload(0, l, len)).unwrap(), l);
    }
    w.wait_acked(0, to).unwrap();
}

/// Reads what is left, checking LSNs and payloads.
fn drain(r: &mut Reader, mut expect: u64, len: usize) -> segwal_core::Result<u64> {
    while let Some(b) = r.next_batch(4096)? {
        for rec in &b.records {
            assert_eq!(rec.lsn, expect);
            let s = rec.payload_start as usize;
            assert_eq!(&b.data[s..s + rec.payload_len as usize], &payload(0, expect, len)[..]);
            expect += 1;
        }
    }
    Ok(expect)
}

fn first_batch(r: &mut Reader, max: usize) -> u64 {
    let b = r.next_batch(max).unwrap().unwrap();
    b.records.last().unwrap().lsn
}

/// #9.2: the partition kept the lowest cut ever made, so a reader created after a first
/// truncate and below a second one was judged by the first and failed.
#[test]
fn a_second_truncate_above_a_reader_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), fast(1 << 20)).unwrap();
    fill(&w, 1, 20, 50);
    w.wal.truncate_after(0, 10).unwrap().wait().unwrap();
    fill(&w, 11, 10_010, 50);
    let mut r = w.wal.reader(0, Start::Lsn(1)).unwrap();
    let read = first_batch(&mut r, 4096);
    assert!(read > 11 && read < 9000, "read ahead of the first cut: {read}");
    w.wal.truncate_after(0, 9000).unwrap().wait().unwrap();
    assert_eq!(drain(&mut r, read + 1, 50).unwrap(), 9001);
    // Records appended after the truncation follow.
    fill(&w, 9001, 9010, 50);
    assert_eq!(drain(&mut r, 9001, 50).unwrap(), 9011);
}

/// #9.3: a caller that read ahead and dropped what the cut removed rewinds its reader to
/// where its own caller is; judged from there, it goes on with the records up to the cut
/// and then the new ones.
#[test]
fn a_rewound_reader_goes_on_below_the_cut_and_fails_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), fast(1 << 20)).unwrap();
    fill(&w, 1, 1000, 20);
    let mut below = w.wal.reader(0, Start::Lsn(1)).unwrap();
    let mut above = w.wal.reader(0, Start::Lsn(1)).unwrap();
    let mut unwound = w.wal.reader(0, Start::Lsn(1)).unwrap();
    for r in [&mut below, &mut above, &mut unwound] {
        assert_eq!(first_batch(r, 1 << 20), 1000, "all read ahead");
    }
    w.wal.truncate_after(0, 990).unwrap().wait().unwrap();
    below.rewind(6);
    assert_eq!(drain(&mut below, 6, 20).unwrap(), 991);
    above.rewind(995);
    let e = above.next_batch(4096).err().expect("read above the cut");
    assert_eq!(e.code, ErrorCode::LsnOutOfRange, "{e}");
    // Without a rewind it is judged where it is: past the cut.
    let e = unwound.next_batch(4096).err().expect("read above the cut");
    assert_eq!(e.code, ErrorCode::LsnOutOfRange, "{e}");
    // The news is kept until judged: a rewind after a failed read still fails above.
    let e = unwound.next_batch(4096).err().expect("still above the cut");
    assert_eq!(e.code, ErrorCode::LsnOutOfRange, "{e}");
    fill(&w, 991, 1000, 20);
    assert_eq!(drain(&mut below, 991, 20).unwrap(), 1001);
}

/// A cut that removed whole segments: a reader at the cut finds its place again.
#[test]
fn a_reader_at_the_cut_survives_the_removal_of_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), fast(4096)).unwrap();
    fill(&w, 1, 200, 100);
    assert!(w.wal.segments(0).unwrap().len() > 3);
    let mut r = w.wal.reader(0, Start::Lsn(1)).unwrap();
    let mut next = 1;
    while next <= 60 {
        next = first_batch(&mut r, 512) + 1;
    }
    w.wal.truncate_after(0, next - 1).unwrap().wait().unwrap();
    assert_eq!(drain(&mut r, next, 100).unwrap(), next);
    fill(&w, next, next + 99, 100);
    assert_eq!(drain(&mut r, next, 100).unwrap(), next + 100);
}

/// #9.10: a reader at the end of a segment, overtaken by a purge of it and the next one,
/// failed with WAL_CORRUPTION "segment file missing".
#[test]
fn a_reader_overtaken_by_a_purge_gets_lsn_purged() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), fast(4096)).unwrap();
    fill(&w, 1, 200, 100);
    let segs = w.wal.segments(0).unwrap();
    let mut r = w.wal.reader(0, Start::Lsn(1)).unwrap();
    // Read the first segment whole: the reader now stands at its end.
    let mut next = 1;
    while next <= segs[0].last_lsn {
        next = first_batch(&mut r, 1 << 20) + 1;
    }
    w.wal.purge_before(0, segs[2].first_lsn).unwrap().wait().unwrap();
    let e = r.next_batch(4096).err().expect("overtaken");
    assert_eq!(e.code, ErrorCode::LsnPurged, "{e}");
}

/// #9.10: readers racing truncates saw files half cut (WAL_CORRUPTION), and a `from`
/// racing a purge got ENOENT (WAL_IO_ERROR). Only the API's codes may come out.
#[test]
fn readers_racing_truncates_and_purges_get_only_api_codes() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), fast(8192)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut next = 1u64;
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut codes: Vec<ErrorCode> = Vec::new();
                    let mut tries = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let segs = w.wal.segments(0).unwrap();
                        tries += 1;
                        let start = match segs.first() {
                            Some(seg) if tries.is_multiple_of(2) => Start::Position {
                                segment: seg.index,
                                offset: 64,
                            },
                            _ => Start::Lsn(0),
                        };
                        let mut r = match w.wal.reader(0, start) {
                            Ok(r) => r,
                            Err(e) => {
                                if !codes.contains(&e.code) {
                                    codes.push(e.code);
                                }
                                continue;
                            }
                        };
                        loop {
                            match r.next_batch(1024) {
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(e) => {
                                    if !codes.contains(&e.code) {
                                        codes.push(e.code);
                                    }
                                    break;
                                }
                            }
                        }
                    }
                    codes
                })
            })
            .collect();
        for round in 0..300u64 {
            fill(&w, next, next + 39, 60);
            next += 40;
            if round.is_multiple_of(3) {
                let keep = next - 1 - round % 30;
                w.wal.truncate_after(0, keep).unwrap().wait().unwrap();
                next = keep + 1;
            } else {
                w.wal.purge_before(0, next - 20).unwrap().wait().unwrap();
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for r in readers {
            let codes = r.join().unwrap();
            for code in &codes {
                assert!(
                    matches!(code, ErrorCode::LsnPurged | ErrorCode::LsnOutOfRange),
                    "a reader got {code:?}: {codes:?}"
                );
            }
        }
    });
}
