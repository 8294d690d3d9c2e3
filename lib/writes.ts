/**
 * The write side of the facade: staging records for the engine (one crossing
 * per tick), settling them from the engine's ack events, `flush()` and its
 * failure reporting, `pendingBytes`.
 *
 * Which records an ack event settles is the engine's word alone: an event
 * settles the next `count` records the partition staged (see pending.ts).
 * The facade hands out a `write()`'s LSN before the record reaches the
 * engine, from its own count of the partition's next LSN; the engine stages
 * such a record only at exactly that LSN, so a count gone stale can fail a
 * record but never renumber one. It goes stale only when a failure makes the
 * engine resume after its last acknowledged record, and the engine refuses
 * every record of that partition from then until the facade has taken the
 * failure's event (`takeAcks` hands every event over at once).
 */
import { ACK_FAILED, ACK_HEADER, POSITION_WIDTH, native, type WalHandle } from './binding'
import { WalError, closedError, fromNative, invalidArgument, toWalError, type NativeErrorDetail } from './errors'
import {
  PartitionWrites,
  takeResult,
  type AckEventRef,
  type AppendResult,
  type BatchResult,
  type Failure,
  type Refusal,
  type Reject,
  type Resolve,
  type SettleSink,
} from './pending'

/**
 * Payloads up to this size are staged: copied into one buffer and handed to
 * the engine in one crossing per tick (or when the buffer fills). Larger ones
 * cross on their own, after the staged ones.
 */
const STAGE_MAX_RECORD = 64 * 1024
/**
 * Staged records are handed over when this many bytes or records are waiting, even in
 * the middle of a tick: the writer thread starts on them while the caller goes on
 * writing, instead of idling until the tick ends (a flush() then waits only for the
 * last few).
 */
const STAGE_BYTES = 512 * 1024
const STAGE_RECORDS = 2048
/** Promises settled per event-loop turn at most (one crossing's worth); the rest waits a turn. */
const ACK_SLICE = 2048
/** Each partition with news gets at least this share of a turn's budget, so a quiet one never waits behind busy ones. */
const MIN_SHARE = 64
/** Initial size of the array acks are copied into (grows on demand). */
const ACK_BUFFER_NUMBERS = 1 << 14
const NO_ACKS = new Float64Array(0)

/**
 * `TypedArray.prototype.set`, called as a constant: `stage.set(...)` is a generic property
 * load in optimized code, once per record (V8 does not fold `set` through these prototypes).
 */
const copyInto = Uint8Array.prototype.set

/** A payload: bytes, or a string stored as UTF-8. */
export type Payload = Buffer | Uint8Array | string

// One executor for every batch promise: it parks the resolvers here so that
// appendBatch() allocates no closure of its own.
let parkedResolve: Resolve | undefined
let parkedReject: Reject | undefined
function parkResolvers(resolve: Resolve, reject: Reject): void {
  parkedResolve = resolve
  parkedReject = reject
}
function newPending<T extends AppendResult | BatchResult>(): Promise<T> {
  return new Promise<T>(parkResolvers as (resolve: (value: T) => void, reject: Reject) => void)
}

/** True for a typed array whose buffer was transferred away (reads as empty). */
export function isDetached(bytes: Uint8Array): boolean {
  if (bytes.byteLength !== 0) return false
  try {
    new Uint8Array(bytes.buffer, 0, 0)
    return false
  } catch {
    return true
  }
}

/** A `flush()` waiting for the records staged before it. */
interface FlushWaiter {
  readonly seq: number
  /** Per partition it waits on: how many of its records must be settled. */
  readonly targets: Map<number, number>
  remaining: number
  readonly resolve: () => void
  readonly reject: (e: WalError) => void
}

