//! I/O errors the process survives: one failed call anywhere, a failed fdatasync, a full
//! disk. The WAL reports them on the right appends, never loses what it acknowledged,
//! and (unless the failure was fatal) goes on working without a reopen.

mod harness;

use harness::*;
use segwal_core::{AckEvent, ErrorCode, Options};
use segwal_sim::SimFs;

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EIO => "EIO",
        libc::ENOSPC => "ENOSPC",
        _ => "?",
    }
}

/// Fails call n once (EIO, then ENOSPC) for every n of the workload; the workload goes on
/// after the failure. The live WAL must match the model, and so must the durable state
/// after a power loss (clean and torn).
#[test]
fn one_failed_call_anywhere() {
    let wd = Watchdog::new(30, "one_failed_call_anywhere");
    let o = sim_opts(1024, true);
    let probe = SimFs::new();
    let mut d = Driver::new(open(&probe, o.clone()).unwrap());
    workload(&mut d, 11);
    d.wal.close().unwrap();
    let count = probe.ops();
    let mut fatal = 0;
    for n in 0..count {
        for errno in [libc::EIO, libc::ENOSPC] {
            let fs = SimFs::new();
            wd.stage(format!("call {n} fails with {}: workload", errno_name(errno)), &[&fs]);
            fs.fail_op(n, errno);
            let wal = match open(&fs, o.clone()) {
                Ok(w) => w,
                Err(e) => {
                    // The open itself failed; the next one works.
                    assert_eq!(e.code, ErrorCode::Io);
                    open(&fs, o.clone()).unwrap()
                }
            };
            let mut d = Driver::new(wal);
            workload(&mut d, 11);
            let ctx = |m: &Model| {
                format!(
                    "call {n} of {count} fails with {}\n  {}\nworkload errors: {:?}",
                    errno_name(errno),
                    tail(&fs.op_log(), 10),
                    m.errors.iter().take(4).collect::<Vec<_>>()
                )
            };
            d.check_live(&ctx(&d.m));
            // Failures and refusals are I/O errors (truncate targets the workload derives
            // from a log that lost records may be refused as out of range: fine).
            for e in &d.m.errors {
                assert!(
                    e.contains("WAL_IO_ERROR") || e.starts_with("truncate"),
                    "{}\nnot an I/O error: {e}",
                    ctx(&d.m)
                );
            }
            // After a non-fatal failure appends work again; a fatal one refuses everything.
            let poisoned = d.m.errors.iter().any(|e| e.contains("unusable until reopened"));
            fatal += usize::from(poisoned);
            // (The injected failure may be this very append: one retry.)
            let mut ok = false;
            for _ in 0..2 {
                let more = d.append(0, 40);
                d.wait();
                ok = more.is_some() && d.m.writes.last().unwrap().st == St::Acked;
                if ok {
                    break;
                }
            }
            if !poisoned && !d.m.errors.iter().any(|e| e.contains("unusable until reopened")) {
                assert!(ok, "{}\nappends do not work again after a non-fatal failure", ctx(&d.m));
            }
            let _ = d.wal.close();
            let Driver { m, wal, .. } = d;
            drop(wal);
            let c = ctx(&m);
            let lost = fs.power_loss();
            wd.stage(
                format!("call {n} fails with {}: clean power loss", errno_name(errno)),
                &[&fs, &lost],
            );
            check_recovered(&lost, &o, &m, &|| format!("{c}\nclean power loss"));
            let lost = fs.power_loss_torn(n);
            wd.stage(
                format!("call {n} fails with {}: torn power loss", errno_name(errno)),
                &[&fs, &lost],
            );
            check_recovered(&lost, &o, &m, &|| format!("{c}\ntorn power loss"));
        }
    }
    eprintln!("one_failed_call_anywhere: {count} calls x 2 errnos, {fatal} runs ended poisoned");
}

