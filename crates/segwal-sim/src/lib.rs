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

/// Seeds that once failed: `tests/sim.rs` replays every one of them.
pub const REGRESSION_SEEDS: &[u64] = &[];