/** The write side of one open WAL. */
export class Writes implements SettleSink {
  readonly #handle: WalHandle
  readonly #wake: (partition: number) => void
  readonly #parts = new Array<PartitionWrites | undefined>(65536)
  /** Partitions with records neither acknowledged nor failed. */
  readonly #open = new Set<PartitionWrites>()
  /** Partitions with ack events not processed yet (round-robin order). */
  readonly #busy = new Set<PartitionWrites>()
  /** Failures no flush() has reported, oldest first. */
  readonly #failures: Failure[] = []
  #seq = 0
  /** Records neither acknowledged nor failed, all partitions (keeps the loop alive). */
  #inFlight = 0
  #waiters = 0
  #pendingBytes = 0
  #closed = false
  readonly #stageMax: number
  // Records of this tick not yet handed to the engine.
  readonly #stageData = Buffer.allocUnsafe(STAGE_BYTES)
  #stageBytes = 0
  #stageCount = 0
  readonly #stageLengths = new Uint32Array(STAGE_RECORDS)
  readonly #stagePartitions = new Uint16Array(STAGE_RECORDS)
  /** In: 0 for an append, the LSN handed out for a write. Out: the engine's answer. */
  readonly #stageLsns = new Float64Array(STAGE_RECORDS)
  /** 1 for a written record, 0 for an append (`#stageLsns` is overwritten by the crossing). */
  readonly #stageWrites = new Uint8Array(STAGE_RECORDS)
  #flushQueued = false
  /** Crossings so far: the appends of one partition in one crossing share a group (see AppendGroup). */
  #crossings = 0
  readonly #flushTask = (): void => {
    this.#flushQueued = false
    this.stage()
  }
  #acks = new Float64Array(ACK_BUFFER_NUMBERS)
  /** Unprocessed events may still point into `#acks`: the next take must not overwrite it. */
  #acksHeld = false
  #resumeQueued = false
  readonly #resume = (): void => {
    this.#resumeQueued = false
    this.onAcks()
  }

  constructor(handle: WalHandle, wake: (partition: number) => void) {
    this.#handle = handle
    this.#wake = wake
    this.#stageMax = Math.min(STAGE_MAX_RECORD, native.maxPayload(handle))
  }

  /** Payload bytes neither acknowledged nor failed; 0 once closed. */
  get pendingBytes(): number {
    return this.#closed ? 0 : this.#pendingBytes
  }

  #part(partition: number): PartitionWrites {
    let ps = this.#parts[partition]
    if (ps === undefined) {
      ps = new PartitionWrites(partition)
      this.#parts[partition] = ps
    }
    return ps
  }

  /** Room in the staging buffer for `bytes` more (hands the staged records over if not). */
  #room(bytes: number): void {
    if (this.#stageBytes + bytes > STAGE_BYTES || this.#stageCount === STAGE_RECORDS) this.stage()
  }

  /**
   * Queues a staged record (its bytes are at `#stageBytes`); its entry is already in the
   * partition's FIFO (see `stage()` for what happens when the engine refuses it).
   */
  #staged(ps: PartitionWrites, length: number, lsn: number): void {
    const i = this.#stageCount++
    this.#stageBytes += length
    this.#stageLengths[i] = length
    this.#stagePartitions[i] = ps.partition
    this.#stageLsns[i] = lsn
    this.#stageWrites[i] = lsn === 0 ? 0 : 1
    this.#counted(ps, length)
  }

  /** A record of `length` payload bytes joined this tick's staging. */
  #counted(ps: PartitionWrites, length: number): void {
    if (!ps.listed) this.#list(ps)
    ps.issued++
    this.#pendingBytes += length
    if (this.#inFlight++ === 0) native.setRef(this.#handle, true)
    if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(this.#flushTask)
    }
  }

  /** `wal.write()`: arguments are checked by the caller, except the payload. */
  write(partition: number, payload: Payload): number {
    const ps = this.#parts[partition] ?? this.#part(partition)
    if (ps.unreported.length !== 0) throw ps.unreported[0]!.error
    if (ps.refusing !== undefined) throw ps.refusing
    // The common case inline (bytes that fit the staging); the rest below.
    if (!(payload instanceof Uint8Array)) return this.#writeOther(ps, payload)
    // `length` equals `byteLength` for a Uint8Array and is several times cheaper to read
    // (V8 inlines it; `byteLength` goes through a generic load on Buffers).
    const length = payload.length
    if (length === 0 || length > this.#stageMax) return this.#writeOther(ps, payload)
    let lsn = ps.nextLsn
    if (lsn === 0) lsn = this.#nextLsn(ps)
    let at = this.#stageBytes
    let i = this.#stageCount
    if (at + length > STAGE_BYTES || i === STAGE_RECORDS) {
      this.stage()
      at = 0
      i = 0
    }
    copyInto.call(this.#stageData, payload, at)
    this.#stageBytes = at + length
    this.#stageCount = i + 1
    this.#stageLengths[i] = length
    this.#stagePartitions[i] = partition
    this.#stageLsns[i] = lsn
    this.#stageWrites[i] = 1
    ps.nextLsn = lsn + 1
    ps.pushWrites(1)
    this.#counted(ps, length)
    return lsn
  }

  /** write() of a string, an empty or a large payload, or a wrong one. */
  #writeOther(ps: PartitionWrites, payload: Payload): number {
    if (this.#closed) throw closedError()
    let length: number
    if (typeof payload === 'string') {
      let worst = payload.length * 3
      if (worst > this.#stageMax) {
        worst = Buffer.byteLength(payload, 'utf8')
        if (worst > this.#stageMax) return this.#writeDirect(ps, payload)
      }
      const lsn = this.#nextLsn(ps)
      this.#room(worst)
      length = this.#stageData.write(payload, this.#stageBytes, 'utf8')
      ps.nextLsn = lsn + 1
      ps.pushWrites(1)
      this.#staged(ps, length, lsn)
      return lsn
    }
    if (!(payload instanceof Uint8Array)) throw invalidArgument('payload', 'a Buffer, Uint8Array or string', payload)
    length = payload.byteLength
    if (length === 0 && isDetached(payload)) throw invalidArgument('payload', 'a Buffer, Uint8Array or string (not detached)', payload)
    if (length > this.#stageMax) return this.#writeDirect(ps, payload)
    const lsn = this.#nextLsn(ps)
    this.#room(length)
    ps.nextLsn = lsn + 1
    ps.pushWrites(1)
    this.#staged(ps, length, lsn)
    return lsn
  }

  #nextLsn(ps: PartitionWrites): number {
    if (ps.nextLsn !== 0) return ps.nextLsn
    // Records staged earlier this tick are not counted by the engine yet.
    this.stage()
    try {
      ps.nextLsn = native.nextLsn(this.#handle, ps.partition)
    } catch (e) {
      throw toWalError(e)
    }
    return ps.nextLsn
  }

  /** A large written record: crosses on its own (the engine throws what it refuses). */
  #writeDirect(ps: PartitionWrites, payload: Uint8Array | string): number {
    this.stage()
    let lsn: number
    try {
      lsn =
        typeof payload === 'string'
          ? native.writeString(this.#handle, ps.partition, payload)
          : native.write(this.#handle, ps.partition, payload)
    } catch (e) {
      throw this.#refusal(ps, e)
    }
    ps.nextLsn = lsn + 1
    ps.issued++
    ps.pushWrites(1)
    if (!ps.listed) this.#list(ps)
    this.#pendingBytes += typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.byteLength
    if (this.#inFlight++ === 0) native.setRef(this.#handle, true)
    return lsn
  }

  /** `wal.append()`: the partition is checked by the caller. */
  append(partition: number, payload: Payload): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(closedError())
    let length: number
    const ps = this.#part(partition)
    if (typeof payload === 'string') {
      let worst = payload.length * 3
      if (worst > this.#stageMax) {
        worst = Buffer.byteLength(payload, 'utf8')
        if (worst > this.#stageMax) return this.#appendDirect(ps, payload)
      }
      this.#room(worst)
      length = this.#stageData.write(payload, this.#stageBytes, 'utf8')
    } else if (payload instanceof Uint8Array) {
      length = payload.length
      if (length === 0 && isDetached(payload)) {
        return Promise.reject(invalidArgument('payload', 'a Buffer, Uint8Array or string (not detached)', payload))
      }
      if (length > this.#stageMax) return this.#appendDirect(ps, payload)
      this.#room(length)
      copyInto.call(this.#stageData, payload, this.#stageBytes)
    } else {
      return Promise.reject(invalidArgument('payload', 'a Buffer, Uint8Array or string', payload))
    }
    if (ps.nextLsn !== 0) ps.nextLsn++
    const group = ps.pushAppend(this.#crossings)
    this.#staged(ps, length, 0)
    return group.promise.then(takeResult)
  }

  /** A large payload: crosses on its own, after the staged records. */
  #appendDirect(ps: PartitionWrites, payload: Uint8Array | string): Promise<AppendResult> {
    let lsn: number
    try {
      this.stage()
      lsn =
        typeof payload === 'string'
          ? native.appendString(this.#handle, ps.partition, payload)
          : native.append(this.#handle, ps.partition, payload)
    } catch (e) {
      return Promise.reject(this.#refusal(ps, e))
    }
    ps.nextLsn = lsn + 1
    const group = ps.pushAppend(-1)
    this.#issuedDirect(ps, 1, typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.byteLength)
    return group.promise.then(takeResult)
  }

  /** `wal.appendBatch()`: `parts` are checked and converted by the caller. */
  appendBatch(partition: number, parts: Uint8Array[]): Promise<BatchResult> {
    if (this.#closed) return Promise.reject(closedError())
    const ps = this.#part(partition)
    let first: number
    try {
      this.stage()
      first = native.appendBatch(this.#handle, partition, parts)
    } catch (e) {
      return Promise.reject(this.#refusal(ps, e))
    }
    const last = first + parts.length - 1
    ps.nextLsn = last + 1
    const promise = newPending<BatchResult>()
    ps.pushBatch(first, last, parkedResolve!, parkedReject!)
    let bytes = 0
    for (const part of parts) bytes += part.byteLength
    this.#issuedDirect(ps, parts.length, bytes)
    return promise
  }

  /**
   * What the engine threw at a call that crossed on its own. An I/O error there is the
   * partition's failure, refused before its event reached the facade: the caller learns of
   * it now, so `write()` throws it from now on too (API.md: until a `flush()` has reported
   * a failure, `write()` throws it; a rejected append does not count as reporting it).
   */
  #refusal(ps: PartitionWrites, e: unknown): WalError {
    const error = toWalError(e)
    if (error.code === 'WAL_IO_ERROR') ps.refusing ??= error
    return error
  }

  #issuedDirect(ps: PartitionWrites, records: number, bytes: number): void {
    ps.issued += records
    if (!ps.listed) this.#list(ps)
    this.#pendingBytes += bytes
    const wasIdle = this.#inFlight === 0
    this.#inFlight += records
    if (wasIdle) native.setRef(this.#handle, true)
  }

  /** The partition's next LSN is the engine's business again (after a truncate). */
  forgetNextLsn(partition: number): void {
    const ps = this.#parts[partition]
    if (ps !== undefined) ps.nextLsn = 0
  }

  #list(ps: PartitionWrites): void {
    ps.listed = true
    this.#open.add(ps)
  }

  #unlist(ps: PartitionWrites): void {
    ps.listed = false
    this.#open.delete(ps)
  }

  /**
   * Hands the staged records to the engine (one crossing). Their entries are in the
   * partitions' FIFOs already; only records the engine refused need more (the slow path).
   */
  stage(): void {
    const n = this.#stageCount
    if (n === 0) return
    this.#crossings++
    this.#stageCount = 0
    this.#stageBytes = 0
    let errors: NativeErrorDetail[] | null = null
    let thrown: WalError | undefined
    try {
      errors = native.appendMany(this.#handle, this.#stageData, this.#stageLengths, this.#stagePartitions, n, this.#stageLsns)
    } catch (e) {
      thrown = toWalError(e)
    }
    if (errors !== null || thrown !== undefined) this.#refused(n, errors, thrown)
  }

  /**
   * Records refused by the engine: each fails once every record before it is settled, as
   * the failure that made the engine refuse it (see PartitionWrites.pushRefused). The
   * partitions' entries of this tick are rebuilt with the refusals in place.
   */
  #refused(n: number, errors: NativeErrorDetail[] | null, thrown: WalError | undefined): void {
    const lsns = this.#stageLsns
    const partitions = this.#stagePartitions
    const hit = new Set<number>()
    for (let i = 0; i < n; i++) if (thrown !== undefined || lsns[i]! < 0) hit.add(partitions[i]!)
    for (const partition of hit) {
      const ps = this.#parts[partition]!
      const records: Array<{ write: boolean; refusal: Refusal | undefined }> = []
      for (let i = 0; i < n; i++) {
        if (partitions[i] !== partition) continue
        let refusal: Refusal | undefined
        const lsn = lsns[i]!
        if (thrown !== undefined || lsn < 0) {
          const detail = thrown === undefined ? errors?.[-lsn - 1] : undefined
          const error = thrown ?? (detail === undefined ? new WalError('WAL_IO_ERROR', 'append failed') : fromNative(detail))
          refusal = { error, cause: `${error.code} ${error.message}` }
          this.#pendingBytes -= this.#stageLengths[i]!
        }
        records.push({ write: this.#stageWrites[i] === 1, refusal })
      }
      ps.refuseTail(records)
      // The count stays: the LSNs it handed out are taken until the failure's event
      // arrives (it resets the count then); asking the engine now would hand one out again.
      this.#advance(ps, 0)
    }
  }

  /** `wal.flush()`. */
  flush(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    this.stage()
    const seq = ++this.#seq
    let resolve!: () => void
    let reject!: (e: WalError) => void
    const promise = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    const w: FlushWaiter = { seq, targets: new Map(), remaining: 0, resolve, reject }
    const done = (): void => {
      if (--w.remaining === 0) this.#finishFlush(w)
    }
    for (const ps of this.#open) {
      if (ps.settled >= ps.issued) continue
      w.targets.set(ps.partition, ps.issued)
      w.remaining++
      ps.waiting.push({ target: ps.issued, done })
    }
    if (w.remaining === 0) this.#finishFlush(w)
    else if (this.#waiters++ === 0 && this.#inFlight === 0) native.setRef(this.#handle, true)
    return promise
  }

  #finishFlush(w: FlushWaiter): void {
    if (w.targets.size > 0 && --this.#waiters === 0 && this.#inFlight === 0 && !this.#closed) {
      native.setRef(this.#handle, false)
    }
    const k = this.#failures.findIndex(
      (f) => f.seq < w.seq || f.firstIndex < (w.targets.get(f.partition) ?? -Infinity),
    )
    // Settled a microtask late: the appends' promises, settled by the same acks, take
    // one step more (see AppendGroup), and they settle before the flush() that follows them.
    if (k < 0) {
      queueMicrotask(w.resolve)
      return
    }
    const f = this.#failures[k]!
    this.#failures.splice(k, 1)
    f.reported = true
    const mine = this.#parts[f.partition]!.unreported
    mine.splice(mine.indexOf(f), 1)
    queueMicrotask(() => w.reject(f.error))
  }

  /** SettleSink: `records` left the in-flight set. */
  settled(records: number): void {
    this.#inFlight -= records
  }

  /** SettleSink: a failure not announced by an ack event (refused records). */
  newFailure(partition: number, error: WalError, firstIndex: number): Failure {
    const f: Failure = { error, partition, seq: ++this.#seq, firstIndex, reported: false }
    this.#failures.push(f)
    this.#parts[partition]!.unreported.push(f)
    return f
  }

  /** Settles what it can of `ps` within `budget` promises, then the flushes waiting on it. */
  #advance(ps: PartitionWrites, budget: number): number {
    const spent = ps.process(budget, this)
    const waiting = ps.waiting
    while (waiting.length > 0 && waiting[0]!.target <= ps.settled) waiting.shift()!.done()
    if (!ps.busy) this.#unlist(ps)
    return spent
  }

  /**
   * The notifier: takes every ack event the engine has and settles records,
   * sharing each turn's budget among the partitions with news so that a quiet
   * partition's few acks never wait behind a busy one's huge groups.
   */
  onAcks(all = false): void {
    const handle = this.#handle
    // Records staged this tick go first: if the engine refuses them for a
    // failure, they must reach it before the failure is taken.
    this.stage()
    // While unprocessed events point into `#acks`, new ones go to a fresh array of
    // exactly their size (asked for with an empty one), so idle turns allocate nothing.
    let out = this.#acksHeld ? NO_ACKS : this.#acks
    let n: number
    for (;;) {
      try {
        n = native.takeAcks(handle, out)
      } catch {
        n = 0
      }
      if (n >= 0) break
      out = new Float64Array(this.#acksHeld ? -n : Math.max(-n, out.length * 2))
      if (!this.#acksHeld) this.#acks = out
    }
    if (n > 0) this.#take(out, n)
    let budget = all ? Infinity : ACK_SLICE
    while (budget > 0 && this.#busy.size > 0) {
      const share = Math.max(MIN_SHARE, Math.ceil(budget / this.#busy.size))
      for (const ps of this.#busy) {
        budget -= this.#advance(ps, Math.min(share, budget))
        if (ps.events.length === 0) this.#busy.delete(ps)
        if (budget <= 0) break
      }
    }
    this.#acksHeld = this.#busy.size > 0
    if (this.#busy.size > 0) {
      if (!this.#resumeQueued) {
        this.#resumeQueued = true
        setImmediate(this.#resume)
      }
    }
    if (this.#inFlight === 0 && this.#waiters === 0 && !this.#closed) native.setRef(handle, false)
  }

  /** Files the events of `acks[0..n]` under their partitions; failures are known from here on. */
  #take(acks: Float64Array, n: number): void {
    let errors: NativeErrorDetail[] | undefined
    let e = 0
    for (let at = 0; at < n; ) {
      const partition = acks[at]!
      const failed = acks[at + 1] === ACK_FAILED
      const count = acks[at + 2]!
      this.#pendingBytes -= acks[at + 3]!
      const positions = acks[at + 4]!
      const ps = this.#part(partition)
      const ev: AckEventRef = { failed, count, buf: acks, pos: at + ACK_HEADER, failure: undefined }
      at += ACK_HEADER + positions * POSITION_WIDTH
      if (failed) {
        errors ??= native.takeAckErrors(this.#handle)
        const detail = errors[e++]
        const error = detail === undefined ? new WalError('WAL_IO_ERROR', 'append failed') : fromNative(detail)
        // The engine resumes after its last acknowledged record.
        ps.nextLsn = 0
        ps.refusing = undefined
        if (count > 0) ev.failure = this.newFailure(partition, error, Infinity)
      }
      ps.events.push(ev)
      this.#busy.add(ps)
      this.#wake(partition)
    }
  }

  /** After the engine closed: settles what it acknowledged, fails the rest with `err`. */
  close(err: WalError): void {
    this.stage()
    this.onAcks(true)
    this.#closed = true
    for (const ps of [...this.#open]) {
      if (ps.busy) {
        const f = this.newFailure(ps.partition, err, ps.settled)
        this.#inFlight -= ps.failAll(f.error)
      }
      const waiting = ps.waiting
      while (waiting.length > 0) waiting.shift()!.done()
      this.#unlist(ps)
    }
    this.#pendingBytes = 0
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#closed
  }
}
