//! Arbitrary bytes into the decoders and into recovery: no panic, no hang, only
//! WAL_CORRUPTION or WAL_IO_ERROR, never a payload that was not written at its LSN, and
//! with `repair` open always succeeds and then reads cleanly. Structured inputs (real
//! frames sealed with the segment's salt, then damaged) get past the checksums, so the
//! recovery and reader logic behind them is exercised, not just the first check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use segwal_core::format::{self, Decoded, SegmentHeader};
use segwal_core::{ErrorCode, Options, Start, SyncMode, Wal};
use segwal_sim::SimFs;

const DIR: &str = "/wal";

fn cases() -> u32 {
    if let Some(n) = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if cfg!(debug_assertions) && std::env::var_os("SEGWAL_THOROUGH").is_none() {
        96
    } else {
        1000
    }
}

fn opts(repair: bool) -> Options {
    Options {
        segment_size: 4096,
        sync: SyncMode::Always,
        preallocate: false,
        repair,
    }
}

fn sealed(lsn: u64, batch_left: u32, payload: &[u8], salt: u32) -> Vec<u8> {
    let mut b = Vec::new();
    format::push_frame(&mut b, lsn, batch_left, payload);
    format::seal(&mut b, salt);
    b
}

/// Payloads written at each LSN (any segment, any salt: a record handed out must be one
/// of these, at its LSN).
type Written = BTreeMap<(u16, u64), BTreeSet<Vec<u8>>>;

/// Opens `fs` with and without repair, reads every partition: the properties above.
fn check_recovery(fs: &SimFs, written: &Written) -> Result<(), TestCaseError> {
    for repair in [false, true] {
        let copy = fs.power_loss();
        let wal = match Wal::open_with(DIR, opts(repair), Arc::new(copy.clone())) {
            Ok(w) => w,
            Err(e) => {
                prop_assert!(!repair, "repair must open anything: {e}");
                prop_assert!(
                    matches!(e.code, ErrorCode::Corruption | ErrorCode::Io),
                    "open failed with {e}"
                );
                if e.code == ErrorCode::Corruption {
                    prop_assert!(e.file.is_some() && e.offset.is_some(), "{e:?}");
                }
                continue;
            }
        };
        for p in wal.partitions().unwrap() {
            let first = wal.first_lsn(p).unwrap();
            let last = wal.last_lsn(p).unwrap();
            let mut r = match wal.reader(p, Start::Lsn(0)) {
                Ok(r) => r,
                Err(e) => {
                    prop_assert!(!repair, "reader after repair: {e}");
                    prop_assert!(matches!(e.code, ErrorCode::Corruption | ErrorCode::Io), "{e}");
                    continue;
                }
            };
            let mut next = r.next_lsn();
            if first != 0 {
                prop_assert_eq!(next, first);
            }
            let mut steps = 0;
            loop {
                steps += 1;
                prop_assert!(steps < 100_000, "reader does not end");
                match r.next_batch(1000) {
                    Ok(Some(b)) => {
                        prop_assert!(!b.records.is_empty(), "empty batch");
                        for x in b.records {
                            prop_assert_eq!(x.lsn, next);
                            next += 1;
                            let s = x.payload_start as usize;
                            let payload = &b.data[s..s + x.payload_len as usize];
                            let ok = written.get(&(p, x.lsn)).is_some_and(|set| set.contains(payload));
                            prop_assert!(ok, "p{} LSN {}: a payload never written there", p, x.lsn);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        prop_assert!(!repair, "reading after repair: {e}");
                        prop_assert!(matches!(e.code, ErrorCode::Corruption | ErrorCode::Io), "{e}");
                        if e.code == ErrorCode::Corruption {
                            prop_assert!(e.file.is_some() && e.offset.is_some(), "{e:?}");
                        }
                        break;
                    }
                }
            }
            if repair {
                prop_assert_eq!(next, last + 1, "repair left records it cannot read");
            }
        }
        if repair {
            // The repaired log takes appends and reopens clean.
            for p in wal.partitions().unwrap() {
                let last = wal.last_lsn(p).unwrap();
                prop_assert_eq!(wal.append(p, b"after").unwrap(), last + 1);
            }
            wal.close().unwrap();
            drop(wal);
            let again = Wal::open_with(DIR, opts(false), Arc::new(copy.clone()));
            prop_assert!(again.is_ok(), "reopen after repair: {:?}", again.err());
            let again = again.unwrap();
            prop_assert!(again.recovery().is_empty(), "{:?}", again.recovery());
        }
        // Inspection of the same directory never panics either.
        let _ = segwal_core::inspect::verify_with(&copy, Path::new(DIR), &mut |_, _| {});
    }
    Ok(())
}

fn header(partition: u16, index: u64, first_lsn: u64, salt: u32) -> Vec<u8> {
    SegmentHeader {
        partition,
        index,
        first_lsn,
        salt,
        created_ms: 7,
    }
    .encode()
    .to_vec()
}

/// One frame of a generated segment.
#[derive(Debug, Clone)]
struct FrameSpec {
    /// Offset from the expected LSN (mostly 0: in order).
    lsn_skew: i8,
    batch_left: u32,
    payload: Vec<u8>,
    wrong_salt: bool,
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    (
        prop_oneof![8 => Just(0i8), 1 => -2i8..3],
        prop_oneof![6 => Just(0u32), 2 => 1u32..4, 1 => any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..150),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(lsn_skew, batch_left, payload, wrong_salt)| FrameSpec {
            lsn_skew,
            batch_left,
            payload,
            wrong_salt,
        })
}

#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Cut(usize),
    Junk(usize, Vec<u8>),
    Zero(usize, usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(a, b)| Damage::Flip(a, b)),
        any::<usize>().prop_map(Damage::Cut),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40)).prop_map(|(a, v)| Damage::Junk(a, v)),
        (any::<usize>(), 1usize..64).prop_map(|(a, n)| Damage::Zero(a, n)),
    ]
}

