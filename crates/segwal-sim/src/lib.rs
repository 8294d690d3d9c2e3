//! segwal's deterministic simulator (issue #9), in the manner of FoundationDB's
//! simulation tests and TigerBeetle's VOPR: one seed picks the options, the workload, the
//! order in which the engine's steps run (through `Wal::open_driven`'s `Driver`: the
//! writers' rounds, the interval syncer's ticks, the readers' batches, the hand-off of
//! acknowledgements) and every fault (`SimFs`: power loss with torn or reordered
//! writeback, a killed process, EIO and ENOSPC, bit flips); a model of what API.md
//! allows is checked after every step. The same seed replays the same run.
//!
//! `SimFs` lives here, not in the engine: the engine's public surface has no test-only
//! module, and its integration tests (`tests/`) are the ones that need it.

pub mod fs;
mod model;
mod rng;
mod run;

pub use fs::SimFs;
pub use rng::Rng;
pub use run::{run, Config, Failure, Outcome, KNOWN_OPEN};

/// Seeds that once failed: `tests/sim.rs` replays every one of them. Found by the
/// 3000-seed strict sweep of 2026-11-30: 67, 283 (a reader of a partition whose truncate
/// failed), 78, 1507 (a sync credited records that had failed), 1203 (a failure that
/// undid a queued truncate), 1107, 1691 (a reader at the end of a purged segment got
/// WAL_LSN_PURGED), 1511, 2132 (a segment file left by a failed round), 2364 (a cut
/// whose fdatasync failed came back after a reopen and a power loss). Found by the
/// 26,000-seed sweeps of session 4, both the model's: 23655 (it undid a truncate that a
/// failure had stopped a second time, at a later failure, over the records appended
/// since) and 19585 (of two truncates stopped by one failure it undid only the first);
/// and 18501, 23497, 23766, 25200, each failing one intermediate version of that fix
/// (`Part::undo_unapplied_truncates`). Found past 39,000, the model's: 46309 (undoing a
/// truncate that a failure had stopped left the purge floor where the truncate had
/// lowered it, so the records a purge queued ahead of it had deleted were demanded back).
/// Found by the 82,001-100,000 sweep, both the checker's: 91466 (two versions of an LSN
/// with equal bytes, both empty: a read of the newer one was judged as the older one, which
/// a resolved truncate had removed); 93376 (a failed rotation's segment file the disk
/// refused to remove, twice, is left to the next open; see `Sim::stranded`). Found past
/// 100,000, the checker's: 100933 (equal bytes again: a reader that read the old version of
/// an LSN a truncate in progress removed was judged as having read the new one, so the
/// engine's WAL_LSN_OUT_OF_RANGE at the truncate's resolution was called wrong).
/// Found past 400,000, an engine defect: 403271 (a truncate's intent, replayed after a torn
/// power loss, lengthened a segment that had never been synced, sync 'none', so its torn
/// header was read as damage and open failed with WAL_CORRUPTION; `Cut::fits`). Found past
/// 413,072, an engine defect: 432828 (a round that rotated twice failed creating its second
/// segment; the rollback tried again to remove that absent file, the try failed, and the
/// rollback stopped with the first new segment left on disk, unlisted, holding LSNs the
/// partition would hand out again).
pub const REGRESSION_SEEDS: &[u64] = &[
    67, 78, 283, 1107, 1203, 1507, 1511, 1691, 2132, 2364, 18501, 19585, 23497, 23655, 23766, 25200, 46309, 91466,
    93376, 100933, 128379, 143071, 403271, 432828,
];
