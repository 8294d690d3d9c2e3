//! Synchronous views of the log: LSN bounds, partitions, segments, stats.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::guard;
use crate::{partition_arg, WalHandle};

/// One segment file of a partition.
#[napi(object)]
pub struct SegmentInfo {
    pub index: f64,
    pub file: String,
    pub first_lsn: f64,
    pub last_lsn: f64,
    pub bytes: f64,
    pub active: bool,
}

/// Per-partition part of [`WalStats`].
#[napi(object)]
pub struct PartitionStats {
    pub partition: u32,
    pub first_lsn: f64,
    pub last_lsn: f64,
    pub segments: f64,
    pub bytes: f64,
}

/// Result of `stats()`.
#[napi(object)]
pub struct WalStats {
    pub partitions: Vec<PartitionStats>,
    pub appends: f64,
    pub batches: f64,
    pub syncs: f64,
    pub bytes_written: f64,
}

/// First retained LSN of the partition (0 if none).
#[napi]
pub fn first_lsn(env: &Env, handle: &External<WalHandle>, partition: u32) -> Result<f64> {
    guard(env, || Ok(handle.wal.first_lsn(partition_arg(partition)?)? as f64))
}

/// Last acknowledged LSN of the partition (0 if none).
#[napi]
pub fn last_lsn(env: &Env, handle: &External<WalHandle>, partition: u32) -> Result<f64> {
    guard(env, || Ok(handle.wal.last_lsn(partition_arg(partition)?)? as f64))
}

/// Known partitions, ascending.
#[napi]
pub fn partitions(env: &Env, handle: &External<WalHandle>) -> Result<Vec<u32>> {
    guard(env, || {
        let mut parts: Vec<u32> = handle.wal.partitions()?.into_iter().map(u32::from).collect();
        parts.sort_unstable();
        Ok(parts)
    })
}

/// Segments of a partition, oldest first.
#[napi]
pub fn segments(env: &Env, handle: &External<WalHandle>, partition: u32) -> Result<Vec<SegmentInfo>> {
    guard(env, || {
        let segments = handle.wal.segments(partition_arg(partition)?)?;
        Ok(segments
            .into_iter()
            .map(|s| SegmentInfo {
                index: s.index as f64,
                file: s.file,
                first_lsn: s.first_lsn as f64,
                last_lsn: s.last_lsn as f64,
                bytes: s.bytes as f64,
                active: s.active,
            })
            .collect())
    })
}

/// Counters and per-partition totals.
#[napi]
pub fn stats(env: &Env, handle: &External<WalHandle>) -> Result<WalStats> {
    guard(env, || {
        let s = handle.wal.stats()?;
        Ok(WalStats {
            partitions: s
                .partitions
                .into_iter()
                .map(|p| PartitionStats {
                    partition: u32::from(p.partition),
                    first_lsn: p.first_lsn as f64,
                    last_lsn: p.last_lsn as f64,
                    segments: p.segments as f64,
                    bytes: p.bytes as f64,
                })
                .collect(),
            appends: s.appends as f64,
            batches: s.batches as f64,
            syncs: s.syncs as f64,
            bytes_written: s.bytes_written as f64,
        })
    })
}