/// A failed fdatasync rejects the appends it was to make durable, and every later append,
/// sync, truncate and purge (all partitions) with WAL_IO_ERROR until the WAL is reopened;
/// the writes it lost are not resurrected by a later fsync that succeeds, and after a
/// power loss exactly the acknowledged records are there.
#[test]
fn a_failed_fsync_is_final() {
    let _wd = Watchdog::new(60, "a_failed_fsync_is_final");
    let fs = SimFs::new();
    let o = sim_opts(64 << 10, true);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    for i in 0..10 {
        d.append(i % 2, 100);
    }
    d.wait();
    fs.fail_next_sync(libc::EIO);
    for _ in 0..5 {
        d.append(0, 100);
    }
    d.batch(0, &[10, 20, 30]);
    d.wait();
    // Those in the round whose fsync failed fail; those made after are refused.
    assert!(d.m.writes.iter().take(10).all(|w| w.st == St::Acked));
    assert!(d.m.writes.len() > 10, "{:?}", d.m.errors);
    assert!(d.m.writes.iter().skip(10).all(|w| w.st == St::Failed));
    assert!(d.m.errors.iter().all(|e| e.contains("WAL_IO_ERROR")));
    // Every later operation is refused, on every partition.
    for p in [0u16, 1, 9] {
        let e = d.wal.append(p, b"x").unwrap_err();
        assert_eq!(e.code, ErrorCode::Io, "{e}");
        assert_eq!(e.errno.as_deref(), Some("EIO"), "{e:?}");
        assert!(d.wal.append_batch(p, &[b"a", b"b"]).is_err());
    }
    d.take();
    assert_eq!(d.wal.append(1, b"x").unwrap_err().code, ErrorCode::Io);
    assert_eq!(d.wal.sync().wait().unwrap_err().code, ErrorCode::Io);
    assert_eq!(
        d.wal.truncate_after(1, 1).map(|p| p.wait()).err().map(|e| e.code),
        Some(ErrorCode::Io)
    );
    assert!(d.wal.purge_before(1, 2).and_then(|p| p.wait()).is_err());
    // Readers still see the acknowledged log.
    d.check_live("after the failed fsync");
    // close() releases everything but says that what was appended is not durable.
    assert_eq!(d.wal.close().unwrap_err().code, ErrorCode::Io);
    d.wal.close().unwrap();
    let Driver { m, wal, .. } = d;
    drop(wal);
    // What the failed fsync was to persist never reached the disk.
    let after = fs.power_loss();
    let wal = open(&after, o.clone()).unwrap();
    assert_eq!(wal.last_lsn(0).unwrap(), 5);
    assert_eq!(wal.last_lsn(1).unwrap(), 5);
    drop(wal);
    check_recovered(&fs.power_loss(), &o, &m, &|| "after a failed fsync".into());
}

/// The fsync that seals a segment at rotation fails: fatal too, nothing of the new
/// segment is acknowledged.
#[test]
fn a_failed_fsync_at_rotation_is_final() {
    let fs = SimFs::new();
    let o = sim_opts(1024, true);
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    for _ in 0..4 {
        d.append(0, 150);
        d.wait();
    }
    // Stage a batch that does not fit: the round writes to the active segment, then
    // rotates (fdatasync of the old one: fails), then would write the new one.
    fs.set_latency(std::time::Duration::from_millis(20));
    d.append(0, 100);
    std::thread::sleep(std::time::Duration::from_millis(5));
    fs.fail_next_sync(libc::EIO);
    d.append(0, 40);
    d.batch(0, &[200, 200, 200]);
    d.wait();
    fs.set_latency(std::time::Duration::ZERO);
    assert!(d.m.writes.iter().any(|w| w.st == St::Failed));
    assert_eq!(d.wal.append(0, b"x").unwrap_err().code, ErrorCode::Io);
    let Driver { m, wal, .. } = d;
    drop(wal);
    check_recovered(&fs.power_loss(), &o, &m, &|| "failed fsync at rotation".into());
    check_recovered(&fs.power_loss_torn(5), &o, &m, &|| {
        "failed fsync at rotation, torn".into()
    });
}

/// Appends until one fails; returns with the failure published but not yet taken.
fn fill_until_enospc(d: &mut Driver, p: u16, len: usize) {
    for _ in 0..10_000 {
        d.take();
        d.reset_signal();
        let Some(lsn) = d.append(p, len) else {
            panic!("append refused before a failure was reported: {:?}", d.m.errors)
        };
        loop {
            if d.wal.last_lsn(p).unwrap() >= lsn {
                break;
            }
            // Published but not acknowledged: the failure.
            if d.wait_signal(1000) && d.wal.last_lsn(p).unwrap() < lsn {
                return;
            }
        }
    }
    panic!("the disk never filled");
}

