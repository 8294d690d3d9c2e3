//! Damage done to real segment files (tempdir, the real file system): torn tails at
//! every byte, trailing garbage, a flipped bit at every byte of a sealed and of the
//! active segment, missing / foreign / truncated segments, a crash right after rotation.
//! Never a wrong payload; damage that is not a torn tail is WAL_CORRUPTION naming the
//! file and offset; `repair` keeps the log up to the last good record and says so.

mod common;

/// Exhaustive in release builds (or with SEGWAL_THOROUGH=1); debug builds sample.
fn thorough() -> bool {
    !cfg!(debug_assertions) || std::env::var_os("SEGWAL_THOROUGH").is_some()
}

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use std::sync::Arc;

use segwal_core::format::{self, SegmentHeader, FRAME_OVERHEAD, SEGMENT_HEADER_LEN};
use segwal_core::{AckEvent, ErrorCode, Options, Start, Wal};
use segwal_sim::SimFs;

const SEG: u64 = 1024;
const HEADER: u64 = SEGMENT_HEADER_LEN as u64;

/// What a log was built with: per LSN its payload and where its batch starts.
#[derive(Clone)]
struct Built {
    files: BTreeMap<String, Vec<u8>>,
    /// lsn -> (payload, first LSN of its batch, segment, offset)
    recs: BTreeMap<u64, (Vec<u8>, u64, u64, u64)>,
}

impl Built {
    fn last(&self) -> u64 {
        *self.recs.keys().last().unwrap()
    }

    fn seg_first(&self, seg: u64) -> u64 {
        self.recs.iter().find(|(_, r)| r.2 == seg).map(|(l, _)| *l).unwrap()
    }

    /// The record whose frame holds byte `off` of segment `seg`.
    fn record_at(&self, seg: u64, off: u64) -> Option<u64> {
        self.recs
            .iter()
            .filter(|(_, r)| r.2 == seg && r.3 <= off)
            .map(|(l, _)| *l)
            .max()
    }
}

fn o(repair: bool) -> Options {
    Options { repair, ..opts(SEG) }
}

