/**
 * segwal: a segmented, partitioned, crash-safe write-ahead log for Node.
 *
 * ```ts
 * import { Wal, WalError } from 'segwal'
 * await using wal = await Wal.open('/var/lib/app/wal', { sync: 'always' })
 * const { lsn } = await wal.append(1, 'hello')
 * for await (const rec of wal.stream(1, { fromLsn: lsn })) console.log(rec.lsn, rec.payload.toString())
 * ```
 */
import { native, type ReaderHandle, type WalHandle } from './binding'
import { closedError, invalidArgument, toWalError } from './errors'
import type { AppendResult, BatchResult } from './pending'
import { OpenStreams, type BatchReader, type ReadSize } from './reader'
import { BatchStream, RecordStream, maxBytesOf, type BatchStreamOptions, type StreamHost, type StreamOptions, type StreamStart, type WalBatchStream, type WalRecord, type WalStream } from './stream'
import { Writes, isDetached, type Payload } from './writes'
import type { PurgeResult, SegmentInfo, WalStats } from './types'

export { WalError } from './errors'
export type { WalErrorCode, WalErrorDetails } from './errors'
export type { AppendResult, BatchResult } from './pending'
export type { BatchStreamOptions, RecordBatch, StreamOptions, WalBatchStream, WalRecord, WalStream } from './stream'
export type { PartitionStats, PurgeResult, SegmentInfo, WalStats } from './types'
export type { Payload } from './writes'

/** Options of {@link Wal.open}. */
export interface WalOptions {
  /** Maximum bytes of one segment file, 1 KiB ..= 4 GiB; default 64 MiB. May differ between opens. */
  segmentSize?: number
  /**
   * When appends resolve: `'always'` (default) after fdatasync, with group commit;
   * `'none'` once the OS has the bytes; `{ intervalMs }` syncs in the background at that period.
   */
  sync?: 'always' | 'none' | { intervalMs: number }
  /** Reserve each new segment's full size on Linux (fallocate KEEP_SIZE); default true. */
  preallocate?: boolean
  /** On damage that is not a torn tail, keep the log up to the damage instead of failing; default false. */
  repair?: boolean
}

/** What recovery cut off a partition's last segment at open (see {@link Wal.recovery}). */
export interface Truncation {
  /** Partition number. */
  partition: number
  /** Segment index of the cut. */
  segment: number
  /** Exactly how many bytes were cut. */
  truncatedBytes: number
}

const MIN_SEGMENT_SIZE = 1024
const MAX_SEGMENT_SIZE = 4 * 1024 * 1024 * 1024
const DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024
const MAX_PARTITION = 65535
/** The longest sync interval: setTimeout's limit (about 24.8 days). */
const MAX_INTERVAL_MS = 2147483647
const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')

function checkPartition(partition: unknown): number {
  // An integer from 0 to 65535 is exactly a number the 16-bit mask leaves unchanged.
  if (typeof partition !== 'number' || (partition & MAX_PARTITION) !== partition) {
    throw invalidArgument('partition', 'an integer from 0 to 65535', partition)
  }
  return partition
}

function checkLsn(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(name, 'a non-negative safe integer', value)
  }
  return value
}

function checkPayload(payload: unknown, name: string): Uint8Array | string {
  if (typeof payload === 'string') return payload
  if (payload instanceof Uint8Array && !isDetached(payload)) return payload
  throw invalidArgument(name, 'a Buffer, Uint8Array or string (not detached)', payload)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

interface ParsedOptions {
  segmentSize: number
  sync: number
  intervalMs: number
  preallocate: boolean
  repair: boolean
}

function parseOptions(options: unknown): ParsedOptions {
  const parsed: ParsedOptions = { segmentSize: DEFAULT_SEGMENT_SIZE, sync: 0, intervalMs: 0, preallocate: true, repair: false }
  if (options === undefined) return parsed
  if (!isPlainObject(options)) throw invalidArgument('options', 'an object', options)
  const { segmentSize, sync, preallocate, repair } = options
  if (segmentSize !== undefined) {
    if (
      typeof segmentSize !== 'number' ||
      !Number.isInteger(segmentSize) ||
      segmentSize < MIN_SEGMENT_SIZE ||
      segmentSize > MAX_SEGMENT_SIZE
    ) {
      throw invalidArgument('segmentSize', 'an integer from 1024 (1 KiB) to 4294967296 (4 GiB)', segmentSize)
    }
    parsed.segmentSize = segmentSize
  }
  if (sync !== undefined) {
    if (sync === 'always') parsed.sync = 0
    else if (sync === 'none') parsed.sync = 1
    else if (isPlainObject(sync)) {
      const { intervalMs } = sync
      if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs <= 0 || intervalMs > MAX_INTERVAL_MS) {
        throw invalidArgument('sync.intervalMs', `a positive number of milliseconds up to ${MAX_INTERVAL_MS}`, intervalMs)
      }
      parsed.sync = 2
      parsed.intervalMs = intervalMs
    } else {
      throw invalidArgument('sync', "'always', 'none' or { intervalMs }", sync)
    }
  }
  if (preallocate !== undefined) {
    if (typeof preallocate !== 'boolean') throw invalidArgument('preallocate', 'a boolean', preallocate)
    parsed.preallocate = preallocate
  }
  if (repair !== undefined) {
    if (typeof repair !== 'boolean') throw invalidArgument('repair', 'a boolean', repair)
    parsed.repair = repair
  }
  return parsed
}

