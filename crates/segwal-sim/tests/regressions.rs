//! One deterministic test per engine bug the sweeps found (see the commit that fixed
//! each); a slow simulated disk queues work behind a call in progress.

mod harness;

use std::time::Duration;

use harness::*;
use segwal_core::ErrorCode;
use segwal_sim::SimFs;

fn settle() {
    std::thread::sleep(Duration::from_millis(10));
}

/// A round failed (a write error, not fatal) while a truncate and an append made after it
/// were queued: the append's LSN was below `acked_lsn + 1`, so no `Failed` event went out
/// and both appends waited for an acknowledgement forever.
#[test]
fn a_failed_round_reports_appends_queued_behind_a_truncate() {
    let _wd = Watchdog::new(60, "a_failed_round_reports_appends_queued_behind_a_truncate");
    let fs = SimFs::new();
    let o = sim_opts(64 << 10, false);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    for _ in 0..20 {
        d.append(0, 30);
    }
    d.wait();
    fs.set_latency(Duration::from_millis(40));
    fs.fail_op(fs.ops(), libc::EIO); // the write of the next round
    assert_eq!(d.append(0, 30), Some(21));
    settle();
    let t = d.truncate_start(0, 10).unwrap();
    assert_eq!(d.append(0, 30), Some(11));
    d.wait(); // hung here
    assert_eq!(d.status(0, 21), Some(St::Failed));
    assert_eq!(d.status(0, 11), Some(St::Failed));
    assert!(d.truncate_finish(t).is_err());
    fs.set_latency(Duration::ZERO);
    // Not fatal: the log is as before and appends go on.
    assert_eq!(d.append(0, 30), Some(21));
    d.wait();
    d.check_live("after the failed round");
    let Driver { m, wal, .. } = d;
    drop(wal);
    check_recovered(&fs.power_loss(), &o, &m, &|| "after the failed round".into());
}

/// A failed truncate_after was not fatal: appends queued behind it got LSNs right after
/// the truncate point, were written after the records it failed to remove, and were
/// acknowledged: duplicate LSNs in the segment, and a WAL that could not reopen.
#[test]
fn a_failed_truncate_poisons_the_wal() {
    let _wd = Watchdog::new(60, "a_failed_truncate_poisons_the_wal");
    let fs = SimFs::new();
    let o = sim_opts(64 << 10, false);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    for _ in 0..20 {
        d.append(0, 30);
    }
    d.wait();
    fs.set_latency(Duration::from_millis(40));
    fs.fail_op(fs.ops(), libc::EIO); // the truncate's cut
    let t = d.truncate_start(0, 10).unwrap();
    settle();
    assert_eq!(d.append(0, 30), Some(11));
    let e = d.truncate_finish(t).unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    d.wait();
    assert_eq!(d.status(0, 11), Some(St::Failed), "{:?}", d.m.errors);
    fs.set_latency(Duration::ZERO);
    // Poisoned until reopened.
    let e = d.wal.append(0, b"x").unwrap_err();
    assert_eq!(e.code, ErrorCode::Io);
    d.take();
    assert_eq!(d.wal.append(0, b"x").unwrap_err().code, ErrorCode::Io);
    assert_eq!(d.wal.sync().wait().unwrap_err().code, ErrorCode::Io);
    let Driver { m, wal, .. } = d;
    drop(wal);
    check_recovered(&fs.power_loss(), &o, &m, &|| "after the failed truncate".into());
}

/// truncate_after(p, 0) after a purge cut the first retained segment to its header but
/// left the header's first LSN (the purge point); appends restarted at LSN 1 and were
/// acknowledged, and the next open took them for a torn tail and cut them.
#[test]
fn truncate_to_zero_after_a_purge_restarts_at_one_durably() {
    let fs = SimFs::new();
    let o = sim_opts(1024, true);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    for _ in 0..12 {
        d.append(3, 200);
        d.wait();
    }
    let segs = d.wal.segments(3).unwrap();
    assert!(segs.len() >= 3);
    assert!(d.purge(3, segs[segs.len() - 1].first_lsn));
    assert!(d.wal.first_lsn(3).unwrap() > 1);
    assert!(d.truncate(3, 0));
    assert_eq!(d.wal.last_lsn(3).unwrap(), 0);
    assert_eq!(d.wal.first_lsn(3).unwrap(), 0);
    assert_eq!(d.append(3, 50), Some(1));
    assert_eq!(d.append(3, 50), Some(2));
    d.wait();
    assert_eq!(d.wal.first_lsn(3).unwrap(), 1);
    d.check_live("after truncate to 0");
    let Driver { m, wal, .. } = d;
    drop(wal);
    let ctx = || "truncate to 0 after purge".to_string();
    check_recovered(&fs.power_loss(), &o, &m, &ctx);
}

