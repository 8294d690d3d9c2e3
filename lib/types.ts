/**
 * The result shapes the engine reports, shared by the binding (what the addon
 * returns) and the public API (what `Wal` hands out): declared once.
 */

/** Result of {@link Wal.purgeBefore}. */
export interface PurgeResult {
  /** Number of segment files deleted. */
  segmentsDeleted: number
  /** Their total logical size in bytes. */
  bytesFreed: number
  /** The partition's first retained LSN afterwards. */
  firstLsn: number
}

/** One segment file of a partition. */
export interface SegmentInfo {
  /** Segment index (the number in the file name). */
  index: number
  /** File name, e.g. `part_1_0000000001.wal`. */
  file: string
  /** LSN of its first record; for a segment holding none, the LSN its first record will get. */
  firstLsn: number
  /** LSN of its last record; `firstLsn - 1` for a segment holding none. */
  lastLsn: number
  /** Logical file size in bytes. */
  bytes: number
  /** True for the segment appends go to. */
  active: boolean
}

/** Per-partition part of {@link WalStats}. */
export interface PartitionStats {
  /** Partition number. */
  partition: number
  /** First retained LSN. */
  firstLsn: number
  /** Last acknowledged LSN. */
  lastLsn: number
  /** Number of segment files. */
  segments: number
  /** Their total logical size in bytes. */
  bytes: number
}

/** Result of {@link Wal.stats}. */
export interface WalStats {
  /** One entry per partition, ascending. */
  partitions: PartitionStats[]
  /** Single appends since open. */
  appends: number
  /** Batches appended since open. */
  batches: number
  /** fdatasync calls since open. */
  syncs: number
  /** Bytes written to segment files since open. */
  bytesWritten: number
}