/// The failure `fill_until_enospc` left: until taken, appends are refused with it (so
/// no LSN is handed out twice); then it is taken.
fn take_failure(d: &mut Driver) -> segwal_core::Error {
    let e = d.wal.append(0, &[1u8; 300]).unwrap_err();
    let e2 = d.wal.append_batch(0, &[b"a"]).unwrap_err();
    assert_eq!(e.message, e2.message);
    let mut failed = None;
    for a in d.wal.take_acks() {
        for ev in a.events {
            if let AckEvent::Failed { error, first_lsn, .. } = ev {
                assert_eq!(a.partition, 0);
                assert_eq!(first_lsn, d.wal.last_lsn(0).unwrap() + 1);
                failed = Some(error);
            } else {
                panic!("unexpected {ev:?}");
            }
        }
    }
    for w in d.m.writes.iter_mut().filter(|w| w.st == St::Pending) {
        w.st = St::Failed;
    }
    let failed = failed.expect("a Failed event");
    assert_eq!(failed.message, e.message);
    failed
}

fn disk_full(preallocate: bool) {
    let _wd = Watchdog::new(60, "disk_full");
    let fs = SimFs::new();
    let o = Options {
        preallocate,
        ..sim_opts(4096, true)
    };
    fs.set_capacity(Some(5 * 4096 + 1000));
    let mut d = Driver::new(open(&fs, o.clone()).unwrap());
    d.append(1, 10);
    d.wait();
    fill_until_enospc(&mut d, 0, 300);
    let e = take_failure(&mut d);
    assert_eq!(e.code, ErrorCode::Io, "{e}");
    assert_eq!(e.errno.as_deref(), Some("ENOSPC"), "{e:?}");
    d.check_live("disk full");
    let full_at = d.wal.last_lsn(0).unwrap();
    assert!(full_at > 10);
    // Still full: another try fails the same way, the log is intact.
    d.append(0, 300);
    d.wait();
    assert_eq!(d.m.writes.last().unwrap().st, St::Failed);
    assert_eq!(d.wal.last_lsn(0).unwrap(), full_at);
    // Reopen at full capacity works (clean close, and after a power loss).
    d.wal.close().unwrap();
    let Driver { m, wal, .. } = d;
    drop(wal);
    let lost = fs.power_loss();
    let ctx = || format!("full disk, preallocate {preallocate}");
    let (wal, tails) = check_open(&lost, &o, &m, &ctx);
    lost.set_capacity(None);
    continue_after(&lost, &o, wal, tails, &ctx);
    let wal = open(&fs, o.clone()).unwrap_or_else(|e| panic!("reopen at full capacity: {e}"));
    let mut d = Driver::with_model(wal, m);
    // Purging frees space: appends work again without reopening.
    fill_until_enospc(&mut d, 0, 300);
    assert_eq!(take_failure(&mut d).errno.as_deref(), Some("ENOSPC"));
    let segs = d.wal.segments(0).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    assert!(d.purge(0, segs[2].first_lsn));
    for _ in 0..20 {
        assert!(d.append(0, 300).is_some(), "{:?}", d.m.errors);
        d.wait();
        assert_eq!(d.m.writes.last().unwrap().st, St::Acked, "{:?}", d.m.errors);
    }
    // Fill again, then raise the limit: appends work again, still without reopening.
    fill_until_enospc(&mut d, 0, 300);
    assert_eq!(take_failure(&mut d).errno.as_deref(), Some("ENOSPC"));
    fs.set_capacity(None);
    for _ in 0..30 {
        d.append(0, 300);
        d.wait();
        assert_eq!(d.m.writes.last().unwrap().st, St::Acked, "{:?}", d.m.errors);
    }
    d.check_live("after space came back");
    d.wal.close().unwrap();
    let Driver { m, wal, .. } = d;
    drop(wal);
    check_recovered(&fs.power_loss(), &o, &m, &|| "after space came back".into());
}

#[test]
fn disk_full_with_preallocation() {
    disk_full(true);
}

#[test]
fn disk_full_without_preallocation() {
    disk_full(false);
}

