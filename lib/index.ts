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
import { ACK_ACKED, ACK_HEADER, POSITION_WIDTH, native, type ReaderHandle, type WalHandle } from './binding'
import { WalError, closedError, fromDetail, invalidArgument, toWalError } from './errors'
import { PendingQueue, type AppendResult, type BatchResult, type Reject, type Resolve } from './pending'
import { OpenStreams, type BatchReader } from './reader'
import { BatchStream, RecordStream, maxBytesOf, type BatchStreamOptions, type StreamHost, type StreamOptions, type StreamStart, type WalBatchStream, type WalRecord, type WalStream } from './stream'
import type { PurgeResult, SegmentInfo, WalStats } from './types'

export { WalError } from './errors'
export type { WalErrorCode, WalErrorDetails } from './errors'
export type { AppendResult, BatchResult } from './pending'
export type { BatchStreamOptions, RecordBatch, StreamOptions, WalBatchStream, WalRecord, WalStream } from './stream'
export type { PartitionStats, PurgeResult, SegmentInfo, WalStats } from './types'

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

/** A payload: bytes, or a string stored as UTF-8. */
export type Payload = Buffer | Uint8Array | string

const MIN_SEGMENT_SIZE = 1024
const MAX_SEGMENT_SIZE = 4 * 1024 * 1024 * 1024
const DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024
const MAX_PARTITION = 65535
/** The longest sync interval: setTimeout's limit (about 24.8 days). */
const MAX_INTERVAL_MS = 2147483647
/**
 * Payloads up to this size are staged: copied into one buffer and handed to
 * the engine in one crossing per tick (or when the buffer fills). Larger ones
 * cross on their own, after the staged ones.
 */
const STAGE_MAX_RECORD = 64 * 1024
const STAGE_BYTES = 1024 * 1024
const STAGE_RECORDS = 8192
/** Promises resolved per event-loop turn at most; the rest of an ack group waits a turn. */
const ACK_SLICE = 16384
/** Initial size of the array acks are copied into (grows on demand). */
const ACK_BUFFER_NUMBERS = 1 << 14

const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')

// One executor for every append promise: it parks the resolvers here so that
// append() allocates no closure of its own.
let parkedResolve: Resolve | undefined
let parkedReject: Reject | undefined
function parkResolvers(resolve: Resolve, reject: Reject): void {
  parkedResolve = resolve
  parkedReject = reject
}
function newPending<T extends AppendResult | BatchResult>(): Promise<T> {
  return new Promise<T>(parkResolvers as (resolve: (value: T) => void, reject: Reject) => void)
}

