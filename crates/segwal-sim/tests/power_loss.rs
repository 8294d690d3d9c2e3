//! Power loss at every syscall boundary.
//!
//! A workload (appends and batches on several partitions, small segments so rotation and
//! the segment created ahead come into play, sync Always, purge_before, truncate_after at a
//! batch boundary, inside a batch, and to 0) runs once to count its file-system calls;
//! then for every n the process dies at call n (that call and everything later fails, as
//! if the power went), the durable state is reopened and checked against what the
//! workload was told: every acknowledged record there with its bytes, LSNs dense, batches
//! whole, nothing that was never written, appends continue at the next LSN, reopen never
//! fails. Variants drop only what was not synced, or keep a torn random prefix of it.
//! Crashes during the recovery of each such state are swept too.

mod harness;

use harness::*;
use segwal_core::{Options, SyncMode};
use segwal_sim::SimFs;

#[derive(Clone, Copy, Debug)]
enum Loss {
    /// Only synced state survives.
    Clean,
    /// A random prefix of unsynced changes survives, the last one possibly torn.
    Torn(u64),
    /// Unsynced writes survive page by page, in any order.
    Reordered(u64),
}

fn run_once(fs: &SimFs, o: &Options, w: Workload, seed: u64) -> Model {
    let mut fresh = Model::default();
    fresh.ack_not_durable = o.sync != SyncMode::Always;
    let Ok(wal) = open(fs, o.clone()) else {
        return fresh;
    };
    let mut d = Driver::with_model(wal, fresh);
    w(&mut d, seed);
    d.wait();
    let _ = d.wal.close();
    let Driver { m, .. } = d;
    m
}

fn sweep(
    name: &str,
    o: Options,
    w: Workload,
    losses: &[Loss],
    recovery_crashes: bool,
    must_cover: &[&str],
) -> (u64, u64) {
    let _wd = Watchdog::new(300, name);
    // Count the calls of an undisturbed run (timing may shift a few between runs; the
    // sweep goes a little past the count so the end is covered too).
    let probe = SimFs::new();
    let m = run_once(&probe, &o, w, 7);
    assert!(
        m.errors.is_empty(),
        "{name}: undisturbed run had errors: {:?}",
        m.errors
    );
    let count = probe.ops();
    // The windows this sweep is meant to crash in are still there.
    let log = probe.op_log();
    for want in must_cover {
        assert!(
            log.iter().any(|l| l.contains(want)),
            "{name}: the workload no longer makes a call like {want:?}"
        );
    }
    let mut runs = 0;
    for n in 0..count + 3 {
        for (i, &loss) in losses.iter().enumerate() {
            // Debug builds: every call with the first kind of loss, the others in turn.
            if !thorough() && i > 0 && (n as usize) % (losses.len() - 1) != i - 1 {
                continue;
            }
            let fs = SimFs::new();
            fs.crash_at(n);
            let m = run_once(&fs, &o, w, 7);
            let log = fs.op_log();
            let after = match loss {
                Loss::Clean => fs.power_loss(),
                Loss::Torn(s) => fs.power_loss_torn(s.wrapping_mul(1000).wrapping_add(n)),
                Loss::Reordered(s) => fs.power_loss_reordered(s.wrapping_mul(1000).wrapping_add(n)),
            };
            let ctx = || {
                format!(
                    "{name}: crash at call {n} of {count}, {loss:?}\n  {}\nworkload errors: {:?}",
                    tail(&log, 12),
                    m.errors.iter().take(3).collect::<Vec<_>>()
                )
            };
            if recovery_crashes && (thorough() || i == 0) {
                // Count recovery's own calls, then die at each of them and recover again.
                let probe = after.power_loss();
                let before = probe.ops();
                let wal = open(&probe, o.clone()).unwrap_or_else(|e| panic!("{}\nreopen failed: {e}", ctx()));
                let rec_ops = probe.ops() - before;
                drop(wal);
                for k in 1..rec_ops {
                    let again = after.power_loss();
                    again.crash_at(again.ops() + k);
                    let _ = open(&again, o.clone());
                    let rlog = again.op_log();
                    let state = again.power_loss();
                    let ctx2 = || {
                        format!(
                            "{}\nthen crash during recovery at its call {k}:\n  {}",
                            ctx(),
                            tail(&rlog, 6)
                        )
                    };
                    check_recovered(&state, &o, &m, &ctx2);
                    runs += 1;
                }
            }
            check_recovered(&after, &o, &m, &ctx);
            runs += 1;
        }
    }
    (count, runs)
}

