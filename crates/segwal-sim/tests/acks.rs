//! Ack events settle staged records by count, in staging order (issue #9: the truncate
//! generation counted twice, in the facade and in the engine, is gone). Seeded: the seed
//! is printed, `SEGWAL_ACK_SEED` replays one.

mod common;

use std::time::{Duration, Instant};

use common::*;
use segwal_core::{AckEvent, ErrorCode, SyncMode};

/// What a caller would keep per staged record: (partition, lsn, single append?).
type Staged = (u16, u64, bool);

/// Pops records by event counts and checks each single append's position names its LSN.
fn settle(t: &TestWal, pending: &mut Vec<Staged>, settled: &mut Vec<Staged>) {
    for ack in t.wal.take_acks() {
        for ev in ack.events {
            match ev {
                AckEvent::Acked { count, positions, .. } => {
                    let mut pos = positions.iter();
                    for _ in 0..count {
                        let i = pending
                            .iter()
                            .position(|r| r.0 == ack.partition)
                            .expect("an ack for a record never staged");
                        let r = pending.remove(i);
                        if r.2 {
                            assert_eq!(pos.next().expect("a position per single append").lsn, r.1);
                        }
                        settled.push(r);
                    }
                    assert!(pos.next().is_none(), "more positions than single appends");
                }
                AckEvent::Failed { error, .. } => panic!("unexpected failure {error}"),
            }
        }
    }
}

#[test]
fn acks_settle_by_count_across_truncates_and_writes() {
    let seed: u64 = std::env::var("SEGWAL_ACK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed {seed}");
    let mut x = seed | 1;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(8192);
    o.sync = SyncMode::None;
    let t = TestWal::open(dir.path(), o).unwrap();
    let mut pending: Vec<Staged> = Vec::new();
    let mut settled: Vec<Staged> = Vec::new();
    let mut next = [1u64; 3];
    let mut truncates = Vec::new();
    for step in 0..2000 {
        let p = rand(3) as u16;
        let payload = vec![step as u8; rand(200) as usize];
        match rand(10) {
            0..=3 => {
                let lsn = t.wal.append(p, &payload).unwrap();
                assert_eq!(lsn, next[p as usize], "seed {seed} step {step}");
                pending.push((p, lsn, true));
                next[p as usize] = lsn + 1;
            }
            4..=6 => {
                let lsn = t.wal.write(p, &payload, Some(next[p as usize])).unwrap();
                pending.push((p, lsn, false));
                next[p as usize] = lsn + 1;
            }
            7 => {
                let (first, last) = t.wal.append_batch(p, &[&payload, &payload]).unwrap();
                assert_eq!(first, next[p as usize]);
                pending.push((p, first, false));
                pending.push((p, last, false));
                next[p as usize] = last + 1;
            }
            8 => {
                // A truncate to 0 too, on partitions never written to (defect 1).
                let keep = rand(next[p as usize]);
                truncates.push(t.wal.truncate_after(p, keep).unwrap());
                next[p as usize] = keep + 1;
                continue;
            }
            _ => settle(&t, &mut pending, &mut settled),
        }
    }
    for d in truncates {
        d.wait().unwrap();
    }
    t.wal.sync().wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: {} records never settled",
            pending.len()
        );
        settle(&t, &mut pending, &mut settled);
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_write_is_staged_only_at_the_lsn_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestWal::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(t.wal.write(1, b"a", Some(1)).unwrap(), 1);
    let e = t.wal.write(1, b"b", Some(5)).unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    assert_eq!(t.wal.next_lsn(1).unwrap(), 2, "a refused write takes no LSN");
    assert_eq!(t.wal.write(1, b"c", None).unwrap(), 2);
    t.wait_acked(1, 2).unwrap();
    let mut lsns = [0u64, 4, 0];
    let errors = t.wal.stage_many(b"xyz", &[1, 1, 1], &[2, 2, 2], &mut lsns);
    assert_eq!(
        lsns,
        [1, 0, 2],
        "the write expected LSN 4 and was refused; the others staged"
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 1);
}

/// Writers gather a synced round until as many records as the last one acknowledged are
/// staged (for at most one fdatasync's time): when fewer callers come back, or a control
/// operation is queued, every record is still acknowledged, in order, and nothing waits on.
#[test]
fn gathered_rounds_complete_when_fewer_callers_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::sync::Arc::new(TestWal::open(dir.path(), opts(1 << 20)).unwrap());
    let each = 20;
    std::thread::scope(|s| {
        for i in 0..16u8 {
            let t = t.clone();
            s.spawn(move || {
                for _ in 0..each {
                    t.append(1, &[i; 100]);
                }
            });
        }
    });
    // The last rounds held up to 16 records; from here on one caller at a time.
    for i in 0..5u8 {
        t.append(1, &[100 + i; 50]);
    }
    // A control operation behind a record staged alone.
    let lsn = t.wal.append(1, &[200; 10]).unwrap();
    t.wal.sync().wait().unwrap();
    t.wait_acked(1, lsn).unwrap();
    let records = t.read_all(1, 1).unwrap();
    assert_eq!(records.len(), 16 * each + 5 + 1);
    assert!(records.iter().enumerate().all(|(i, (l, _))| *l == i as u64 + 1));
    assert_eq!(records[16 * each].1, vec![100; 50]);
    assert_eq!(records.last().unwrap().1, vec![200; 10]);
}
