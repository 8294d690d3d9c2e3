//! The deterministic simulator's seeds: a few hundred per run of the suite (a fixed
//! range, so a failure is the same on every machine), and every seed that ever failed.
//! `SEED=x cargo test --release -p segwal-sim --test sim seeds` replays one seed;
//! `SIM_SEEDS=n` changes how many the suite runs; `npm run test:sim -- --seeds N` runs
//! long ones (and `--check TAG` / `--strict` the checks of defects still open).

use segwal_sim::{Config, KNOWN_OPEN};

fn check(seeds: impl Iterator<Item = u64>, cfg: &Config) {
    let mut failed = Vec::new();
    for seed in seeds {
        if let Err(why) = segwal_sim::run(seed, cfg) {
            eprintln!("FAILED {why}\n  replay: SEED={seed} cargo test --release -p segwal-sim --test sim\n");
            failed.push(seed);
        }
    }
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[test]
fn seeds() {
    let cfg = Config::default();
    if let Some(seed) = env("SEED") {
        return check(std::iter::once(seed), &cfg);
    }
    let n = env("SIM_SEEDS").unwrap_or(if cfg!(debug_assertions) { 30 } else { 400 });
    check(1..=n, &cfg);
}

/// Seeds that failed once the read, write and simulator branches were merged
/// (2026-11-30), diagnosed: 71 was the engine's (a too-large append to a poisoned WAL
/// got the poisoning I/O error; the size is checked first now, as for a batch); 254,
/// 261, 348 the model's (a stream opened while a truncate is queued is open during it,
/// so one that starts above its cut rejects).
#[test]
fn diagnosed_after_the_merge() {
    check([71, 254, 261, 348].into_iter(), &Config::default());
}

#[test]
fn regression_seeds() {
    check(segwal_sim::REGRESSION_SEEDS.iter().copied(), &Config::default());
}

/// The seeds that first showed a known-open defect, checked for it (each fails until
/// its fix lands; then remove its tag from `KNOWN_OPEN` and the `ignore` here).
fn known(tag: &str, seeds: &[u64]) {
    let cfg = Config {
        allow: KNOWN_OPEN.iter().copied().filter(|t| *t != tag).collect(),
        ..Config::default()
    };
    check(seeds.iter().copied(), &cfg);
}

#[test]
/// Fixed by acks settled by count (the write branch).
fn issue9_1_truncate_of_a_fresh_partition() {
    known("#1", &[10, 76]);
}

#[test]
/// Fixed by reader cursors (the read branch).
fn issue9_2_reader_before_the_cut() {
    known("#2", &[85, 162, 171]);
}

/// Fixed on main (eaa8a85): spares have a name of their own and recovery lists only
/// real cuts; the seeds that showed it stay.
#[test]
fn issue9_5_spares() {
    known("#5", &[1, 4, 5]);
}

/// Seed 980 was F1 in disguise (a failed fdatasync's pages, recovered and built on, then
/// a hole after a power loss behind later sync points): fixed with F1.
#[test]
fn issue9_6_hole_before_the_tail_check() {
    known("#6", &[980]);
}

/// Fixed on main (eaa8a85): open syncs what a killed process left.
#[test]
fn issue9_7_unsynced_after_kill() {
    known("#7", &[3, 4, 95]);
}

#[test]
fn issue9_10_reader_codes() {
    known("#10", &[86, 293]);
}

/// Open rewrites what follows the last sync point before syncing it (`segment::resync`).
#[test]
fn f1_lost_writeback_after_reopen() {
    known("F1", &[10, 81, 112]);
}

/// A failed round rolls back (removing the files it created) even after a fatal error.
#[test]
fn f3_failed_round_leaves_a_segment_file() {
    known("F3", &[18, 81, 86]);
}

/// A failed truncate marks its partition broken: readers get its error until a reopen.
#[test]
fn f2_failed_truncate_readers() {
    known("F2", &[183, 332, 606]);
}