#[test]
fn power_loss_at_every_call() {
    let t = std::time::Instant::now();
    let (count, runs) = sweep(
        "main",
        sim_opts(1024, true),
        workload,
        &[Loss::Clean, Loss::Torn(1), Loss::Torn(2)],
        true,
        MAIN_COVERS,
    );
    eprintln!("main workload: {count} calls, {runs} crash runs in {:?}", t.elapsed());
}

#[test]
fn power_loss_at_every_call_without_preallocation() {
    let (count, runs) = sweep(
        "no-prealloc",
        sim_opts(1024, false),
        workload,
        &[Loss::Torn(3)],
        false,
        MAIN_COVERS,
    );
    eprintln!("no-prealloc workload: {count} calls, {runs} crash runs");
}

/// With `sync: None` an acknowledgement promises nothing about a power loss; `sync()` does.
#[test]
fn power_loss_at_every_call_with_sync_none() {
    let o = Options {
        sync: SyncMode::None,
        ..sim_opts(1024, true)
    };
    let (count, runs) = sweep(
        "sync-none",
        o,
        workload,
        &[Loss::Clean, Loss::Torn(6)],
        false,
        MAIN_COVERS,
    );
    eprintln!("sync-none workload: {count} calls, {runs} crash runs");
}

/// Calls of the main workload the sweep must crash in: rotation (the spare made ahead,
/// renamed into place, its directory entry synced, the old one sealed), purge's unlinks, truncate's
/// removal of later segments, its redo file and cut, and truncate to 0.
const MAIN_COVERS: &[&str] = &[
    "create /wal/part_0_0000000003.tmp",
    "rename /wal/part_0_0000000003.tmp /wal/part_0_0000000003.wal",
    "sync_dir /wal",
    "remove /wal/part_0_0000000001.wal",
    "create /wal/part_1.truncating",
    "write part_1.truncating",
    "remove /wal/part_1.truncating",
    "set_len part_2_0000000001.wal 64",
    "set_len part_0_",
];

#[test]
fn power_loss_around_truncate_to_zero_after_purge() {
    let (count, runs) = sweep(
        "purged-then-emptied",
        sim_opts(1024, true),
        workload_purged_then_emptied,
        &[Loss::Clean, Loss::Torn(4)],
        true,
        &[
            "remove /wal/part_5_0000000001.wal",
            "set_len part_5_0000000003.wal 64",
            "write part_5_0000000003.wal @0 +64",
        ],
    );
    eprintln!("purged-then-emptied: {count} calls, {runs} crash runs");
}

/// The undisturbed workloads end with exactly the state the model predicts, live and
/// after a clean reopen (the checker itself is checked here).
#[test]
fn undisturbed_workloads_match_the_model() {
    for w in [workload as Workload, workload_purged_then_emptied] {
        let fs = SimFs::new();
        let o = sim_opts(1024, true);
        let wal = open(&fs, o.clone()).unwrap();
        let mut d = Driver::new(wal);
        w(&mut d, 7);
        d.check_live("undisturbed");
        d.wal.close().unwrap();
        assert!(d.m.errors.is_empty(), "{:?}", d.m.errors);
        assert!(d.m.writes.iter().all(|w| w.st == St::Acked));
        let Driver { m, .. } = d;
        let ctx = || "undisturbed".to_string();
        check_recovered(&fs.power_loss(), &o, &m, &ctx);
    }
}

/// Writeback after a power loss may persist a later page of an unfinished round and not
/// an earlier one: open must take that for a torn tail (the round was never
/// acknowledged), not for damage in the middle of the log.
#[test]
fn power_loss_with_pages_written_back_out_of_order() {
    let o = sim_opts(64 << 10, true);
    let losses: Vec<Loss> = (0..if thorough() { 8 } else { 3 }).map(Loss::Reordered).collect();
    let mut all = vec![Loss::Clean];
    all.extend(losses);
    let (count, runs) = sweep(
        "pages",
        o,
        workload_pages,
        &all,
        false,
        &["sync_data part_0_0000000001.wal"],
    );
    eprintln!("pages workload: {count} calls, {runs} crash runs");
}
