//! segwal's engine: a segmented, partitioned, crash-safe write-ahead log.
//!
//! No Node here: the napi binding at the repository root wraps this crate. The on-disk
//! format is specified in `docs/FORMAT.md`; threads and durability in `docs/DESIGN.md`.

mod acks;
mod commit;
mod engine;
pub mod error;
pub mod format;
pub mod fs;
mod handles;
pub mod inspect;
mod options;
mod partition;
mod pending;
mod reader;
mod recovery;
pub mod segment;
mod stage;
mod truncate;
mod verify;
mod wal;

pub use acks::Ack;
pub use error::{Error, ErrorCode, Result};
pub use handles::DEFAULT_READ_HANDLES;
pub use options::{Options, SyncMode, Truncation, DEFAULT_SEGMENT_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE};
pub use partition::{AckEvent, Position, PurgeResult};
pub use pending::Pending;
pub use reader::{Batch, Reader, RecordRef, Start};
pub use wal::{Driver, PartitionStats, SegmentInfo, Stats, Wal};
