//! What a WAL is opened with, and what open reports: plain data every layer shares.

use std::time::Duration;

pub const MIN_SEGMENT_SIZE: u64 = 1024;
pub const MAX_SEGMENT_SIZE: u64 = 4 << 30;
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Acknowledge after fdatasync (group commit).
    Always,
    /// Acknowledge once the OS has the bytes.
    None,
    /// Like `None`, plus an fdatasync of every written partition at this period.
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub segment_size: u64,
    pub sync: SyncMode,
    pub preallocate: bool,
    pub repair: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_size: DEFAULT_SEGMENT_SIZE,
            sync: SyncMode::Always,
            preallocate: true,
            repair: false,
        }
    }
}

/// A part of a segment cut at open (torn tail) or dropped by repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub partition: u16,
    pub segment: u64,
    pub truncated_bytes: u64,
}
