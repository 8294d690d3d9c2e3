/**
 * The async iterator behind `wal.stream()`: pulls batches of records from a
 * native reader (one crossing per batch), yields views into the batch
 * buffer, and in `follow` mode waits on the ack path for new records.
 */
import { Readable } from 'node:stream'
import { RECORD_WIDTH, native, type NativeBatch, type ReaderHandle } from './binding'
import { toWalError } from './errors'

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

/** The iterator `wal.stream()` returns. */
export interface WalStream extends AsyncIterableIterator<WalRecord> {
  /** Ends the stream and releases its file handles. */
  return(): Promise<IteratorResult<WalRecord, undefined>>
  /** This stream as a Node object-mode `Readable` of {@link WalRecord}s. */
  toReadable(): Readable
}

/** Where a stream starts. */
export type StreamStart = { fromLsn: number } | { segment: number; offset: number }

/** What a stream needs from its WAL (implemented by `Wal`). */
export interface StreamHost {
  /** True once `close()` was called. */
  readonly isClosed: boolean
  openReader(partition: number, start: StreamStart): Promise<ReaderHandle>
  /** The partition's last acknowledged LSN, as the engine knows it now. */
  lastLsn(partition: number): number
  /** Calls `wake` once, at the next ack of `partition` or at close. */
  addWaiter(partition: number, wake: () => void): void
  removeWaiter(partition: number, wake: () => void): void
  /** Registers a live stream so that close can end it. */
  track(stream: RecordStream, live: boolean): void
}

/**
 * Bytes asked of the engine per batch: the first read is small, so that a stream
 * opened for a few records (a seek, a tail) does not read and verify a whole MiB
 * first; each next read doubles, up to 1 MiB.
 */
const FIRST_BATCH_BYTES = 64 << 10
const BATCH_BYTES = 1 << 20

const EMPTY: NativeBatch = { nextLsn: 0 }

const DONE: IteratorResult<WalRecord, undefined> = Object.freeze({ done: true, value: undefined })

/** The stream implementation (not exported from the package: users see {@link WalStream}). */
export class RecordStream implements WalStream {
  private reader: ReaderHandle | undefined
  /** The current batch's memory, and where its bytes start in it. */
  private data: ArrayBuffer | undefined
  private base = 0
  private meta: Float64Array | undefined
  private at = 0
  private finished = false
  /** A native call (open or next) is running. */
  private busy = false
  private pull: Promise<IteratorResult<WalRecord, undefined>> | undefined
  /** The batch after the current one, being read. */
  private ahead: Promise<NativeBatch> | undefined
  private batchBytes = FIRST_BATCH_BYTES
  private wakeWaiter: (() => void) | undefined
  private readonly onAbort = (): void => this.interrupt()