function parseStreamOptions(options: unknown): { start: StreamStart; follow: boolean; signal: AbortSignal | undefined } {
  if (options === undefined) return { start: { fromLsn: 0 }, follow: false, signal: undefined }
  if (!isPlainObject(options)) throw invalidArgument('options', 'an object', options)
  const { fromLsn, from, follow, signal } = options
  let start: StreamStart = { fromLsn: 0 }
  if (fromLsn !== undefined) start = { fromLsn: checkLsn(fromLsn, 'fromLsn') }
  if (from !== undefined) {
    if (fromLsn !== undefined) throw invalidArgument('from', 'absent when fromLsn is given', from)
    if (!isPlainObject(from)) throw invalidArgument('from', 'an object { segment, offset }', from)
    start = { segment: checkLsn(from.segment, 'from.segment'), offset: checkLsn(from.offset, 'from.offset') }
  }
  if (follow !== undefined && typeof follow !== 'boolean') throw invalidArgument('follow', 'a boolean', follow)
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgument('signal', 'an AbortSignal', signal)
  return { start, follow: follow === true, signal }
}

/** Rejects with `e` as a WalError. */
function rejected<T>(e: unknown): Promise<T> {
  return Promise.reject(toWalError(e))
}

/**
 * An open write-ahead log directory. Get one with {@link Wal.open}; close it
 * with {@link Wal.close} (or `await using`).
 */
export class Wal implements AsyncDisposable {
  readonly #handle: WalHandle
  readonly #recovery: ReadonlyArray<Readonly<Truncation>>
  /** Staging, acks, flush() and pendingBytes. */
  readonly #writes: Writes
  /** Follow streams waiting for an ack, per partition. */
  #waiters = new Map<number, Set<() => void>>()
  readonly #streams = new OpenStreams()
  #closed = false
  #closing: Promise<void> | undefined
  readonly #host: StreamHost

