/**
 * The async iterators of `wal.stream()` (records) and `wal.streamBatches()` (batches),
 * both over the one reader in reader.ts.
 */
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { Batch, type RecordBatch, type WalRecord } from './batch'
import type { ReadScan } from './binding'
import { invalidArgument } from './errors'
import { BatchReader, type StreamHost, type StreamStart } from './reader'

export type { RecordBatch, WalRecord } from './batch'
export type { StreamHost, StreamStart } from './reader'

/** Options of `wal.stream()`. */
export interface StreamOptions {
  /** First LSN to yield; 0 or absent: the first retained record. */
  fromLsn?: number
  /** Start at the record at this position (from an `AppendResult` or a `WalRecord`). */
  from?: { segment: number; offset: number }
  /** Keep waiting for new records at the end of the log (default false). */
  follow?: boolean
  /** Ends the stream (cleanly) when aborted. */
  signal?: AbortSignal
}

/** Options of `wal.streamBatches()`. */
export interface BatchStreamOptions extends StreamOptions {
  /** Payload bytes per batch at most (one record, if a single record is larger); default 1 MiB, 4 KiB ..= 64 MiB. */
  maxBytes?: number
}

/** The iterator `wal.stream()` returns. */
export interface WalStream extends AsyncIterableIterator<WalRecord> {
  /** Ends the stream and releases its file handles. */
  return(): Promise<IteratorResult<WalRecord, undefined>>
  /** This stream as a Node object-mode `Readable` of {@link WalRecord}s. */
  toReadable(): Readable
}

/** The iterator `wal.streamBatches()` returns. */
export interface WalBatchStream extends AsyncIterableIterator<RecordBatch> {
  /** Ends the stream and releases its file handles. */
  return(): Promise<IteratorResult<RecordBatch, undefined>>
}

export const DEFAULT_MAX_BYTES = 1 << 20
const MIN_MAX_BYTES = 4 << 10
const MAX_MAX_BYTES = 64 << 20

/** `options.maxBytes` of `streamBatches()`, checked (the other options are `stream()`'s). */
export function maxBytesOf(options: unknown): number {
  if (options === null || typeof options !== 'object') return DEFAULT_MAX_BYTES
  const { maxBytes } = options as { maxBytes?: unknown }
  if (maxBytes === undefined) return DEFAULT_MAX_BYTES
  if (typeof maxBytes !== 'number' || !Number.isInteger(maxBytes) || maxBytes < MIN_MAX_BYTES || maxBytes > MAX_MAX_BYTES) {
    throw invalidArgument('maxBytes', `an integer from ${MIN_MAX_BYTES} to ${MAX_MAX_BYTES}`, maxBytes)
  }
  return maxBytes
}

/**
 * Bytes asked of the engine per batch by `stream()`: the first read is small, so that a
 * stream opened for a few records (a seek, a tail) does not read and verify a whole MiB
 * first; each next read doubles, up to 1 MiB.
 */
const RECORD_READS = { first: 64 << 10, max: DEFAULT_MAX_BYTES }

const DONE: IteratorResult<never, undefined> = Object.freeze({ done: true, value: undefined })

/** Serialises pulls: a `next()` made while one is pending runs after it. */
abstract class Pulls<T> implements AsyncIterableIterator<T> {
  protected readonly reader: BatchReader
  #pull: Promise<IteratorResult<T, undefined>> | undefined

  constructor(reader: BatchReader) {
    this.reader = reader
  }

  /** A pull is running (its result comes before any other). */
  protected get pulling(): boolean {
    return this.#pull !== undefined
  }

  /** The stream is its own async iterator. */
  [Symbol.asyncIterator](): this {
    return this
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#pull !== undefined) return this.#pull.then(() => this.next())
    const pull = this.fetch().finally(() => {
      this.#pull = undefined
    })
    this.#pull = pull
    return pull
  }