/// Seed 71 of the simulator: on a WAL poisoned by a failed fdatasync, `append` of a
/// record too large for any segment failed with the poisoning I/O error, where
/// `append_batch` said WAL_RECORD_TOO_LARGE. The argument is judged first, whatever the
/// WAL's state; a record that fits gets the I/O error.
#[test]
fn a_too_large_record_is_refused_as_such_on_a_poisoned_wal() {
    let fs = SimFs::new();
    let o = Options {
        sync: segwal_core::SyncMode::None,
        ..sim_opts(1024, false)
    };
    let mut d = Driver::new(open(&fs, o).unwrap());
    d.append(1, 10);
    d.wait();
    fs.fail_next_sync(libc::EIO);
    assert!(d.wal.sync().wait().is_err());
    let big = vec![7u8; 2000];
    assert_eq!(
        d.wal.append(1, &big).map_err(|e| e.code),
        Err(ErrorCode::RecordTooLarge)
    );
    let batch = d.wal.append_batch(1, &[&big]);
    assert_eq!(batch.map_err(|e| e.code), Err(ErrorCode::RecordTooLarge));
    assert_eq!(d.wal.append(1, b"x").map_err(|e| e.code), Err(ErrorCode::Io));
}

/// Seed 93376 of the simulator: a rotation fails (its new segment's header write, or the
/// directory sync that would publish it) and the disk then refuses both of the rollback's
/// removals of the new segment file. Nothing can remove it then, so until the next open
/// the directory holds a segment file `segments()` does not list. That is legitimate only
/// if nothing in it was acknowledged, the WAL refuses everything until reopened (no LSN
/// is handed out twice), and the next open drops the file or takes up its records (they
/// were failed: absent or wholly present), with every acknowledged record there.
#[test]
fn a_segment_file_the_disk_will_not_remove_is_left_to_the_next_open() {
    let o = sim_opts(1024, true);
    let work = |d: &mut Driver| {
        for _ in 0..5 {
            d.append(0, 150);
            d.wait();
        }
        d.batch(0, &[200, 200]);
        d.wait();
    };
    let probe = SimFs::new();
    let mut d = Driver::new(open(&probe, o.clone()).unwrap());
    work(&mut d);
    d.wal.close().unwrap();
    let log = probe.op_log();
    let call = |from: usize, what: &str| {
        log.iter()
            .enumerate()
            .skip(from)
            .find(|(_, op)| op.ends_with(what))
            .map(|(n, _)| n)
            .unwrap_or_else(|| panic!("no call `{what}` in\n  {}", tail(&log, 40)))
    };
    let header = call(0, ": write part_0_0000000002.wal @0 +64");
    let dir_sync = call(header, &format!(": sync_dir {}", dir().display()));
    for (what, at) in [("its header write", header), ("the directory sync", dir_sync)] {
        let fs = SimFs::new();
        fs.fail_op(at as u64, libc::EIO);
        fs.fail_op(at as u64 + 1, libc::ENOSPC);
        fs.fail_op(at as u64 + 2, libc::EIO);
        let mut d = Driver::new(open(&fs, o.clone()).unwrap());
        work(&mut d);
        let ctx = format!("{what} fails, then both removals\n  {}", tail(&fs.op_log(), 12));
        assert!(
            fs.names(dir()).iter().any(|n| n == "part_0_0000000002.wal"),
            "{ctx}\nthe segment file is not stranded"
        );
        let listed: Vec<u64> = d.wal.segments(0).unwrap().iter().map(|s| s.index).collect();
        assert_eq!(listed, vec![1], "{ctx}");
        assert!(d.m.writes.iter().any(|w| w.st == St::Failed), "{ctx}");
        let e = d.wal.append(0, b"x").unwrap_err();
        assert!(e.message.contains("unusable until reopened"), "{ctx}\n{e}");
        assert_eq!(d.wal.close().unwrap_err().code, ErrorCode::Io, "{ctx}");
        let Driver { m, wal, .. } = d;
        drop(wal);
        check_recovered(&fs.power_loss(), &o, &m, &|| format!("{ctx}\npower loss"));
        check_recovered(&fs.power_loss_torn(at as u64), &o, &m, &|| {
            format!("{ctx}\ntorn power loss")
        });
        // The same disk, reopened: the open resolves the stranded file.
        let wal = open(&fs, o.clone()).unwrap();
        let listed: Vec<u64> = wal.segments(0).unwrap().iter().map(|s| s.index).collect();
        let mut files: Vec<u64> = fs
            .names(dir())
            .iter()
            .filter_map(|n| n.strip_prefix("part_0_")?.strip_suffix(".wal")?.parse().ok())
            .collect();
        files.sort_unstable();
        assert_eq!(files, listed, "{ctx}\nafter reopen");
        drop(wal);
        check_recovered(&fs, &o, &m, &|| format!("{ctx}\nreopened"));
    }
}