  private constructor(handle: WalHandle) {
    this.#handle = handle
    const r = native.recovery(handle)
    const recovery: Truncation[] = []
    for (let i = 0; i + 2 < r.length; i += 3) {
      recovery.push(Object.freeze({ partition: r[i]!, segment: r[i + 1]!, truncatedBytes: r[i + 2]! }))
    }
    this.#recovery = Object.freeze(recovery)
    this.#writes = new Writes(handle, (partition) => this.#wake(partition))
    native.setNotifier(handle, () => this.#writes.onAcks())
    native.setReadNotifier(handle, (id) => this.#streams.ready(id))
    this.#host = this.#makeHost()
  }

  /**
   * Opens (creating if missing) the WAL in `dir` and locks it until `close()`.
   * Rejects with `WAL_LOCKED` if it is open elsewhere, `WAL_CORRUPTION` on damage
   * that is not a torn tail (unless `repair`).
   */
  static async open(dir: string, options?: WalOptions): Promise<Wal> {
    if (typeof dir !== 'string' || dir.length === 0 || dir.includes('\0')) {
      throw invalidArgument('dir', 'a non-empty path string without NUL bytes', dir)
    }
    const o = parseOptions(options)
    let handle: WalHandle
    try {
      handle = await native.open(dir, o.segmentSize, o.sync, o.intervalMs, o.preallocate, o.repair)
    } catch (e) {
      throw toWalError(e)
    }
    return new Wal(handle)
  }

  /** What recovery cut at open (torn tails, and with `repair` the damage); `[]` after a clean shutdown. */
  get recovery(): ReadonlyArray<Readonly<Truncation>> {
    return this.#recovery
  }

  /** True once {@link Wal.close} has been called. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Appends one record to `partition` (0..=65535). LSNs follow the order of the
   * calls; the promise resolves once the record is durable per the `sync` option.
   * The payload is copied before append() returns: the caller may reuse its buffer.
   */
  append(partition: number, payload: Payload): Promise<AppendResult> {
    if (this.#closed) return rejected(closedError())
    try {
      checkPartition(partition)
    } catch (e) {
      return rejected(e)
    }
    return this.#writes.append(partition, payload)
  }

  /**
   * Stages one record and returns its LSN at once, with no promise: it is
   * acknowledged exactly as an `append()` made now would be. Argument errors,
   * `WAL_RECORD_TOO_LARGE` and `WAL_CLOSED` are thrown; so is a failure of the
   * partition until a {@link Wal.flush} has reported it. The payload is copied
   * before write() returns.
   */
  write(partition: number, payload: Payload): number {
    if (this.#closed) throw closedError()
    checkPartition(partition)
    return this.#writes.write(partition, payload)
  }

  /**
   * Settles once every record written or appended before the call is
   * acknowledged or failed. Rejects with the first failure among them that no
   * earlier flush() reported (it counts as reported from then on).
   */
  flush(): Promise<void> {
    if (this.#closed) return rejected(closedError())
    return this.#writes.flush()
  }

  /** Payload bytes (strings as UTF-8) written or appended, neither acknowledged nor failed; 0 once closed. */
  get pendingBytes(): number {
    return this.#closed ? 0 : this.#writes.pendingBytes
  }

  /**
   * Appends `payloads` to `partition` as one atomic batch (after a crash all of
   * it is there or none), with consecutive LSNs.
   */
  appendBatch(partition: number, payloads: Payload[]): Promise<BatchResult> {
    let parts: Uint8Array[]
    try {
      if (this.#closed) throw closedError()
      checkPartition(partition)
      if (!Array.isArray(payloads) || payloads.length === 0) throw invalidArgument('payloads', 'a non-empty array', payloads)
      const count = payloads.length
      // The engine copies each part straight from here: no joined buffer.
      parts = new Array<Uint8Array>(count)
      for (let i = 0; i < count; i++) {
        const p = checkPayload(payloads[i], `payloads[${i}]`)
        parts[i] = typeof p === 'string' ? Buffer.from(p, 'utf8') : p
      }
    } catch (e) {
      return rejected(e)
    }
    return this.#writes.appendBatch(partition, parts)
  }

  /** Makes everything appended so far durable (useful with `sync: 'none'`). */
  sync(): Promise<void> {
    if (this.#closed) return rejected(closedError())
    try {
      this.#writes.stage()
      return native.sync(this.#handle).catch(rejected<void>)
    } catch (e) {
      return rejected(e)
    }
  }

  /**
   * Reads `partition` in LSN order, across segment files. Without `follow` it
   * ends at the last acknowledged record; with it, it waits for new ones until
   * `signal` aborts or the WAL closes. Breaking out of `for await` releases it.
   * Throws `WAL_INVALID_ARGUMENT`/`WAL_CLOSED` at once; `WAL_LSN_PURGED` and
   * `WAL_LSN_OUT_OF_RANGE` reject the first `next()`.
   */
  stream(partition: number, options?: StreamOptions): WalStream {
    if (this.#closed) throw closedError()
    checkPartition(partition)
    const { start, follow, signal } = parseStreamOptions(options)
    return new RecordStream(this.#host, partition, start, follow, signal)
  }

  /**
   * The records of {@link Wal.stream}, with its options and errors, in batches of
   * consecutive LSNs holding at most `maxBytes` of payload (default 1 MiB): no JS
   * object per record unless a batch's `payload()`, `position()` or iterator makes one.
   */
  streamBatches(partition: number, options?: BatchStreamOptions): WalBatchStream {
    if (this.#closed) throw closedError()
    checkPartition(partition)
    const { start, follow, signal } = parseStreamOptions(options)
    return new BatchStream(this.#host, partition, start, follow, signal, maxBytesOf(options))
  }

  /** First retained LSN of `partition`; 0 if it is empty or unknown. */
  firstLsn(partition: number): number {
    if (this.#closed) throw closedError()
    checkPartition(partition)
    try {
      return native.firstLsn(this.#handle, partition)
    } catch (e) {
      throw toWalError(e)
    }
  }

  /** Last acknowledged LSN of `partition`; 0 if none. */
  lastLsn(partition: number): number {
    if (this.#closed) throw closedError()
    checkPartition(partition)
    try {
      return native.lastLsn(this.#handle, partition)
    } catch (e) {
      throw toWalError(e)
    }
  }

  /**
   * Deletes, oldest first, the segments of `partition` whose highest LSN is
   * below `minLsn`, stopping at the first that is not; never the active one.
   * Durable (directory synced) when it resolves.
   */
  purgeBefore(partition: number, minLsn: number): Promise<PurgeResult> {
    try {
      if (this.#closed) throw closedError()
      checkPartition(partition)
      checkLsn(minLsn, 'minLsn')
      this.#writes.stage()
      return native.purgeBefore(this.#handle, partition, minLsn).then((r) => {
        if (r.segmentsDeleted > 0) this.#streams.purged(partition)
        return r
      }, rejected<PurgeResult>)
    } catch (e) {
      return rejected(e)
    }
  }

  /**
   * Removes every record of `partition` above `lsn`; the next append gets
   * `lsn + 1`. `truncateAfter(p, 0)` empties the partition.
   */
  truncateAfter(partition: number, lsn: number): Promise<void> {
    try {
      if (this.#closed) throw closedError()
      checkPartition(partition)
      checkLsn(lsn, 'lsn')
      this.#writes.stage()
      const done = native.truncateAfter(this.#handle, partition, lsn)
      this.#writes.forgetNextLsn(partition)
      // Before the caller resumes: from then on no stream yields a removed record.
      return done.then(() => this.#streams.truncated(partition, lsn), rejected<void>)
    } catch (e) {
      return rejected(e)
    }
  }

  /** Known partitions, ascending. */
  partitions(): number[] {
    if (this.#closed) throw closedError()
    this.#writes.stage()
    try {
      return native.partitions(this.#handle)
    } catch (e) {
      throw toWalError(e)
    }
  }

  /** Segment files of `partition`, oldest first (`[]` for an unknown partition). */
  segments(partition: number): SegmentInfo[] {
    if (this.#closed) throw closedError()
    checkPartition(partition)
    this.#writes.stage()
    try {
      return native.segments(this.#handle, partition)
    } catch (e) {
      throw toWalError(e)
    }
  }

  /** Counters since open and per-partition totals. */
  stats(): WalStats {
    if (this.#closed) throw closedError()
    this.#writes.stage()
    try {
      return native.stats(this.#handle)
    } catch (e) {
      throw toWalError(e)
    }
  }

  /**
   * Completes the appends already made and makes them durable, ends follow
   * streams and releases the lock. Afterwards every call fails with
   * `WAL_CLOSED`. Closing twice is fine.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    this.#writes.stage()
    this.#closed = true
    for (const stream of [...this.#streams]) stream.interrupt()
    this.#wakeAll()
    this.#closing = this.#finishClose()
    return this.#closing
  }

  /** `await using wal = await Wal.open(dir)` closes it at the end of the scope. */
  [asyncDispose](): Promise<void> {
    return this.close()
  }

  async #finishClose(): Promise<void> {
    try {
      await native.close(this.#handle)
    } catch (e) {
      throw toWalError(e)
    } finally {
      this.#writes.close(closedError())
      native.releaseNotifier(this.#handle)
      this.#wakeAll()
    }
  }

  #wake(partition: number): void {
    const waiters = this.#waiters.get(partition)
    if (waiters === undefined || waiters.size === 0) return
    this.#waiters.delete(partition)
    for (const wake of waiters) wake()
  }

  #wakeAll(): void {
    for (const partition of [...this.#waiters.keys()]) this.#wake(partition)
  }

  #makeHost(): StreamHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const wal = this
    const handle = this.#handle
    return {
      get isClosed(): boolean {
        return wal.#closed
      },
      openReader(id: number, partition: number, start: StreamStart, first: ReadSize | undefined): Promise<ReaderHandle> {
        if (wal.#closed) return rejected(closedError())
        const [firstBytes, maxBytes] = first === undefined ? [0, 0] : [first.first, first.max]
        return 'fromLsn' in start
          ? native.openReader(handle, id, partition, start.fromLsn, false, 0, 0, firstBytes, maxBytes)
          : native.openReader(handle, id, partition, 0, true, start.segment, start.offset, firstBytes, maxBytes)
      },
      lastLsn(partition: number): number {
        return native.lastLsn(handle, partition)
      },
      addWaiter(partition: number, wake: () => void): void {
        let set = wal.#waiters.get(partition)
        if (set === undefined) {
          set = new Set()
          wal.#waiters.set(partition, set)
        }
        set.add(wake)
      },
      removeWaiter(partition: number, wake: () => void): void {
        wal.#waiters.get(partition)?.delete(wake)
      },
      track(stream: BatchReader, live: boolean): void {
        if (live) wal.#streams.add(stream)
        else wal.#streams.delete(stream)
      },
    }
  }
}