  /** Ends the stream and releases its file handles (what `break` in `for await` calls). */
  return(): Promise<IteratorResult<T, undefined>> {
    this.reader.finish()
    return Promise.resolve(DONE)
  }

  /** Ends the stream, like `return()`, and rejects with `err`. */
  throw(err?: unknown): Promise<IteratorResult<T, undefined>> {
    this.reader.finish()
    return Promise.reject(err)
  }

  protected abstract fetch(): Promise<IteratorResult<T, undefined>>
}

/**
 * Records of a batch already read are handed out through promises that are settled at
 * once, so a `for await` over them runs in one turn of the event loop: a whole MiB of
 * 128 B records (6,500 of them, and the caller's work on each) would keep timers and I/O
 * waiting. The stream lets the event loop run (`setImmediate`) once a turn has lasted
 * this long, checked every `TURN_CHECK + 1` records.
 */
const TURN_MS = 2
const TURN_CHECK = 255

/** The stream of records (not exported from the package: users see {@link WalStream}). */
export class RecordStream extends Pulls<WalRecord> implements WalStream {
  #served = 0
  /** When the stream last let the event loop run (`performance.now()`). */
  #turnStart = 0
  #yieldDue = false

  constructor(host: StreamHost, partition: number, start: StreamStart, follow: boolean, signal: AbortSignal | undefined) {
    super(new BatchReader(host, partition, start, follow, signal, RECORD_READS))
  }

  /** The next record; `done` at the end of the log (without `follow`), on abort or close. */
  override next(): Promise<IteratorResult<WalRecord, undefined>> {
    // Fast path: a record of the current batch. Finishing (abort, close, return) and
    // truncates shorten or drop the batch, so no other check is needed.
    const r = this.reader
    if (r.at < r.end && !this.pulling) {
      if ((++this.#served & TURN_CHECK) !== 0 || performance.now() - this.#turnStart < TURN_MS) {
        return Promise.resolve({ done: false, value: r.takeRecord() })
      }
      this.#yieldDue = true
    }
    return super.next()
  }

  /** This stream as a Node object-mode `Readable`; destroying it releases the stream. */
  toReadable(): Readable {
    return Readable.from(this, { objectMode: true })
  }

  protected async fetch(): Promise<IteratorResult<WalRecord, undefined>> {
    const r = this.reader
    if (this.#yieldDue) {
      this.#yieldDue = false
      await new Promise<void>((resolve) => setImmediate(resolve))
      this.#turnStart = performance.now()
      // Meanwhile an abort, close or truncate may have dropped or shortened the batch.
      if (r.at < r.end) return { done: false, value: r.takeRecord() }
    }
    while (await r.advance()) {
      if (r.at < r.end) return { done: false, value: r.takeRecord() }
    }
    return DONE
  }
}

/** The stream of batches (not exported from the package: users see {@link WalBatchStream}). */
export class BatchStream extends Pulls<RecordBatch> implements WalBatchStream {
  constructor(
    host: StreamHost,
    partition: number,
    start: StreamStart,
    follow: boolean,
    signal: AbortSignal | undefined,
    maxBytes: number,
  ) {
    super(new BatchReader(host, partition, start, follow, signal, { first: maxBytes, max: maxBytes }))
  }

  /**
   * Drains the stream through the engine alone, with no JS object per batch, and ends it:
   * the bench's measure of the engine's read rate on the same records (issue #11 target
   * 6). Not part of the API (not on {@link WalBatchStream}).
   */
  engineScan(): Promise<ReadScan> {
    return this.reader.scan()
  }

  protected async fetch(): Promise<IteratorResult<RecordBatch, undefined>> {
    const r = this.reader
    while (await r.advance()) {
      const b = r.batch
      if (b !== undefined && r.at < r.end) {
        // A reader's batch starts at its first record (`at` is 0 here).
        const batch = new Batch(r.partition, b, r.end - r.at)
        r.at = r.end
        return { done: false, value: batch }
      }
    }
    return DONE
  }
}