/// Partition 0: single appends and batches over several segments; partition 1 a few.
fn build() -> Built {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWal::open(dir.path(), o(false)).unwrap();
    let mut recs = BTreeMap::new();
    let mut lsn = 0;
    for round in 0..24u64 {
        if round % 3 == 2 {
            let ps: Vec<Vec<u8>> = (0..3).map(|i| payload(0, lsn + 1 + i, 40 + 13 * i as usize)).collect();
            let refs: Vec<&[u8]> = ps.iter().map(|p| p.as_slice()).collect();
            let (first, last) = w.wal.append_batch(0, &refs).unwrap();
            w.wait_acked(0, last).unwrap();
            for (i, p) in ps.into_iter().enumerate() {
                recs.insert(first + i as u64, (p, first, 0, 0));
            }
            lsn = last;
        } else {
            let p = payload(0, lsn + 1, 60 + (round as usize * 17) % 90);
            lsn = w.append(0, &p);
            recs.insert(lsn, (p, lsn, 0, 0));
        }
    }
    for i in 1..=4 {
        w.append(1, &payload(1, i, 100));
    }
    // Where each record landed.
    let mut r = w.wal.reader(0, Start::Lsn(0)).unwrap();
    while let Some(b) = r.next_batch(1 << 20).unwrap() {
        for x in b.records {
            let e = recs.get_mut(&x.lsn).unwrap();
            e.2 = x.segment;
            e.3 = x.offset;
        }
    }
    assert!(w.wal.segments(0).unwrap().len() >= 4);
    w.wal.close().unwrap();
    Built {
        files: snapshot(dir.path()),
        recs,
    }
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.ends_with(".wal") {
            m.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    m
}

fn place(files: &BTreeMap<String, Vec<u8>>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// A directory of segment files, on the real file system or in a `SimFs` (same engine
/// code either way; the simulated one makes exhaustive sweeps cheap).
enum Place {
    Real(tempfile::TempDir),
    Sim(SimFs),
}

impl Place {
    fn new(files: &BTreeMap<String, Vec<u8>>, real: bool) -> Place {
        if real {
            return Place::Real(place(files));
        }
        let fs = SimFs::new();
        for (name, bytes) in files {
            fs.write_file(&Path::new(SIM_DIR).join(name), bytes);
        }
        Place::Sim(fs)
    }

    fn open(&self, o: Options) -> segwal_core::Result<Wal> {
        match self {
            Place::Real(d) => Wal::open(d.path(), o),
            Place::Sim(fs) => Wal::open_with(SIM_DIR, o, Arc::new(fs.clone())),
        }
    }
}

const SIM_DIR: &str = "/wal";

fn seg_name(index: u64) -> String {
    format!("part_0_{index:010}.wal")
}

/// Reads partition 0 to the end: the records before the first error, and the error.
fn read_until_error(wal: &Wal) -> (Vec<(u64, Vec<u8>)>, Option<segwal_core::Error>) {
    let mut out = Vec::new();
    let mut r = match wal.reader(0, Start::Lsn(0)) {
        Ok(r) => r,
        Err(e) => return (out, Some(e)),
    };
    loop {
        match r.next_batch(300) {
            Ok(Some(b)) => {
                assert!(!b.records.is_empty());
                for x in b.records {
                    let s = x.payload_start as usize;
                    out.push((x.lsn, b.data[s..s + x.payload_len as usize].to_vec()));
                }
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Every record handed out is the one written at its LSN, and LSNs are dense from 1.
fn assert_genuine(b: &Built, got: &[(u64, Vec<u8>)], ctx: &str) {
    for (i, (lsn, p)) in got.iter().enumerate() {
        assert_eq!(*lsn, i as u64 + 1, "{ctx}: LSNs not dense");
        assert_eq!(&b.recs[lsn].0, p, "{ctx}: WRONG PAYLOAD handed out for LSN {lsn}");
    }
}

fn assert_corruption(e: &segwal_core::Error, file: &str, ctx: &str) {
    assert_eq!(e.code, ErrorCode::Corruption, "{ctx}: {e}");
    assert_eq!(e.file.as_deref(), Some(file), "{ctx}: {e}");
    assert!(e.offset.is_some(), "{ctx}: {e}");
}

/// Appends one record and returns (lsn, segment, offset) from its acknowledgement.
fn append_pos(wal: &Wal, p: u16) -> (u64, u64, u64) {
    let lsn = wal.append(p, b"next").unwrap();
    loop {
        for a in wal.take_acks() {
            for e in a.events {
                match e {
                    AckEvent::Acked { positions, .. } => {
                        if let Some(x) = positions.iter().find(|x| x.lsn == lsn) {
                            return (lsn, x.segment, x.offset);
                        }
                    }
                    AckEvent::Failed { error, .. } => panic!("append failed: {error}"),
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Cutting the newest segment anywhere inside its last record, or inside its last batch
/// (every byte, frame boundaries included), is a torn tail: open cuts exactly back to
/// the previous record (the whole batch goes), reports the bytes, and the next append
/// lands exactly where the cut was.
#[test]
fn torn_tail_at_every_byte_of_the_last_record_and_batch() {
    let b = build();
    let newest = b.recs.values().map(|r| r.2).max().unwrap();
    let name = seg_name(newest);
    let full = b.files[&name].clone();
    // The last batch and the last single record of the newest segment.
    let last = b.last();
    let last_batch_first = b.recs[&last].1;
    let mut cases = vec![(last_batch_first, full.len() as u64)];
    // Make the newest segment end with a single record too: drop the batch, re-close.
    let single = b
        .recs
        .iter()
        .filter(|(l, r)| r.2 == newest && r.1 == **l && **l < last_batch_first)
        .map(|(l, _)| *l)
        .max();
    if let Some(s) = single {
        cases.push((s, b.recs[&last_batch_first].3));
    }
    assert!(last_batch_first < last, "the newest segment ends with a batch");
    for (first_cut, end) in cases {
        let start = b.recs[&first_cut].3;
        let mut files = b.files.clone();
        files.insert(name.clone(), full[..end as usize].to_vec());
        // Every cut in a simulated directory; on real files every cut too, or (debug
        // builds) those on 8-byte boundaries (where frames end) and every 7th.
        let cuts = (start..end).map(|c| (c, false)).chain(
            (start..end)
                .filter(|c| thorough() || c % 8 == 0 || c % 7 == 0)
                .map(|c| (c, true)),
        );
        for (cut, real) in cuts {
            let ctx = format!("cut at {cut} (record/batch {start}..{end}), real files {real}");
            files.insert(name.clone(), full[..cut as usize].to_vec());
            let dir = Place::new(&files, real);
            let wal = dir.open(o(false)).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let rec = wal.recovery();
            if cut == start {
                assert!(rec.is_empty(), "{ctx}: {rec:?}");
            } else {
                assert_eq!(rec.len(), 1, "{ctx}: {rec:?}");
                assert_eq!(
                    (rec[0].partition, rec[0].segment, rec[0].truncated_bytes),
                    (0, newest, cut - start),
                    "{ctx}"
                );
            }
            assert_eq!(wal.last_lsn(0).unwrap(), first_cut - 1, "{ctx}");
            let (got, err) = read_until_error(&wal);
            assert!(err.is_none(), "{ctx}: {err:?}");
            assert_genuine(&b, &got, &ctx);
            assert_eq!(got.len() as u64, first_cut - 1, "{ctx}");
            assert_eq!(append_pos(&wal, 0), (first_cut, newest, start), "{ctx}");
        }
    }
}

/// Zeros (a preallocated tail the size caught up with) or garbage after the last record
/// are a torn tail: cut exactly, nothing lost.
#[test]
fn trailing_zeros_and_garbage_are_cut() {
    let b = build();
    let newest = b.recs.values().map(|r| r.2).max().unwrap();
    let name = seg_name(newest);
    for (what, tail) in [
        ("zeros", vec![0u8; 300]),
        ("garbage", (0..300).map(|i| (i * 7 + 3) as u8).collect()),
        ("a few bytes", vec![0xff; 5]),
    ] {
        let mut files = b.files.clone();
        files.get_mut(&name).unwrap().extend_from_slice(&tail);
        let dir = place(&files);
        let wal = Wal::open(dir.path(), o(false)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(wal.recovery().len(), 1, "{what}");
        assert_eq!(wal.recovery()[0].truncated_bytes, tail.len() as u64, "{what}");
        assert_eq!(wal.last_lsn(0).unwrap(), b.last());
        let (got, err) = read_until_error(&wal);
        assert!(err.is_none());
        assert_eq!(got.len() as u64, b.last());
        assert_genuine(&b, &got, what);
    }
}

/// A flipped bit at every byte of a sealed segment and of the newest one (header, frame
/// header with the length, payload, padding, trailer with the checksum):
/// - never a wrong payload;
/// - without repair, open or the read of the damaged record fails with WAL_CORRUPTION
///   naming the segment and an offset at or after the damaged record's start (only the
///   newest segment's last record or batch may instead be cut as a torn tail: a flipped
///   bit there looks like a torn write, and open reports the cut);
/// - with repair, open keeps exactly the records before the damaged record's batch (or
///   before the damaged segment, for its header), reports what it dropped, and appends
///   continue at the next LSN.
///
/// (Debug builds: the header, the first frame's header and trailer, and every 3rd byte.)
#[test]
fn a_flipped_bit_anywhere_in_a_segment() {
    let all = thorough();
    flipped_bits(false, |off, first_frame_end| {
        all || off < HEADER as usize + 24 || (first_frame_end - 8..first_frame_end).contains(&off) || off % 3 == 0
    });
}

/// The same on real files, for a sample of the bytes: all of the header and of the first
/// frame's header and trailer, and every 13th byte (debug builds: every 41st).
#[test]
fn a_flipped_bit_in_real_segment_files() {
    let stride = if thorough() { 13 } else { 41 };
    flipped_bits(true, |off, first_frame_end| {
        off < HEADER as usize + 24 || (first_frame_end - 8..first_frame_end).contains(&off) || off % stride == 0
    });
}

fn flipped_bits(real: bool, pick: impl Fn(usize, usize) -> bool) {
    let b = build();
    let newest = b.recs.values().map(|r| r.2).max().unwrap();
    let last_batch_first = b.recs[&b.last()].1;
    for seg in [2, newest] {
        let name = seg_name(seg);
        let orig = b.files[&name].clone();
        let first = b.seg_first(seg);
        let first_frame_end = b
            .recs
            .get(&(first + 1))
            .filter(|r| r.2 == seg)
            .map_or(orig.len(), |r| r.3 as usize);
        for off in (0..orig.len()).filter(|&o| pick(o, first_frame_end)) {
            let mut files = b.files.clone();
            files.get_mut(&name).unwrap()[off] ^= 1 << (off % 8);
            let off = off as u64;
            let rec = b.record_at(seg, off);
            let ctx = format!("{name} byte {off} (record {rec:?})");
            // What the damage should cost: its batch onwards, or the whole segment.
            let keep_through = match rec {
                Some(l) if off >= HEADER => b.recs[&l].1 - 1,
                _ => b.seg_first(seg) - 1,
            };
            let in_last_batch = seg == newest && rec.is_some_and(|l| l >= last_batch_first) && off >= HEADER;

            // Without repair.
            match Place::new(&files, real).open(o(false)) {
                Err(e) => {
                    assert_corruption(&e, &name, &ctx);
                    if let Some(l) = rec.filter(|_| off >= HEADER) {
                        assert!(e.offset.unwrap() >= b.recs[&l].3, "{ctx}: {e}");
                    }
                }
                Ok(wal) => {
                    let (got, err) = read_until_error(&wal);
                    assert_genuine(&b, &got, &ctx);
                    match err {
                        Some(e) => {
                            assert_corruption(&e, &name, &ctx);
                            assert_eq!(got.len() as u64, rec.unwrap() - 1, "{ctx}: {e}");
                            assert_eq!(e.offset, Some(b.recs[&rec.unwrap()].3), "{ctx}: {e}");
                        }
                        None => {
                            assert!(in_last_batch, "{ctx}: damage not detected");
                            let r = wal.recovery();
                            assert_eq!(r.len(), 1, "{ctx}");
                            assert_eq!(r[0].truncated_bytes, orig.len() as u64 - b.recs[&last_batch_first].3);
                            assert_eq!(got.len() as u64, last_batch_first - 1, "{ctx}");
                        }
                    }
                }
            }

            // With repair.
            let dir = Place::new(&files, real);
            let wal = dir.open(o(true)).unwrap_or_else(|e| panic!("{ctx}: repair: {e}"));
            assert!(!wal.recovery().is_empty(), "{ctx}: repair reported nothing");
            let (got, err) = read_until_error(&wal);
            assert!(err.is_none(), "{ctx}: after repair: {err:?}");
            assert_genuine(&b, &got, &ctx);
            assert_eq!(got.len() as u64, keep_through, "{ctx}: repair kept the wrong amount");
            assert_eq!(wal.last_lsn(0).unwrap(), keep_through, "{ctx}");
            let (lsn, _, _) = append_pos(&wal, 0);
            assert_eq!(lsn, keep_through + 1, "{ctx}");
            // The other partition is untouched.
            assert_eq!(wal.last_lsn(1).unwrap(), 4, "{ctx}");
            drop(wal);
            let wal = dir
                .open(o(false))
                .unwrap_or_else(|e| panic!("{ctx}: after repair: {e}"));
            assert!(wal.recovery().is_empty(), "{ctx}: {:?}", wal.recovery());
            assert_eq!(wal.last_lsn(0).unwrap(), keep_through + 1);
        }
    }
}

/// Missing, foreign, misplaced and truncated segments are found at open.
#[test]
fn missing_foreign_and_truncated_segments() {
    let b = build();
    let open_err = |files: &BTreeMap<String, Vec<u8>>| {
        let dir = place(files);
        Wal::open(dir.path(), o(false)).err().expect("open must fail")
    };
    let repaired = |files: &BTreeMap<String, Vec<u8>>, keep_through: u64, ctx: &str| {
        let dir = place(files);
        let wal = Wal::open(dir.path(), o(true)).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(!wal.recovery().is_empty(), "{ctx}");
        let (got, err) = read_until_error(&wal);
        assert!(err.is_none(), "{ctx}: {err:?}");
        assert_genuine(&b, &got, ctx);
        assert_eq!(wal.last_lsn(0).unwrap(), keep_through, "{ctx}");
        assert_eq!(append_pos(&wal, 0).0, keep_through + 1, "{ctx}");
    };

    // A middle segment file missing.
    let mut f = b.files.clone();
    f.remove(&seg_name(2));
    let e = open_err(&f);
    assert_corruption(&e, &seg_name(2), "missing segment");
    assert_eq!(e.offset, Some(0));
    repaired(&f, b.seg_first(2) - 1, "missing segment, repair");

    // Another partition's segment under this partition's name.
    let mut f = b.files.clone();
    f.insert(seg_name(2), b.files["part_1_0000000001.wal"].clone());
    let e = open_err(&f);
    assert_corruption(&e, &seg_name(2), "foreign segment");
    assert_eq!(e.offset, Some(0));
    repaired(&f, b.seg_first(2) - 1, "foreign segment, repair");

    // This partition's segment under another index.
    let mut f = b.files.clone();
    f.insert(seg_name(2), b.files[&seg_name(3)].clone());
    assert_corruption(&open_err(&f), &seg_name(2), "segment under another index");

    // A sealed segment cut short: at a frame boundary, inside a frame, to its header.
    let s2 = &b.files[&seg_name(2)];
    let last2 = b.recs.iter().filter(|(_, r)| r.2 == 2).map(|(l, _)| *l).max().unwrap();
    let last2_at = b.recs[&last2].3 as usize;
    for (what, len) in [
        ("at a frame boundary", last2_at),
        ("inside a frame", last2_at + 20),
        ("by one byte", s2.len() - 1),
        ("to its header", HEADER as usize),
    ] {
        let mut f = b.files.clone();
        f.insert(seg_name(2), s2[..len].to_vec());
        let ctx = format!("sealed segment cut {what}");
        assert_corruption(&open_err(&f), &seg_name(2), &ctx);
        // Repair keeps what is whole in it.
        let dir = place(&f);
        let wal = Wal::open(dir.path(), o(true)).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let (got, err) = read_until_error(&wal);
        assert!(err.is_none(), "{ctx}: {err:?}");
        assert_genuine(&b, &got, &ctx);
        assert!(
            got.len() as u64 >= b.seg_first(2) - 1 && (got.len() as u64) < b.seg_first(3),
            "{ctx}"
        );
    }

    // Garbage file names are not ours; an unreadable header in a sealed segment is damage.
    let mut f = b.files.clone();
    f.insert("part_0_0000000002.wal.bak".into(), vec![1, 2, 3]);
    let dir = place(&f);
    let wal = Wal::open(dir.path(), o(false)).unwrap();
    assert!(wal.recovery().is_empty());
    drop(wal);
    let mut f = b.files.clone();
    f.get_mut(&seg_name(2)).unwrap()[..HEADER as usize].fill(0);
    assert_corruption(&open_err(&f), &seg_name(2), "zeroed header of a sealed segment");
}

/// A crash right after rotation leaves a newest segment holding only its header: LSNs go
/// on from the header's first LSN (the record after the previous segment's last), never
/// restart or repeat; the next append lands in it right after the header. A newest
/// segment whose header never became durable (all zeros, or empty) is dropped, and
/// reported when it held bytes.
#[test]
fn crash_right_after_rotation() {
    let b = build();
    let newest = b.recs.values().map(|r| r.2).max().unwrap();
    let next = newest + 1;
    let header = SegmentHeader {
        partition: 0,
        index: next,
        first_lsn: b.last() + 1,
        salt: 0x1234_5678,
        created_ms: 1,
    };
    let mut f = b.files.clone();
    f.insert(seg_name(next), header.encode().to_vec());
    let dir = place(&f);
    let wal = Wal::open(dir.path(), o(false)).unwrap();
    assert!(wal.recovery().is_empty(), "{:?}", wal.recovery());
    assert_eq!(wal.last_lsn(0).unwrap(), b.last());
    let segs = wal.segments(0).unwrap();
    assert_eq!(segs.last().unwrap().index, next);
    assert_eq!(append_pos(&wal, 0), (b.last() + 1, next, HEADER));
    let (got, err) = read_until_error(&wal);
    assert!(err.is_none());
    assert_eq!(got.len() as u64, b.last() + 1);
    drop(wal);
    // Reopen: still there, still going on.
    let wal = Wal::open(dir.path(), o(false)).unwrap();
    assert!(wal.recovery().is_empty());
    assert_eq!(append_pos(&wal, 0).0, b.last() + 2);
    drop(wal);

    // Its header torn (any prefix, then zeros) or never written: dropped, LSNs go on.
    for (what, content) in [
        ("empty", vec![]),
        ("all zeros", vec![0u8; SEG as usize]),
        ("torn header", {
            let mut h = header.encode()[..20].to_vec();
            h.resize(HEADER as usize, 0);
            h
        }),
    ] {
        let mut f = b.files.clone();
        f.insert(seg_name(next), content.clone());
        let dir = place(&f);
        let wal = Wal::open(dir.path(), o(false)).unwrap_or_else(|e| panic!("{what}: {e}"));
        if content.is_empty() {
            assert!(wal.recovery().is_empty(), "{what}: only real cuts are reported");
        } else {
            assert_eq!(wal.recovery().len(), 1, "{what}");
            assert_eq!(wal.recovery()[0].truncated_bytes, content.len() as u64, "{what}");
        }
        assert_eq!(wal.last_lsn(0).unwrap(), b.last(), "{what}");
        let (lsn, seg, _) = append_pos(&wal, 0);
        assert_eq!(lsn, b.last() + 1, "{what}");
        assert!(seg == newest || seg == next, "{what}");
    }

    // A header-only newest segment whose first LSN does not follow the previous segment
    // is damage (LSNs would skip or repeat).
    for first in [b.last(), b.last() + 2] {
        let h = SegmentHeader {
            first_lsn: first,
            ..header
        };
        let mut f = b.files.clone();
        f.insert(seg_name(next), h.encode().to_vec());
        let dir = place(&f);
        let e = Wal::open(dir.path(), o(false))
            .err()
            .unwrap_or_else(|| panic!("first_lsn {first} accepted"));
        assert_eq!(e.code, ErrorCode::Corruption, "{e}");
    }
}

/// Frames are at least FRAME_OVERHEAD bytes; a sanity check on the constant used above.
#[test]
fn frame_overhead_is_what_the_tests_assume() {
    assert_eq!(FRAME_OVERHEAD, 32);
}

/// Clears the sync-point flag of every frame from `from` on and seals them again: the
/// segment as it would be had those records been written in one round after the record
/// before `from` (only a round's first frame carries the flag).
fn one_round_from(seg: &mut [u8], from: usize) {
    let salt = SegmentHeader::decode(&seg[..HEADER as usize]).unwrap().salt;
    let mut at = from;
    while at < seg.len() {
        let len = match format::decode(&seg[at..], salt, u64::MAX) {
            format::Decoded::Frame(f) => f.frame_len,
            other => panic!("no frame at {at}: {other:?}"),
        };
        seg[at + 21] &= !format::FLAG_SYNC_POINT;
        format::seal(&mut seg[at..at + len], salt);
        at += len;
    }
}

/// Writeback after a power loss persisted the later pages of the last round and not the
/// page where it starts (which keeps what was synced before it: the earlier records, then
/// zeros). Open takes it for a torn tail (those records were never acknowledged: no frame
/// after the hole says that what precedes it was synced) and cuts at the round's start.
/// The same zeros, or any other damage, where later rounds followed (each round's first
/// frame is a sync point) are damage in the middle of the log.
#[test]
fn writeback_hole_in_the_first_page_of_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let big = Options {
        segment_size: 64 << 10,
        ..o(false)
    };
    let w = TestWal::open(dir.path(), big.clone()).unwrap();
    for i in 1..=40u64 {
        w.append(0, &payload(0, i, 300));
    }
    let name = w.wal.segments(0).unwrap()[0].file.clone();
    w.wal.close().unwrap();
    drop(w);
    as_if_killed(dir.path());
    let files = snapshot(dir.path());
    let full = files[&name].clone();
    let frame = 24 + 304 + 8;
    // A record (k) past the first page, starting at least a frame before a page boundary.
    let k = (1..=40u64)
        .find(|k| {
            let at = 64 + (k - 1) as usize * frame;
            at > 4096 && !at.is_multiple_of(4096) && 4096 - at % 4096 > frame
        })
        .unwrap();
    let at = 64 + (k - 1) as usize * frame;
    let page_end = (at / 4096 + 1) * 4096;
    assert!(full.len() > page_end + 2 * frame);

    let mut last_round = full.clone();
    one_round_from(&mut last_round, at);
    let mut hole = last_round.clone();
    hole[at..page_end].fill(0);
    let mut f = files.clone();
    f.insert(name.clone(), hole);
    for real in [true, false] {
        let place = Place::new(&f, real);
        let wal = place.open(big.clone()).unwrap_or_else(|e| panic!("real {real}: {e}"));
        assert_eq!(wal.last_lsn(0).unwrap(), k - 1);
        assert_eq!(wal.recovery()[0].truncated_bytes, (full.len() - at) as u64);
        let (got, err) = read_until_error(&wal);
        assert!(err.is_none(), "real {real}: {err:?}");
        assert_eq!(got.len() as u64, k - 1);
    }

    // Later rounds followed: the same hole, or zeros that stop short of the page end, are
    // damage to synced records; open keeps the log and reading reports the damage.
    for (what, zeros) in [("a zero page", page_end - at), ("zeros inside a page", 100)] {
        let mut rot = full.clone();
        rot[at..at + zeros].fill(0);
        let mut f = files.clone();
        f.insert(name.clone(), rot);
        let place = Place::new(&f, true);
        let wal = place.open(big.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(wal.recovery().is_empty(), "{what}: nothing may be cut");
        let (got, err) = read_until_error(&wal);
        assert_eq!(got.len() as u64, k - 1, "{what}: {err:?}");
        let e = err.unwrap_or_else(|| panic!("{what}: the damage must be reported"));
        assert_corruption(&e, &name, what);
        assert_eq!(e.offset, Some(at as u64));
    }
}
