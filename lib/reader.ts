/**
 * The one reader behind `wal.stream()` and `wal.streamBatches()`: pulls batches from a
 * native reader (one crossing per batch, the next one read while the caller consumes
 * this one), waits on the ack path in `follow` mode, ends on abort and close, drops what
 * it read ahead when a truncate removes it, and lets go of its native reader when the
 * caller drops the stream without finishing it.
 */
// Imported, not the global: `globalThis.Buffer` is a getter, called on every record.
import { Buffer } from 'node:buffer'
import { addBallast } from './ballast'
import { native, type NativeBatch, type ReadScan, type ReaderHandle } from './binding'
import type { FullBatch, WalRecord } from './batch'
import { toWalError } from './errors'

/** Where a stream starts. */
export type StreamStart = { fromLsn: number } | { segment: number; offset: number }

/** What a reader needs from its WAL (implemented by `Wal`). */
export interface StreamHost {
  /** True once `close()` was called. */
  readonly isClosed: boolean
  /**
   * `id`: the reader's {@link BatchReader.id}, what `OpenStreams.ready` is called with.
   * With `first`, the first batch is read in the same trip to the thread pool.
   */
  openReader(id: number, partition: number, start: StreamStart, first: ReadSize | undefined): Promise<ReaderHandle>
  /** The partition's last acknowledged LSN, as the engine knows it now. */
  lastLsn(partition: number): number
  /** Calls `wake` once, at the next ack of `partition` or at close. */
  addWaiter(partition: number, wake: () => void): void
  removeWaiter(partition: number, wake: () => void): void
  /** Registers a live reader so that close and truncates reach it. */
  track(reader: BatchReader, live: boolean): void
}

/** Bytes asked of the engine per read: `first`, doubling up to `max`. */
export interface ReadSize {
  first: number
  max: number
}

/**
 * The native reader, apart from the `BatchReader` so that releasing it once the reader
 * is collected does not keep the reader alive.
 */
interface Holder {
  handle: ReaderHandle | undefined
  /** A native call (open or read) is running: release when it settles, not before. */
  busy: boolean
}

function release(holder: Holder): void {
  const handle = holder.handle
  if (handle !== undefined && !holder.busy) {
    holder.handle = undefined
    native.readerRelease(handle)
    trimPoolsLater(0)
  }
}

let trimTimer: ReturnType<typeof setTimeout> | undefined

/**
 * Batch memory stays pooled for a few seconds after the last reader closes (a stream
 * that follows soon reads into warm memory); this gives it back once that time is up.
 * The timer never keeps the process alive.
 */
function trimPoolsLater(ms: number): void {
  if (trimTimer !== undefined) return
  trimTimer = setTimeout(() => {
    trimTimer = undefined
    const wait = native.trimReadPools()
    if (wait > 0) trimPoolsLater(wait)
  }, ms)
  trimTimer.unref()
}

/**
 * Batches the native reader keeps ready beyond the one being consumed. Two let the pool
 * thread read on while the caller consumes one and takes the next without a hop; more
 * only hold more memory (each batch up to `maxBytes`).
 */
const READ_AHEAD = 2

let lastId = 0

export class BatchReader {
  /** Names this reader to the read notifier. */
  readonly id = (lastId = (lastId + 1) >>> 0)
  /** The batch being consumed; its records `at` .. `end - 1` are still to come. */
  batch: FullBatch | undefined
  at = 0
  end = 0
  // The current batch's fields, read once per batch rather than once per record.
  #buffer: ArrayBuffer = new ArrayBuffer(0)
  #base = 0
  #index: Uint32Array = new Uint32Array(0)
  #count = 0
  #firstLsn = 0
  #segment = 0
  #offsetBase = 0
  readonly holder: Holder = { handle: undefined, busy: false }
  #finished = false
  /** LSN after the last record the caller gets from batches taken so far (0: none taken). */
  #resume = 0
  /** The native reader's fill, while one runs (settles when it stops, never rejects). */
  #filling: Promise<void> | undefined
  /** Why the last fill failed as a call (not a read: those are items), until thrown. */
  #fillError: unknown
  /** Ends the wait for a batch: at the notifier's call, when the fill stops, or at interrupt. */
  #onReady: (() => void) | undefined
  /** A truncate or purge resolved since what was read ahead was last dropped: it may hold removed records. */
  #stale = false
  /** Truncates seen so far (a follow wait ends at one). */
  #cuts = 0
  /** Where the next fill starts again (0: where the native reader is). */
  #rewindTo = 0
  #wake: (() => void) | undefined

  constructor(
    private readonly host: StreamHost,
    readonly partition: number,
    private readonly start: StreamStart,
    private readonly follow: boolean,
    readonly signal: AbortSignal | undefined,
    private readonly size: ReadSize,
  ) {
    host.track(this, true)
  }