function checkPartition(partition: unknown): number {
  if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0 || partition > MAX_PARTITION) {
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

/** True for a typed array whose buffer was transferred away (reads as empty). */
function isDetached(bytes: Uint8Array): boolean {
  if (bytes.byteLength !== 0) return false
  try {
    new Uint8Array(bytes.buffer, 0, 0)
    return false
  } catch {
    return true
  }
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
  /** Pending appends per partition. */
  readonly #queues = new Map<number, PendingQueue>()
  /** Truncates per partition since open (the engine's ack generations). */
  readonly #generations = new Map<number, number>()
  /** Appends in flight, all partitions. */
  #inFlight = 0
  #acks = new Float64Array(ACK_BUFFER_NUMBERS)
  /** The part of `#acks` not processed yet (see `#onAcks`). */
  #ackAt = 0
  #ackEnd = 0
  #ackResume = false
  /** Errors of failed ack events not consumed yet (same order as the events). */
  #ackErrors: string[] = []
  /** Follow streams waiting for an ack, per partition. */
  #waiters = new Map<number, Set<() => void>>()
  readonly #streams = new OpenStreams()
  // Appends of this tick not yet handed to the engine (see STAGE_MAX_RECORD).
  readonly #stageData = Buffer.allocUnsafe(STAGE_BYTES)
  #stageBytes = 0
  #stageCount = 0
  readonly #stageLengths = new Uint32Array(STAGE_RECORDS)
  readonly #stagePartitions = new Uint16Array(STAGE_RECORDS)
  readonly #stageLsns = new Float64Array(STAGE_RECORDS)
  readonly #stageResolvers = new Array<Resolve | undefined>(STAGE_RECORDS)
  readonly #stageRejecters = new Array<Reject | undefined>(STAGE_RECORDS)
  #flushQueued = false
  readonly #flushTask = (): void => {
    this.#flushQueued = false
    this.#flush()
  }
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
    native.setNotifier(handle, () => this.#onAcks())
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
    let length: number
    try {
      checkPartition(partition)
      if (typeof payload === 'string') {
        const worst = payload.length * 3
        if (worst > STAGE_MAX_RECORD) return this.#appendDirect(partition, payload)
        if (this.#stageBytes + worst > STAGE_BYTES || this.#stageCount === STAGE_RECORDS) this.#flush()
        length = this.#stageData.write(payload, this.#stageBytes, 'utf8')
      } else if (payload instanceof Uint8Array) {
        length = payload.byteLength
        if (length === 0 && isDetached(payload)) throw invalidArgument('payload', 'not detached', payload)
        if (length > STAGE_MAX_RECORD) return this.#appendDirect(partition, payload)
        if (this.#stageBytes + length > STAGE_BYTES || this.#stageCount === STAGE_RECORDS) this.#flush()
        this.#stageData.set(payload, this.#stageBytes)
      } else {
        throw invalidArgument('payload', 'a Buffer, Uint8Array or string', payload)
      }
    } catch (e) {
      return rejected(e)
    }
    const i = this.#stageCount++
    this.#stageBytes += length
    this.#stageLengths[i] = length
    this.#stagePartitions[i] = partition
    const promise = newPending<AppendResult>()
    this.#stageResolvers[i] = parkedResolve
    this.#stageRejecters[i] = parkedReject
    if (this.#inFlight++ === 0) native.setRef(this.#handle, true)
    if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flushTask)
    }
    return promise
  }

  /**
   * Appends `payloads` to `partition` as one atomic batch (after a crash all of
   * it is there or none), with consecutive LSNs.
   */
  appendBatch(partition: number, payloads: Payload[]): Promise<BatchResult> {
    let first: number
    let count: number
    try {
      if (this.#closed) throw closedError()
      checkPartition(partition)
      if (!Array.isArray(payloads) || payloads.length === 0) throw invalidArgument('payloads', 'a non-empty array', payloads)
      count = payloads.length
      // The engine copies each part straight from here: no joined buffer.
      const parts = new Array<Uint8Array>(count)
      for (let i = 0; i < count; i++) {
        const p = checkPayload(payloads[i], `payloads[${i}]`)
        parts[i] = typeof p === 'string' ? Buffer.from(p, 'utf8') : p
      }
      this.#flush()
      first = native.appendBatch(this.#handle, partition, parts)
    } catch (e) {
      return rejected(e)
    }
    const promise = newPending<BatchResult>()
    this.#enqueue(partition, first, first + count - 1)
    return promise
  }

  /** Makes everything appended so far durable (useful with `sync: 'none'`). */
  sync(): Promise<void> {
    if (this.#closed) return rejected(closedError())
    try {
      this.#flush()
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
      this.#flush()
      return native.purgeBefore(this.#handle, partition, minLsn).catch(rejected<PurgeResult>)
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
      this.#flush()
      const done = native.truncateAfter(this.#handle, partition, lsn)
      this.#generations.set(partition, (this.#generations.get(partition) ?? 0) + 1)
      // Before the caller resumes: from then on no stream yields a removed record.
      return done.then(() => this.#streams.truncated(partition, lsn), rejected<void>)
    } catch (e) {
      return rejected(e)
    }
  }

  /** Known partitions, ascending. */
  partitions(): number[] {
    if (this.#closed) throw closedError()
    this.#flush()
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
    this.#flush()
    try {
      return native.segments(this.#handle, partition)
    } catch (e) {
      throw toWalError(e)
    }
  }

  /** Counters since open and per-partition totals. */
  stats(): WalStats {
    if (this.#closed) throw closedError()
    this.#flush()
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
    this.#flush()
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
      this.#onAcks(true)
      if (this.#inFlight > 0) {
        const err = closedError()
        for (const queue of this.#queues.values()) this.#inFlight -= queue.failAll(err)
      }
      native.releaseNotifier(this.#handle)
      this.#wakeAll()
    }
  }

  /** A large payload: crosses on its own, after the staged appends. */
  #appendDirect(partition: number, payload: Uint8Array | string): Promise<AppendResult> {
    let lsn: number
    try {
      this.#flush()
      lsn =
        typeof payload === 'string'
          ? native.appendString(this.#handle, partition, payload)
          : native.append(this.#handle, partition, payload)
    } catch (e) {
      return rejected(e)
    }
    const promise = newPending<AppendResult>()
    this.#enqueue(partition, 0, lsn)
    return promise
  }

  /** Hands the staged appends to the engine (one crossing) and queues them for their acks. */
  #flush(): void {
    const n = this.#stageCount
    if (n === 0) return
    this.#stageCount = 0
    this.#stageBytes = 0
    const lsns = this.#stageLsns
    const resolvers = this.#stageResolvers
    const rejecters = this.#stageRejecters
    let errors: string[] | null
    try {
      errors = native.appendMany(this.#handle, this.#stageData, this.#stageLengths, this.#stagePartitions, n, lsns)
    } catch (e) {
      const err = toWalError(e)
      for (let i = 0; i < n; i++) {
        const reject = rejecters[i]!
        resolvers[i] = undefined
        rejecters[i] = undefined
        reject(err)
      }
      this.#settled(n)
      return
    }
    const partitions = this.#stagePartitions
    let failed = 0
    let queue: PendingQueue | undefined
    let queued = -1
    let generation = 0
    for (let i = 0; i < n; i++) {
      const resolve = resolvers[i]!
      const reject = rejecters[i]!
      resolvers[i] = undefined
      rejecters[i] = undefined
      const lsn = lsns[i]!
      if (lsn < 0) {
        failed++
        const detail = errors?.[-lsn - 1]
        reject(detail === undefined ? new WalError('WAL_IO_ERROR', 'append failed') : fromDetail(detail))
        continue
      }
      const partition = partitions[i]!
      if (partition !== queued) {
        queue = this.#queue(partition)
        queued = partition
        generation = this.#generations.get(partition) ?? 0
      }
      queue!.push(0, lsn, generation, resolve, reject)
    }
    if (failed > 0) this.#settled(failed)
  }

  /** `count` appends left the in-flight set without an ack. */
  #settled(count: number): void {
    this.#inFlight -= count
    if (this.#inFlight === 0 && !this.#closed) native.setRef(this.#handle, false)
  }

  #queue(partition: number): PendingQueue {
    let queue = this.#queues.get(partition)
    if (queue === undefined) {
      queue = new PendingQueue()
      this.#queues.set(partition, queue)
    }
    return queue
  }

  #enqueue(partition: number, first: number, last: number): void {
    this.#queue(partition).push(first, last, this.#generations.get(partition) ?? 0, parkedResolve!, parkedReject!)
    if (this.#inFlight++ === 0) native.setRef(this.#handle, true)
  }

  /** The notifier: takes every ack the engine has and settles the appends. */
  #onAcks(all = false): void {
    const handle = this.#handle
    // Resolving a huge group at once would hold the event loop for tens of
    // milliseconds; past this many promises the rest waits for the next turn.
    let budget = all ? Infinity : ACK_SLICE
    for (;;) {
      if (this.#ackAt >= this.#ackEnd) {
        let n: number
        try {
          n = native.takeAcks(handle, this.#acks)
        } catch {
          return
        }
        if (n < 0) {
          this.#acks = new Float64Array(Math.max(-n, this.#acks.length * 2))
          continue
        }
        if (n === 0) break
        this.#ackAt = 0
        this.#ackEnd = n
      }
      if (budget <= 0) {
        if (!this.#ackResume) {
          this.#ackResume = true
          setImmediate(() => {
            this.#ackResume = false
            this.#onAcks()
          })
        }
        return
      }
      const acks = this.#acks
      const partition = acks[this.#ackAt]!
      const kind = acks[this.#ackAt + 1]!
      const a = acks[this.#ackAt + 2]!
      const generation = acks[this.#ackAt + 3]!
      const count = acks[this.#ackAt + 4]!
      const positions = this.#ackAt + ACK_HEADER
      this.#ackAt = positions + count * POSITION_WIDTH
      const queue = this.#queues.get(partition)
      if (kind === ACK_ACKED) {
        if (queue !== undefined && queue.size > 0) {
          const resolved = queue.ack(a, generation, acks, positions, count)
          this.#inFlight -= resolved
          budget -= resolved
        }
      } else {
        if (this.#ackErrors.length === 0) this.#ackErrors = native.takeAckErrors(handle)
        const detail = this.#ackErrors.shift()
        const err = detail === undefined ? new WalError('WAL_IO_ERROR', 'append failed') : fromDetail(detail)
        // Every append of the partition not acknowledged by an earlier event failed,
        // whatever its LSN (appends made after a truncate have lower ones).
        if (queue !== undefined) this.#inFlight -= queue.failAll(err)
      }
      this.#wake(partition)
    }
    if (this.#inFlight === 0 && !this.#closed) native.setRef(handle, false)
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
      openReader(partition: number, start: StreamStart): Promise<ReaderHandle> {
        if (wal.#closed) return rejected(closedError())
        return 'fromLsn' in start
          ? native.openReader(handle, partition, start.fromLsn, false, 0, 0)
          : native.openReader(handle, partition, 0, true, start.segment, start.offset)
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
