/**
 * One partition's records that are neither acknowledged nor failed, in the
 * order they were staged: a ring buffer of parallel arrays (no object per
 * record; consecutive `write()` records share one entry, and the appends of
 * one crossing one group). The engine's ack events settle the next `count`
 * staged records of a partition, so popping in order is all that matching an
 * event to its records takes: no LSN is compared (LSNs are handed out again
 * after a truncate or a failure).
 */
import { WalError } from './errors'

/** What `append()` resolves with. */
export interface AppendResult {
  /** The record's LSN (per partition, from 1, dense). */
  lsn: number
  /** Index of the segment file the record starts in. */
  segment: number
  /** Byte offset of the record in that segment file. */
  offset: number
}

/** What `appendBatch()` resolves with. */
export interface BatchResult {
  /** LSN of the batch's first record. */
  firstLsn: number
  /** LSN of the batch's last record. */
  lastLsn: number
  /** Number of records in the batch. */
  count: number
}

/** Resolves an append's promise. */
export type Resolve = (value: AppendResult | BatchResult) => void
/** Rejects an append's promise. */
export type Reject = (reason: WalError) => void

/** One failure of a partition, as `flush()` reports it (once). */
export interface Failure {
  readonly error: WalError
  readonly partition: number
  /** Creation order, shared with flush calls: a failure older than a flush concerns it. */
  readonly seq: number
  /** Index (in the partition's staging order) of its first failed record; Infinity until known. */
  firstIndex: number
  reported: boolean
}

/** Why the engine refused a record (its `Failure` is found when the record's turn comes). */
export interface Refusal {
  readonly error: WalError
  /** Code and message of the engine's error: a refusal repeats the failure that caused it. */
  readonly cause: string
}

/**
 * The single appends of one partition handed to the engine in one crossing. They share
 * one internal promise, resolved with the group once every one of them is settled; each
 * `append()` returns `group.promise.then(takeResult)`, and the reactions of one promise
 * run in the order they were added, which is the order of the calls. So an append costs
 * one derived promise and one reaction: no resolving functions, no closure, nothing the
 * ring stores per record.
 */
export class AppendGroup {
  /** Outcomes of its records, in staging order: a result, or the failure. */
  out: Array<AppendResult | WalError> | undefined
  /** Records settled so far (their outcomes are `out[0..settled]`). */
  settled = 0
  /** Records not settled yet. */
  left = 0
  /** The next reaction's record. */
  next = 0
  /** The crossing its records go out with: later appends join it until then. */
  readonly crossing: number
  readonly promise: Promise<AppendGroup>
  readonly resolve: (group: AppendGroup) => void

  constructor(crossing: number) {
    this.crossing = crossing
    this.promise = new Promise<AppendGroup>(parkGroup)
    this.resolve = parkedGroup!
  }

  /** Settles its next `n` records with `failure`, or with positions from `buf` at `pos`. */
  settle(n: number, buf: Float64Array, pos: number, failure: WalError | undefined): void {
    // Its records have all crossed by now: the array is made at its full size once.
    const out = (this.out ??= new Array<AppendResult | WalError>(this.left))
    let at = this.settled
    const end = at + n
    if (failure !== undefined) while (at < end) out[at++] = failure
    else for (let p = pos; at < end; p += 3) out[at++] = { lsn: buf[p]!, segment: buf[p + 1]!, offset: buf[p + 2]! }
    this.settled = end
    this.left -= n
    if (this.left === 0) this.resolve(this)
  }
}

let parkedGroup: ((group: AppendGroup) => void) | undefined
function parkGroup(resolve: (group: AppendGroup) => void): void {
  parkedGroup = resolve
}

/** The reaction of every append: its own outcome, taken in call order. */
export function takeResult(group: AppendGroup): AppendResult {
  const r = group.out![group.next++]!
  if (r instanceof WalError) throw r
  return r
}

const NO_POSITIONS = new Float64Array(0)

/** Entry kinds. */
const GROUP = 0
const BATCH = 1
const WRITES = 2
const REFUSED = 3

/** An ack event not processed yet (events of a partition are processed in order). */
export interface AckEventRef {
  failed: boolean
  /** Engine records the event still settles. */
  count: number
  /** The buffer it was taken into, and its positions of single appends still to use. */
  buf: Float64Array
  pos: number
  failure: Failure | undefined
}

/** Called when records leave the partition: the owner keeps totals. */
export interface SettleSink {
  settled(records: number): void
  /** A failure for refused records whose partition has no unreported failure to join. */
  newFailure(partition: number, error: WalError, firstIndex: number): Failure
}

const INITIAL_CAPACITY = 16