  constructor(
    private readonly host: StreamHost,
    private readonly partition: number,
    private readonly start: StreamStart,
    private readonly follow: boolean,
    private readonly signal: AbortSignal | undefined,
  ) {
    host.track(this, true)
    signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  /** The stream is its own async iterator. */
  [Symbol.asyncIterator](): this {
    return this
  }

  /** The next record; `done` at the end of the log (without `follow`), on abort or close. */
  next(): Promise<IteratorResult<WalRecord, undefined>> {
    // Fast path: a record of the current batch. No other check is needed: finishing
    // (abort, close, return) drops the batch, and a pull in progress has dropped it.
    const meta = this.meta
    if (meta !== undefined && this.at < meta.length) {
      return Promise.resolve({ done: false, value: this.record(meta) })
    }
    if (this.pull !== undefined) return this.pull.then(() => this.next())
    const pull = this.fetch().finally(() => {
      this.pull = undefined
    })
    this.pull = pull
    return pull
  }

  /** Ends the stream and releases its file handles (what `break` in `for await` calls). */
  return(): Promise<IteratorResult<WalRecord, undefined>> {
    this.finish()
    return Promise.resolve(DONE)
  }

  /** Ends the stream, like `return()`, and rejects with `err`. */
  throw(err?: unknown): Promise<IteratorResult<WalRecord, undefined>> {
    this.finish()
    return Promise.reject(err)
  }

  /** This stream as a Node object-mode `Readable`; destroying it releases the stream. */
  toReadable(): Readable {
    return Readable.from(this, { objectMode: true })
  }

  /** Called by the WAL on close and by the abort signal: end at the next step. */
  interrupt(): void {
    const wake = this.wakeWaiter
    if (wake !== undefined) wake()
    // Safe while a native call runs: the reader is released when it settles.
    this.finish()
  }

  private stopped(): boolean {
    return this.finished || this.host.isClosed || this.signal?.aborted === true
  }

  private record(meta: Float64Array): WalRecord {
    const i = this.at
    this.at = i + RECORD_WIDTH
    const start = meta[i + 3]!
    return {
      lsn: meta[i]!,
      // Cheaper than `subarray` (no species lookup, no `.buffer` materialised per call).
      payload: Buffer.from(this.data!, this.base + start, meta[i + 4]!),
      segment: meta[i + 1]!,
      offset: meta[i + 2]!,
    }
  }

  private async fetch(): Promise<IteratorResult<WalRecord, undefined>> {
    for (;;) {
      if (this.stopped()) return this.finish()
      this.data = undefined
      this.meta = undefined
      this.at = 0
      let batch: NativeBatch
      try {
        if (this.reader === undefined) {
          this.busy = true
          try {
            this.reader = await this.host.openReader(this.partition, this.start)
          } finally {
            this.busy = false
          }
          if (this.stopped()) return this.finish()
        }
        const ahead = this.ahead ?? this.read(this.reader)
        this.ahead = undefined
        batch = await ahead
      } catch (e) {
        const stopped = this.stopped()
        this.finish()
        if (stopped) return DONE
        throw toWalError(e)
      }
      if (this.stopped()) return this.finish()
      if (batch.data != null && batch.meta != null && batch.meta.length > 0) {
        this.data = batch.data.buffer as ArrayBuffer
        this.base = batch.data.byteOffset
        this.meta = batch.meta
        // Read the next batch while the caller consumes this one, so that the engine's
        // read and the caller's loop overlap (at most one batch ahead).
        this.ahead = this.read(this.reader)
        return { done: false, value: this.record(batch.meta) }
      }
      const nextLsn = batch.nextLsn
      if (!this.follow || !(await this.waitFor(nextLsn))) return this.finish()
    }
  }

  /** One native read; `busy` until it settles, and a reader finished meanwhile is released then. */
  private read(reader: ReaderHandle): Promise<NativeBatch> {
    this.busy = true
    const batch = native.readerNext(reader, this.batchBytes)
    this.batchBytes = Math.min(this.batchBytes * 2, BATCH_BYTES)
    const settled = (): void => {
      this.busy = false
      if (this.finished) this.finish()
    }
    // Registered before anyone awaits `batch`, so `busy` is clear by the time they resume.
    batch.then(settled, settled)
    return batch
  }

  /** Resolves true once `lsn` is acknowledged, false on abort/close. */
  private waitFor(lsn: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const check = (): void => {
        this.wakeWaiter = undefined
        if (this.stopped()) return resolve(false)
        let last: number
        try {
          last = this.host.lastLsn(this.partition)
        } catch {
          return resolve(false)
        }
        if (last >= lsn) return resolve(true)
        this.wakeWaiter = wake
        this.host.addWaiter(this.partition, wake)
      }
      const wake = (): void => {
        this.host.removeWaiter(this.partition, wake)
        check()
      }
      check()
    })
  }

  private finish(): IteratorResult<WalRecord, undefined> {
    if (!this.finished) {
      this.finished = true
      this.signal?.removeEventListener('abort', this.onAbort)
      this.host.track(this, false)
    }
    const wake = this.wakeWaiter
    if (wake !== undefined) wake()
    this.data = undefined
    this.meta = undefined
    this.ahead = undefined
    if (!this.busy && this.reader !== undefined) {
      const reader = this.reader
      this.reader = undefined
      native.readerRelease(reader)
    }
    return DONE
  }
}
