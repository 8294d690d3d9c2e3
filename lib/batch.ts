/**
 * `RecordBatch`: records read in one go, as one buffer and two index arrays, so that a
 * reader of millions of records a second makes no JS object per record.
 */
// Imported, not the global: `globalThis.Buffer` is a getter, called on every payload.
import { Buffer } from 'node:buffer'
import type { NativeBatch } from './binding'
import { invalidArgument } from './errors'

/** A record read from the log. */
export interface WalRecord {
  /** The record's LSN. */
  lsn: number
  /**
   * The payload: a view into the memory of the batch it was read in (no copy). It stays
   * valid as long as you hold it, and holding it keeps that whole batch (up to 1 MiB)
   * alive: copy (`Buffer.from(payload)`) small payloads you keep for long.
   */
  payload: Buffer
  /** Index of the segment file the record starts in. */
  segment: number
  /** Byte offset of the record in that segment file; `{ segment, offset }` is a valid `from`. */
  offset: number
}

/** Consecutive records of one partition, as `wal.streamBatches()` yields them. */
export interface RecordBatch {
  readonly partition: number
  /** Records in the batch (at least 1); record `i` has LSN `firstLsn + i`. */
  readonly count: number
  readonly firstLsn: number
  readonly lastLsn: number
  /** Payload `i` is `data.subarray(starts[i], starts[i] + lengths[i])`. */
  readonly data: Buffer
  /** May be longer than `count`; only the first `count` entries are records. */
  readonly starts: Uint32Array
  /** May be longer than `count`; only the first `count` entries are records. */
  readonly lengths: Uint32Array
  /** Payload `i` (a view of `data`, no copy). */
  payload(i: number): Buffer
  /** Where record `i` starts: a valid `from` position. */
  position(i: number): { segment: number; offset: number }
  /** The records as {@link WalRecord}s (one object each, made as you iterate). */
  [Symbol.iterator](): IterableIterator<WalRecord>
}

/** A native batch with records (the reader only hands these on). */
export type FullBatch = Required<Pick<NativeBatch, 'data' | 'index' | 'count' | 'firstLsn' | 'segment' | 'offsetBase'>> &
  NativeBatch

/** The {@link RecordBatch} behind `wal.streamBatches()`: the first `count` records of `native`. */
export class Batch implements RecordBatch {
  readonly firstLsn: number
  readonly lastLsn: number
  readonly data: Buffer
  readonly starts: Uint32Array
  readonly lengths: Uint32Array
  readonly #native: FullBatch

  constructor(
    readonly partition: number,
    native: FullBatch,
    readonly count: number,
  ) {
    this.#native = native
    this.firstLsn = native.firstLsn
    this.lastLsn = native.firstLsn + count - 1
    this.data = native.data
    this.starts = native.index.subarray(0, native.count)
    this.lengths = native.index.subarray(native.count, native.count * 2)
  }

  payload(i: number): Buffer {
    this.#check(i)
    return this.#payload(i)
  }

  position(i: number): { segment: number; offset: number } {
    this.#check(i)
    return { segment: this.#native.segment, offset: this.#native.offsetBase + this.starts[i]! }
  }

  *[Symbol.iterator](): IterableIterator<WalRecord> {
    const { segment, offsetBase } = this.#native
    for (let i = 0; i < this.count; i++) {
      yield { lsn: this.firstLsn + i, payload: this.#payload(i), segment, offset: offsetBase + this.starts[i]! }
    }
  }

  #payload(i: number): Buffer {
    // Cheaper than `subarray` (no species lookup).
    return Buffer.from(this.data.buffer, this.data.byteOffset + this.starts[i]!, this.lengths[i]!)
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw invalidArgument('i', `an integer from 0 to ${this.count - 1} (count - 1)`, i)
    }
  }
}