/** Everything the facade tracks for one partition's writes. */
export class PartitionWrites {
  readonly partition: number
  /** LSN the next staged record gets, as far as the facade knows; 0 = ask the engine. */
  nextLsn = 0
  /** Records staged so far (each gets the next index), and records settled so far. */
  issued = 0
  settled = 0
  /** Failures of this partition no `flush()` has reported: `write()` throws the first. */
  readonly unreported: Failure[] = []
  /** The last failure an event settled (refused records join it while it is unreported). */
  lastFailure: Failure | undefined
  /**
   * What the engine refused a call that crossed on its own with (a large record, a batch):
   * the partition failed and its failure event is not taken yet. That caller was told (a
   * rejection, a throw), so `write()` throws this too until the event is taken; from then
   * on `unreported` holds the failure until a `flush()` reports it.
   */
  refusing: WalError | undefined
  /** Ack events taken, not processed yet, oldest first. */
  readonly events: AckEventRef[] = []
  /** Flushes waiting for `settled` to reach their target, in target order. */
  readonly waiting: Array<{ target: number; done: () => void }> = []
  /** In the owner's set of partitions with records in flight. */
  listed = false

  private kind = new Uint8Array(INITIAL_CAPACITY)
  /** Records of the entry not settled yet (the engine staged them all, unless REFUSED). */
  private records = new Float64Array(INITIAL_CAPACITY)
  /** Batch: its first LSN (the last is first + records - 1). */
  private first = new Float64Array(INITIAL_CAPACITY)
  /** Batch: its promise's resolving functions. */
  private resolvers = new Array<Resolve | undefined>(INITIAL_CAPACITY)
  private rejecters = new Array<Reject | undefined>(INITIAL_CAPACITY)
  /** GROUP, and REFUSED appends: the group of its records. */
  private groups = new Array<AppendGroup | undefined>(INITIAL_CAPACITY)
  private refusals = new Array<Refusal | undefined>(INITIAL_CAPACITY)
  private head = 0
  private mask = INITIAL_CAPACITY - 1
  /** Entries in the ring. */
  private size = 0

  constructor(partition: number) {
    this.partition = partition
  }

  /** True while records of this partition are neither acknowledged nor failed. */
  get busy(): boolean {
    return this.size > 0
  }

  /**
   * A single append going out with crossing `crossing` (a negative one: on its own): its
   * group, which it joins (the partition's last entry, if still open) or starts.
   */
  pushAppend(crossing: number): AppendGroup {
    if (this.size > 0 && crossing >= 0) {
      const t = (this.head + this.size - 1) & this.mask
      if (this.kind[t] === GROUP) {
        const g = this.groups[t]!
        if (g.crossing === crossing) {
          this.records[t]! += 1
          g.left++
          return g
        }
      }
    }
    const g = new AppendGroup(crossing)
    g.left = 1
    // Not `this.groups[this.slot(...)]`: slot() may replace the array.
    const i = this.slot(GROUP, 1)
    this.groups[i] = g
    return g
  }

  /** Records of `group` the engine staged (joins the previous entry if it holds the same). */
  private pushGroupPart(group: AppendGroup): void {
    if (this.size > 0) {
      const t = (this.head + this.size - 1) & this.mask
      if (this.kind[t] === GROUP && this.groups[t] === group) {
        this.records[t]! += 1
        return
      }
    }
    const i = this.slot(GROUP, 1)
    this.groups[i] = group
  }

  /** A batch the engine staged. */
  pushBatch(first: number, last: number, resolve: Resolve, reject: Reject): void {
    const i = this.slot(BATCH, last - first + 1)
    this.first[i] = first
    this.resolvers[i] = resolve
    this.rejecters[i] = reject
  }

  /** `n` written records the engine staged (joins the previous entry if it is one). */
  pushWrites(n: number): void {
    if (this.size > 0) {
      const t = (this.head + this.size - 1) & this.mask
      if (this.kind[t] === WRITES) {
        this.records[t]! += n
        return
      }
    }
    this.slot(WRITES, n)
  }

  /** A record the engine refused (an append's group, or none for a write): it fails when its turn comes. */
  private pushRefused(refusal: Refusal, group: AppendGroup | undefined): void {
    if (this.size > 0) {
      const t = (this.head + this.size - 1) & this.mask
      if (this.kind[t] === REFUSED && this.groups[t] === group && this.refusals[t]!.cause === refusal.cause) {
        this.records[t]! += 1
        return
      }
    }
    const i = this.slot(REFUSED, 1)
    this.refusals[i] = refusal
    this.groups[i] = group
  }

  /**
   * The last `records.length` records pushed (this tick's, in order; none crossed yet)
   * again, with the engine's refusals in place.
   */
  refuseTail(records: ReadonlyArray<{ write: boolean; refusal: Refusal | undefined }>): void {
    const appends: AppendGroup[] = []
    for (let k = records.length - 1; k >= 0; k--) {
      const t = (this.head + this.size - 1) & this.mask
      if (!records[k]!.write) appends.push(this.groups[t]!)
      this.records[t]! -= 1
      if (this.records[t] === 0) this.popTail(t)
    }
    for (const r of records) {
      const group = r.write ? undefined : appends.pop()
      if (r.refusal !== undefined) this.pushRefused(r.refusal, group)
      else if (group === undefined) this.pushWrites(1)
      else this.pushGroupPart(group)
    }
  }

  private popTail(t: number): void {
    this.clear(t)
    this.size--
  }