/// A failed round dropped the segment file created ahead (the spare) from memory but
/// left it on disk, so every later rotation tried to create it again and failed (EEXIST)
/// until the WAL was reopened.
#[test]
fn rotation_works_after_a_failed_round() {
    let _wd = Watchdog::new(60, "rotation_works_after_a_failed_round");
    let fs = SimFs::new();
    let o = sim_opts(1024, true);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    // Fill the first segment past half, so the next one is created ahead.
    for _ in 0..3 {
        d.append(0, 150);
        d.wait();
    }
    // (Created after the round's ack is published: wait for it.)
    let spare = "part_0_0000000002.tmp".to_string();
    for _ in 0..200 {
        if fs.names(dir()).contains(&spare) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(fs.names(dir()).contains(&spare));
    fs.fail_op(fs.ops(), libc::EIO);
    assert!(d.append(0, 100).is_some());
    d.wait();
    assert!(d.m.writes.iter().any(|w| w.st == St::Failed));
    // Not fatal: appends go on, across several rotations.
    for _ in 0..12 {
        d.append(0, 150);
        d.wait();
    }
    assert!(
        d.m.writes.iter().rev().take(12).all(|w| w.st == St::Acked),
        "{:?}",
        d.m.errors
    );
    assert!(d.wal.segments(0).unwrap().len() >= 3);
    d.check_live("after the failed round");
    let Driver { m, wal, .. } = d;
    drop(wal);
    check_recovered(&fs.power_loss(), &o, &m, &|| "rotation after a failed round".into());
}

/// A segment file shorter than the segment table says (cut under a live WAL: by a
/// truncate that failed after its cut, or from outside) made `Reader::read` return an
/// empty batch without moving: callers reading until `None` spun forever.
#[test]
fn a_reader_fails_on_a_segment_cut_under_it() {
    let _wd = Watchdog::new(30, "a_reader_fails_on_a_segment_cut_under_it");
    let fs = SimFs::new();
    let o = sim_opts(64 << 10, false);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    for _ in 0..10 {
        d.append(0, 100);
    }
    d.wait();
    let segs = d.wal.segments(0).unwrap();
    let path = dir().join(&segs[0].file);
    let content = fs.read_file(&path).unwrap();
    let cut = 64 + 5 * (24 + 104 + 8);
    fs.write_file(&path, &content[..cut]);
    let mut r = d.wal.reader(0, segwal_core::Start::Lsn(0)).unwrap();
    let mut seen = 0;
    let e = loop {
        match r.next_batch(256) {
            Ok(Some(b)) => {
                assert!(!b.records.is_empty(), "an empty batch: the reader did not move");
                seen += b.records.len();
            }
            Ok(None) => panic!("the log ended early after {seen} records"),
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 5);
    assert_eq!(e.code, ErrorCode::Corruption, "{e}");
    assert_eq!(e.file.as_deref(), Some(segs[0].file.as_str()));
    assert_eq!(e.offset, Some(cut as u64));
}

/// With sync None, a power loss after the next segment was created ahead (its directory
/// entry synced) but before anything synced the active segment's header left a segment
/// with no valid header followed by the empty spare: open refused the log as corrupt.
/// Unsynced records may be lost in this mode; the log must still open.
#[test]
fn sync_none_power_loss_with_a_spare_ahead_of_an_unsynced_header() {
    let fs = SimFs::new();
    let o = segwal_core::Options {
        sync: segwal_core::SyncMode::None,
        ..sim_opts(1024, true)
    };
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    d.m.ack_not_durable = true;
    let spare = "part_0_0000000002.tmp".to_string();
    for _ in 0..200 {
        if fs.names(dir()).contains(&spare) {
            break;
        }
        d.append(0, 150);
        d.wait();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(fs.names(dir()).contains(&spare));
    let lost = fs.power_loss();
    // (A spare's name is not synced: it is renamed into place, and that rename synced,
    // before anything in it is acknowledged.)
    assert!(lost.names(dir()).len() <= 2, "{:?}", lost.names(dir()));
    let Driver { m, wal, .. } = d;
    let wal2 = open(&lost, o.clone()).unwrap_or_else(|e| panic!("open after the power loss: {e}"));
    assert_eq!(wal2.last_lsn(0).unwrap(), 0);
    drop(wal2);
    drop(wal);
    check_recovered(&lost.power_loss(), &o, &m, &|| {
        "sync none, spare ahead of an unsynced header".into()
    });
}

/// A WAL directory made by open was never made durable in its parent: after a power
/// loss the whole new WAL could be gone, acknowledged records included.
#[test]
fn a_new_wal_directory_survives_a_power_loss() {
    for path in ["/data/deep/wal", "rel-wal"] {
        let fs = SimFs::new();
        let wal = segwal_core::Wal::open_with(path, sim_opts(1024, true), std::sync::Arc::new(fs.clone())).unwrap();
        let mut d = Driver::new(wal);
        assert_eq!(d.append(0, 100), Some(1));
        d.wait();
        assert_eq!(d.status(0, 1), Some(St::Acked));
        let lost = fs.power_loss();
        let wal = segwal_core::Wal::open_with(path, sim_opts(1024, true), std::sync::Arc::new(lost)).unwrap();
        assert_eq!(wal.last_lsn(0).unwrap(), 1, "{path}");
    }
}

/// Issue #9, defect 4: a writer kept looping on one partition while its queue refilled,
/// so with as many busy partitions as writers, a quiet partition's appends (and any
/// sync, purge or truncate) waited without bound. Busy partitions now go to the back of
/// the writers' queue after each round.
#[test]
fn a_quiet_partition_is_written_while_busy_ones_keep_every_writer_busy() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    let fs = SimFs::new();
    fs.set_latency(Duration::from_micros(200));
    let wal = Arc::new(open(&fs, sim_opts(64 << 20, false)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..6u16)
        .map(|p| {
            let (wal, stop) = (wal.clone(), stop.clone());
            std::thread::spawn(move || {
                let payload = [7u8; 128];
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Stay a few rounds ahead of the writer: its queue never drains.
                    if last > wal.last_lsn(p).unwrap() + 40_000 {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    for _ in 0..500 {
                        last = wal.append(p, &payload).unwrap();
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let lsn = wal.append(100, b"quiet").unwrap();
        let t = Instant::now();
        while wal.last_lsn(100).unwrap() < lsn {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "partition 100 starved by busy ones"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        worst = worst.max(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for t in producers {
        t.join().unwrap();
    }
    assert!(wal.close().is_ok());
    eprintln!("quiet partition: slowest ack {worst:?}");
}

/// Issue #9, defect 13: a purge that failed midway had already taken every victim out of
/// the segment table, so segments that were still on disk (and readable) vanished from
/// `segments()` and `firstLsn()`. Each segment now leaves the table once its file is gone.
#[test]
fn a_purge_that_fails_midway_leaves_table_and_directory_agreeing() {
    let fs = SimFs::new();
    let mut d = Driver::new(open(&fs, sim_opts(4096, false)).unwrap());
    while d.wal.segments(0).unwrap().len() < 5 {
        d.append(0, 700);
        d.wait();
    }
    let last = d.wal.last_lsn(0).unwrap();
    // The writer makes the next spare after publishing a round: let it finish first.
    let mut ops = fs.ops();
    loop {
        std::thread::sleep(Duration::from_millis(30));
        if fs.ops() == ops {
            break;
        }
        ops = fs.ops();
    }
    fs.fail_op(ops + 1, libc::EACCES); // the second unlink
    assert!(!d.purge(0, last), "the purge fails");
    assert!(d.m.errors.last().unwrap().contains("WAL_IO_ERROR"), "{:?}", d.m.errors);
    let mut on_disk: Vec<String> = fs.names(dir()).into_iter().filter(|n| n.ends_with(".wal")).collect();
    on_disk.sort();
    let segs = d.wal.segments(0).unwrap();
    let listed: Vec<String> = segs.iter().map(|s| s.file.clone()).collect();
    assert_eq!(listed, on_disk);
    assert_eq!(d.wal.first_lsn(0).unwrap(), segs[0].first_lsn);
    d.check_live("after a failed purge");
    assert!(d.purge(0, last));
    d.check_live("after the retried purge");
}

/// Issue #9, defect 11: descriptors grew with partitions (an active handle plus a spare
/// per partition; recovery opened every segment of a partition at once). With thousands
/// of partitions written, reopened and written again, the files held open stay bounded.
#[test]
fn open_files_stay_bounded_with_thousands_of_partitions() {
    let fs = SimFs::new();
    let o = sim_opts(4096, true);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    let parts = 3000u16;
    for round in 0..3 {
        for p in 0..parts {
            d.append(p, 1500); // the third append rotates: spares and new segments too
        }
        d.wait();
        let held = fs.open_handles();
        assert!(held <= 300, "round {round}: {held} files open for {parts} partitions");
    }
    d.wal.close().unwrap();
    drop(d);
    let wal = open(&fs, o).unwrap();
    assert!(fs.open_handles() <= 8, "after open: {}", fs.open_handles());
    let mut d = Driver::new(wal);
    for p in 0..parts {
        d.append(p, 100);
    }
    d.wait();
    assert!(fs.open_handles() <= 300, "{}", fs.open_handles());
    assert_eq!(d.wal.last_lsn(parts - 1).unwrap(), 4);
}

/// Issue #9 defect 11, memory: each partition kept its emptied staging buffer (up to 4 MiB)
/// for its next appends, so memory grew with the partitions ever written. Idle ones give
/// theirs back with their file: 1,000 partitions of one 128 KiB record each keep at most
/// what the ~300 partitions with open files (the descriptor bound above) may hold.
#[test]
fn kept_staging_memory_stays_bounded_with_thousands_of_partitions() {
    let fs = SimFs::new();
    let mut d = Driver::new(open(&fs, sim_opts(1 << 20, false)).unwrap());
    let record = 128 << 10;
    for p in 0..1000u16 {
        d.append(p, record);
        if p % 100 == 99 {
            d.wait();
        }
    }
    d.wait();
    let kept = d.wal.kept_staging_bytes();
    let bound = 300 * (record + 4096);
    assert!(
        kept <= bound,
        "{kept} bytes of staging kept for 1,000 idle partitions (bound {bound})"
    );
    d.wal.close().unwrap();
}