fn apply(file: &mut Vec<u8>, d: &Damage) {
    if file.is_empty() {
        return;
    }
    let n = file.len();
    match d {
        Damage::Flip(at, bit) => file[at % n] ^= 1 << bit,
        Damage::Cut(at) => file.truncate(at % (n + 1)),
        Damage::Junk(at, v) => {
            let at = at % (n + 1);
            file.splice(at..at, v.iter().copied());
        }
        Damage::Zero(at, len) => {
            let at = at % n;
            let end = (at + len).min(n);
            file[at..end].fill(0);
        }
    }
}

/// One segment: header fields (mostly right) and frames.
#[derive(Debug, Clone)]
struct SegSpec {
    index_skew: u8,
    first_lsn_skew: i8,
    frames: Vec<FrameSpec>,
    /// Damages to the encoded file.
    damage: Vec<Damage>,
}

fn seg_spec() -> impl Strategy<Value = SegSpec> {
    (
        prop_oneof![9 => Just(0u8), 1 => 1u8..3],
        prop_oneof![9 => Just(0i8), 1 => -2i8..3],
        prop::collection::vec(frame_spec(), 0..12),
        prop_oneof![3 => Just(vec![]), 2 => prop::collection::vec(damage(), 1..3)],
    )
        .prop_map(|(index_skew, first_lsn_skew, frames, damage)| SegSpec {
            index_skew,
            first_lsn_skew,
            frames,
            damage,
        })
}