  private clear(i: number): void {
    this.resolvers[i] = undefined
    this.rejecters[i] = undefined
    this.groups[i] = undefined
    this.refusals[i] = undefined
  }

  /**
   * Settles records with the events taken, oldest first, until `budget`
   * promises are settled (a run of written records costs one). Returns what
   * it spent.
   */
  process(budget: number, sink: SettleSink): number {
    let spent = this.drainRefused(sink)
    while (spent < budget && this.events.length > 0) {
      const ev = this.events[0]!
      // Records the engine refused because of this failure come right after its own.
      if (ev.failed) this.lastFailure = ev.failure
      while (ev.count > 0 && spent < budget) {
        if (this.size === 0) {
          // The engine settled records the facade never staged: nothing to pop.
          ev.count = 0
          break
        }
        spent += this.settleHead(ev, sink, budget - spent)
        spent += this.drainRefused(sink)
      }
      if (ev.count > 0) break
      this.events.shift()
      spent += this.drainRefused(sink)
    }
    return spent
  }

  /** Fails every entry (at close). Returns how many records. */
  failAll(err: WalError): number {
    let n = 0
    while (this.size > 0) {
      const i = this.head
      const records = this.records[i]!
      n += records
      this.rejecters[i]?.(err)
      this.groups[i]?.settle(records, NO_POSITIONS, 0, err)
      this.pop(i)
    }
    this.events.length = 0
    this.settled += n
    return n
  }

  /** Settles (part of) the head entry with `ev`, within `budget`; returns the promises it settled. */
  private settleHead(ev: AckEventRef, sink: SettleSink, budget: number): number {
    const i = this.head
    const kind = this.kind[i]!
    if (kind === BATCH) {
      const n = this.records[i]!
      ev.count -= n
      const resolve = this.resolvers[i]!
      const reject = this.rejecters[i]!
      const first = this.first[i]!
      if (ev.failed) this.noteFailed(ev.failure!)
      this.pop(i)
      if (ev.failed) reject(ev.failure!.error)
      else resolve({ firstLsn: first, lastLsn: first + n - 1, count: n })
      this.settled += n
      sink.settled(n)
      return 1
    }
    // A run of written records costs one; a group's records one each, and may be cut.
    const n = Math.min(this.records[i]!, ev.count, kind === GROUP ? Math.max(1, budget) : Infinity)
    if (ev.failed) this.noteFailed(ev.failure!)
    ev.count -= n
    this.records[i]! -= n
    this.settled += n
    sink.settled(n)
    const group = kind === GROUP ? this.groups[i]! : undefined
    if (this.records[i] === 0) this.pop(i)
    if (group === undefined) return 1
    if (ev.failed) group.settle(n, NO_POSITIONS, 0, ev.failure!.error)
    else {
      group.settle(n, ev.buf, ev.pos, undefined)
      ev.pos += 3 * n
    }
    return n
  }

  /** Fails refused entries at the head: they join the partition's failure that caused them. */
  private drainRefused(sink: SettleSink): number {
    let spent = 0
    while (this.size > 0 && this.kind[this.head] === REFUSED) {
      const i = this.head
      const refusal = this.refusals[i]!
      const n = this.records[i]!
      let failure = this.lastFailure
      if (failure === undefined || failure.reported || failure.error.message !== refusal.error.message) {
        failure = sink.newFailure(this.partition, refusal.error, this.settled)
        this.lastFailure = failure
      }
      this.noteFailed(failure)
      const group = this.groups[i]
      this.pop(i)
      group?.settle(n, NO_POSITIONS, 0, failure.error)
      this.settled += n
      sink.settled(n)
      spent++
    }
    return spent
  }

  private noteFailed(failure: Failure): void {
    if (this.settled < failure.firstIndex) failure.firstIndex = this.settled
  }

  private slot(kind: number, records: number): number {
    if (this.size > this.mask) this.grow()
    const i = (this.head + this.size) & this.mask
    this.kind[i] = kind
    this.records[i] = records
    this.size++
    return i
  }

  private pop(i: number): void {
    this.clear(i)
    this.head = (i + 1) & this.mask
    this.size--
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2
    const kind = new Uint8Array(capacity)
    const records = new Float64Array(capacity)
    const first = new Float64Array(capacity)
    const resolvers = new Array<Resolve | undefined>(capacity)
    const rejecters = new Array<Reject | undefined>(capacity)
    const groups = new Array<AppendGroup | undefined>(capacity)
    const refusals = new Array<Refusal | undefined>(capacity)
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) & this.mask
      kind[k] = this.kind[i]!
      records[k] = this.records[i]!
      first[k] = this.first[i]!
      resolvers[k] = this.resolvers[i]
      rejecters[k] = this.rejecters[i]
      groups[k] = this.groups[i]
      refusals[k] = this.refusals[i]
    }
    this.kind = kind
    this.records = records
    this.first = first
    this.resolvers = resolvers
    this.rejecters = rejecters
    this.groups = groups
    this.refusals = refusals
    this.head = 0
    this.mask = capacity - 1
  }
}
