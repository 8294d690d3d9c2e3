/**
 * Appends waiting for their durability ack, per partition: a ring buffer of
 * parallel arrays (no object per entry), popped in order as acks arrive.
 */
import type { WalError } from './errors'

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

const INITIAL_CAPACITY = 64

/** The pending appends of one partition, in call order. */
export class PendingQueue {
  /** Single append: its LSN. Batch: its last LSN. */
  private last = new Float64Array(INITIAL_CAPACITY)
  /** Single append: 0. Batch: its first LSN. */
  private first = new Float64Array(INITIAL_CAPACITY)
  /** The partition's truncate generation when the append was made. */
  private generation = new Float64Array(INITIAL_CAPACITY)
  private resolvers: Array<Resolve | undefined> = new Array<Resolve | undefined>(INITIAL_CAPACITY)
  private rejecters: Array<Reject | undefined> = new Array<Reject | undefined>(INITIAL_CAPACITY)
  private head = 0
  private mask = INITIAL_CAPACITY - 1
  /** Number of pending entries. */
  size = 0

  /**
   * Queues an append: `first` is 0 for a single append, else the batch's
   * first LSN; `generation` counts the partition's truncates before it.
   */
  push(first: number, last: number, generation: number, resolve: Resolve, reject: Reject): void {
    if (this.size > this.mask) this.grow()
    const i = (this.head + this.size) & this.mask
    this.first[i] = first
    this.generation[i] = generation
    this.last[i] = last
    this.resolvers[i] = resolve
    this.rejecters[i] = reject
    this.size++
  }

  /**
   * Resolves, oldest first, every entry of an earlier truncate generation
   * (a truncate commits what came before it) and every entry of `generation`
   * whose (last) LSN is at most `through`. `acks[at ..]` holds `count`
   * positions `lsn, segment, offset` of single appends in LSN order.
   * Returns how many entries it resolved.
   */
  ack(through: number, generation: number, acks: Float64Array, at: number, count: number): number {
    const end = at + count * 3
    let p = at
    let resolved = 0
    while (this.size > 0) {
      const i = this.head
      const last = this.last[i]!
      const g = this.generation[i]!
      if (g > generation || (g === generation && last > through)) break
      const resolve = this.resolvers[i]!
      const first = this.first[i]!
      this.resolvers[i] = undefined
      this.rejecters[i] = undefined
      this.head = (i + 1) & this.mask
      this.size--
      resolved++
      if (first === 0) {
        while (p < end && acks[p]! < last) p += 3
        if (p < end && acks[p] === last) {
          resolve({ lsn: last, segment: acks[p + 1]!, offset: acks[p + 2]! })
          p += 3
        } else {
          resolve({ lsn: last, segment: NaN, offset: NaN })
        }
      } else {
        resolve({ firstLsn: first, lastLsn: last, count: last - first + 1 })
      }
    }
    return resolved
  }

  /** Rejects every entry whose (last) LSN is at least `firstFailed`. Returns how many. */
  fail(firstFailed: number, err: WalError): number {
    const keep: Array<[number, number, number, Resolve, Reject]> = []
    let rejected = 0
    while (this.size > 0) {
      const i = this.head
      const last = this.last[i]!
      const first = this.first[i]!
      const generation = this.generation[i]!
      const resolve = this.resolvers[i]!
      const reject = this.rejecters[i]!
      this.resolvers[i] = undefined
      this.rejecters[i] = undefined
      this.head = (i + 1) & this.mask
      this.size--
      if (last >= firstFailed) {
        rejected++
        reject(err)
      } else {
        keep.push([first, last, generation, resolve, reject])
      }
    }
    for (const [first, last, generation, resolve, reject] of keep) this.push(first, last, generation, resolve, reject)
    return rejected
  }

  /** Rejects everything. Returns how many. */
  failAll(err: WalError): number {
    return this.fail(-Infinity, err)
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2
    const last = new Float64Array(capacity)
    const first = new Float64Array(capacity)
    const generation = new Float64Array(capacity)
    const resolvers = new Array<Resolve | undefined>(capacity)
    const rejecters = new Array<Reject | undefined>(capacity)
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) & this.mask
      last[k] = this.last[i]!
      first[k] = this.first[i]!
      generation[k] = this.generation[i]!
      resolvers[k] = this.resolvers[i]
      rejecters[k] = this.rejecters[i]
    }
    this.last = last
    this.first = first
    this.generation = generation
    this.resolvers = resolvers
    this.rejecters = rejecters
    this.head = 0
    this.mask = capacity - 1
  }
}