/// Writes the segments of `partition` into `fs`, returning what was sealed where.
fn write_partition(fs: &SimFs, partition: u16, first_lsn: u64, segs: &[SegSpec], written: &mut Written) {
    let mut lsn = first_lsn;
    let mut index = 1u64;
    for (i, s) in segs.iter().enumerate() {
        index += u64::from(s.index_skew);
        let salt = 0x1000_0000 + i as u32 * 77 + u32::from(partition);
        let seg_first = lsn.saturating_add_signed(i64::from(s.first_lsn_skew)).max(1);
        let mut file = header(partition, index, seg_first, salt);
        let mut l = seg_first;
        for f in &s.frames {
            let at = l.saturating_add_signed(i64::from(f.lsn_skew));
            let salt = if f.wrong_salt { salt ^ 1 } else { salt };
            file.extend_from_slice(&sealed(at, f.batch_left, &f.payload, salt));
            written.entry((partition, at)).or_default().insert(f.payload.clone());
            l = at.saturating_add(1);
        }
        for d in &s.damage {
            apply(&mut file, d);
        }
        fs.write_file(&Path::new(DIR).join(format::segment_file_name(partition, index)), &file);
        lsn = l;
        index += 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// decode never panics, never claims more than the buffer, never exceeds the bound.
    #[test]
    fn frame_decode_is_total(buf in prop::collection::vec(any::<u8>(), 0..300), salt in any::<u32>(), max in any::<u64>()) {
        match format::decode(&buf, salt, max) {
            Decoded::Frame(f) => {
                prop_assert!(f.frame_len <= buf.len());
                prop_assert_eq!(f.frame_len, format::frame_len(f.payload_len as usize));
                prop_assert!(u64::from(f.payload_len) <= max);
                prop_assert!(f.payload_range().end <= f.frame_len);
            }
            Decoded::NeedMore(n) => {
                prop_assert!(n > buf.len());
                // What it asks for is bounded by the length limit.
                prop_assert!(n as u64 <= max.min(format::MAX_PAYLOAD_LEN) + 32 + 7 || n == format::FRAME_HEADER_LEN);
            }
            Decoded::Invalid(_) => {}
        }
    }

    /// A valid frame with any damage: decode says Frame only for the original bytes.
    #[test]
    fn damaged_frames_never_decode(payload in prop::collection::vec(any::<u8>(), 0..100), lsn in any::<u64>(),
                                    left in any::<u32>(), salt in any::<u32>(), d in damage()) {
        let orig = sealed(lsn, left, &payload, salt);
        let mut b = orig.clone();
        apply(&mut b, &d);
        if let Decoded::Frame(f) = format::decode(&b, salt, u64::MAX) {
            prop_assert_eq!(&b[..f.frame_len], &orig[..]);
            prop_assert_eq!(&b[f.payload_range()], &payload[..]);
        }
    }

    /// The header decoder never panics, and round-trips what encode makes.
    #[test]
    fn header_decode_is_total(buf in prop::collection::vec(any::<u8>(), 0..100),
                              p in any::<u16>(), index in any::<u64>(), first in any::<u64>(), salt in any::<u32>()) {
        let _ = SegmentHeader::decode(&buf);
        let h = SegmentHeader { partition: p, index, first_lsn: first, salt, created_ms: 3 };
        if first == 0 || first >= 1 << 62 {
            prop_assert!(SegmentHeader::decode(&h.encode()).is_err());
        } else {
            prop_assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        }
    }

    /// A valid header (any first LSN, any partition/index fields) followed by arbitrary
    /// bytes, as the only segment or after a good one.
    #[test]
    fn recovery_of_a_valid_header_then_junk(first in prop_oneof![Just(0u64), Just(1), 2u64..1000, Just((1 << 62) - 1), Just(1 << 62), Just(u64::MAX)],
                                            p_field in prop_oneof![9 => Just(0u16), 1 => any::<u16>()],
                                            index_field in prop_oneof![9 => Just(2u64), 1 => any::<u64>()],
                                            junk in prop::collection::vec(any::<u8>(), 0..600),
                                            with_first in any::<bool>()) {
        let fs = SimFs::new();
        let mut written = Written::new();
        if with_first {
            write_partition(&fs, 0, 1, &[SegSpec { index_skew: 0, first_lsn_skew: 0, frames: (0..3).map(|i| FrameSpec {
                lsn_skew: 0, batch_left: 0, payload: vec![i; 10], wrong_salt: false }).collect(), damage: vec![] }], &mut written);
        }
        let mut file = header(p_field, index_field, first, 99);
        file.extend_from_slice(&junk);
        fs.write_file(&Path::new(DIR).join(format::segment_file_name(0, 2)), &file);
        check_recovery(&fs, &written)?;
    }

    /// Arbitrary bytes as a whole segment file.
    #[test]
    fn recovery_of_arbitrary_files(files in prop::collection::vec((1u64..4, prop::collection::vec(any::<u8>(), 0..300)), 1..3)) {
        let fs = SimFs::new();
        for (index, bytes) in &files {
            fs.write_file(&Path::new(DIR).join(format::segment_file_name(0, *index)), bytes);
        }
        check_recovery(&fs, &Written::new())?;
    }

    /// Structured logs over several segments and partitions: mostly valid frames, some out
    /// of order, with odd batch marks or another segment's salt, headers a little off,
    /// then flips, cuts, junk and zeros.
    #[test]
    fn recovery_of_damaged_structured_logs(p0 in prop::collection::vec(seg_spec(), 1..4),
                                           p1 in prop::collection::vec(seg_spec(), 0..3),
                                           start in prop_oneof![4 => Just(1u64), 1 => 2u64..50]) {
        let fs = SimFs::new();
        let mut written = Written::new();
        write_partition(&fs, 0, start, &p0, &mut written);
        write_partition(&fs, 1, 1, &p1, &mut written);
        check_recovery(&fs, &written)?;
    }
}