  /** Takes the next batch with records into `batch` (`at` 0); false at the end (or on abort/close). */
  async advance(): Promise<boolean> {
    this.batch = undefined
    this.at = 0
    this.end = 0
    for (;;) {
      if (this.#stopped()) return this.#end()
      let b: NativeBatch | null
      try {
        if (this.holder.handle === undefined) {
          this.holder.busy = true
          try {
            this.holder.handle = await this.host.openReader(this.id, this.partition, this.start, this.size)
          } finally {
            this.holder.busy = false
          }
          if (this.#stopped()) return this.#end()
        }
        if (this.#stale) {
          // Read before the truncate or purge was known: drop it, and read again from the
          // caller; the engine judges that place against the cut or the purged segments.
          if (this.#filling !== undefined) {
            await this.#filling
            continue
          }
          this.#fillError = undefined
          this.#stale = false
          const first = native.readerDiscard(this.holder.handle)
          if (this.#rewindTo === 0) this.#rewindTo = first
        }
        b = native.readerTake(this.holder.handle)
        if (b === null) {
          if (this.#fillError !== undefined) {
            const e = this.#fillError
            this.#fillError = undefined
            throw e
          }
          const ready = new Promise<void>((resolve) => (this.#onReady = resolve))
          if (this.#filling === undefined) this.#fill()
          await ready
          continue
        }
      } catch (e) {
        const stopped = this.#stopped()
        this.finish()
        if (stopped) return false
        throw toWalError(e)
      }
      if (b.count !== undefined && b.count > 0) {
        const full = b as FullBatch
        this.batch = full
        this.at = 0
        this.end = full.count
        this.#buffer = full.data.buffer as ArrayBuffer
        this.#base = full.data.byteOffset
        this.#index = full.index
        this.#count = full.count
        this.#firstLsn = full.firstLsn
        this.#segment = full.segment
        this.#offsetBase = full.offsetBase
        // Read on while the caller consumes this one, from the second batch on: a stream
        // opened for its first records (a seek, a tail) must not leave reads behind that
        // hold a pool thread and a core its next step needs (bench table 8: a seek took
        // 398 us with them, against 306 on 648d61e).
        const readOn = this.#resume !== 0
        this.#resume = b.firstLsn! + b.count
        addBallast()
        if (readOn && this.#filling === undefined) this.#fill()
        return true
      }
      if (!this.follow || !(await this.#waitFor(b.nextLsn))) return this.#end()
    }
  }

  /**
   * Reads the rest of the partition through the engine alone and ends the reader: what
   * `advance()` would have delivered, at the rate the engine reads it (the bench's
   * measure of the batch path's overhead). Not part of the API.
   */
  async scan(): Promise<ReadScan> {
    if (this.#stopped()) return { records: 0, bytes: 0, seconds: 0, cpuSeconds: 0 }
    const holder = this.holder
    holder.busy = true
    try {
      holder.handle ??= await this.host.openReader(this.id, this.partition, this.start, undefined)
      return await native.readerScan(holder.handle, this.size.max)
    } catch (e) {
      throw toWalError(e)
    } finally {
      holder.busy = false
      this.finish()
    }
  }

  /** The next record of the current batch (the caller checked `at < end`). */
  takeRecord(): WalRecord {
    const i = this.at++
    const start = this.#index[i]!
    return {
      lsn: this.#firstLsn + i,
      // Cheaper than `subarray` (no species lookup).
      payload: Buffer.from(this.#buffer, this.#base + start, this.#index[this.#count + i]!),
      segment: this.#segment,
      offset: this.#offsetBase + start,
    }
  }

  /**
   * `truncateAfter(partition, lsn)` has resolved: no removed record may be handed out
   * from now on. Records of the current batch above `lsn` are dropped, reads made ahead
   * are read again from where the caller is, and the engine judges that place against
   * the cut (going on, or `WAL_LSN_OUT_OF_RANGE`): the decision is the engine's.
   */
  truncated(lsn: number): void {
    if (this.#finished) return
    const b = this.batch
    const inBatch = b !== undefined && this.at < this.end
    const next = inBatch ? b.firstLsn + this.at : this.#resume
    if (inBatch) this.end = next <= lsn + 1 ? Math.min(this.end, lsn + 1 - b.firstLsn) : this.at
    if (this.#resume !== 0) this.#resume = next <= lsn + 1 ? Math.min(this.#resume, lsn + 1) : next
    this.#dropReadAhead()
    this.#cuts++
    this.#wake?.()
  }

  /** The native reader has a batch ready for the caller (the read notifier). */
  ready(): void {
    const ready = this.#onReady
    this.#onReady = undefined
    ready?.()
  }

  /**
   * `purgeBefore(partition, …)` has deleted segments: batches read ahead of the caller may
   * come from them, and API.md has a stream that had not reached a purged segment reject
   * its next step there. They are dropped, like a truncate's, and read again from where
   * the caller is (after the batch in its hands, which it may finish): the engine then
   * judges that place (going on, or `WAL_LSN_PURGED`).
   */
  purged(): void {
    if (!this.#finished) this.#dropReadAhead()
  }

  /** What was read ahead is dropped at the next step, and read again from `#resume`. */
  #dropReadAhead(): void {
    this.#rewindTo = this.#resume
    this.#stale = true
  }

  /** Called by the WAL on close and by the abort signal: end at the next step. */
  interrupt(): void {
    this.#wake?.()
    this.ready()
    // Safe while a native call runs: the reader is released when it settles.
    this.finish()
  }

  /** Ends the reader and releases its native reader (now, or when its native call settles). */
  finish(): void {
    if (!this.#finished) {
      this.#finished = true
      this.host.track(this, false)
    }
    this.#wake?.()
    this.batch = undefined
    this.at = 0
    this.end = 0
    release(this.holder)
  }

  #end(): false {
    this.finish()
    return false
  }

  #stopped(): boolean {
    return this.#finished || this.host.isClosed || this.signal?.aborted === true
  }

  #fill(): void {
    const holder = this.holder
    holder.busy = true
    const rewind = this.#rewindTo
    this.#rewindTo = 0
    const settled = (): void => {
      holder.busy = false
      this.#filling = undefined
      if (this.#finished) release(holder)
      const ready = this.#onReady
      this.#onReady = undefined
      ready?.()
    }
    this.#filling = native.readerFill(holder.handle!, this.size.first, this.size.max, READ_AHEAD, rewind).then(settled, (e: unknown) => {
      this.#fillError = e
      settled()
    })
  }

  /** Resolves true once `lsn` is acknowledged (or a truncate may have changed what to read), false on abort/close. */
  #waitFor(lsn: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const cuts = this.#cuts
      const check = (): void => {
        this.#wake = undefined
        if (this.#stopped()) return resolve(false)
        if (this.#cuts !== cuts) return resolve(true)
        let last: number
        try {
          last = this.host.lastLsn(this.partition)
        } catch {
          return resolve(false)
        }
        if (last >= lsn) return resolve(true)
        this.#wake = wake
        this.host.addWaiter(this.partition, wake)
      }
      const wake = (): void => {
        this.host.removeWaiter(this.partition, wake)
        check()
      }
      check()
    })
  }
}

/** What is released when a reader is collected unfinished. */
interface Collected {
  id: number
  partition: number
  ref: WeakRef<BatchReader>
  holder: Holder
  signal: AbortSignal | undefined
  onAbort: () => void
}

/**
 * The WAL's open readers, held weakly: a stream read part way with `next()` and then
 * dropped is collected like any object, and its native reader (file position, batch
 * memory claims) is released then, not at `close()`.
 */
export class OpenStreams implements Iterable<BatchReader> {
  readonly #byPartition = new Map<number, Set<WeakRef<BatchReader>>>()
  readonly #byId = new Map<number, WeakRef<BatchReader>>()
  readonly #entries = new WeakMap<BatchReader, Collected>()
  readonly #registry = new FinalizationRegistry<Collected>((c) => {
    this.#forget(c)
    release(c.holder)
  })

  add(reader: BatchReader): void {
    const ref = new WeakRef(reader)
    // Through a weak reference too: a long-lived signal must not keep the stream alive.
    const onAbort = (): void => ref.deref()?.interrupt()
    const c: Collected = { id: reader.id, partition: reader.partition, ref, holder: reader.holder, signal: reader.signal, onAbort }
    reader.signal?.addEventListener('abort', onAbort, { once: true })
    let set = this.#byPartition.get(c.partition)
    if (set === undefined) {
      set = new Set()
      this.#byPartition.set(c.partition, set)
    }
    set.add(ref)
    this.#byId.set(reader.id, ref)
    this.#entries.set(reader, c)
    this.#registry.register(reader, c, reader)
  }

  delete(reader: BatchReader): void {
    const c = this.#entries.get(reader)
    if (c === undefined) return
    this.#entries.delete(reader)
    this.#registry.unregister(reader)
    this.#forget(c)
  }

  /** Reader `id` has a batch ready (the read notifier). */
  ready(id: number): void {
    this.#byId.get(id)?.deref()?.ready()
  }

  /** Tells every open reader of `partition` that some of its oldest segments are gone. */
  purged(partition: number): void {
    for (const reader of this.#of(partition)) reader.purged()
  }

  /** Tells every open reader of `partition` that the records above `lsn` are gone. */
  truncated(partition: number, lsn: number): void {
    for (const reader of this.#of(partition)) reader.truncated(lsn)
  }

  /** The live readers of `partition`, taken before any is told (telling one may end it). */
  #of(partition: number): BatchReader[] {
    return [...(this.#byPartition.get(partition) ?? [])].flatMap((ref) => ref.deref() ?? [])
  }

  *[Symbol.iterator](): IterableIterator<BatchReader> {
    for (const set of this.#byPartition.values()) {
      for (const ref of set) {
        const r = ref.deref()
        if (r !== undefined) yield r
      }
    }
  }

  #forget(c: Collected): void {
    c.signal?.removeEventListener('abort', c.onAbort)
    this.#byId.delete(c.id)
    const set = this.#byPartition.get(c.partition)
    set?.delete(c.ref)
    if (set?.size === 0) this.#byPartition.delete(c.partition)
  }
}
