#!/usr/bin/env node
// What V8 itself allows on this machine, with no I/O and no segwal: the floors under
// two of the targets, measured the way the API forces them to be paid.
//
//   node bench/floors.mjs
//
// 1. Buffered appends: one distinct promise per call, resolved with its own result
//    object, N in flight, then Promise.all (what `append()` x N costs at minimum).
// 2. Streaming: a for-await over an async iterator yielding { lsn, payload, segment,
//    offset } with `payload` a Buffer view (what `stream()` costs per record at minimum;
//    made as the stream makes it, the cheapest way: Buffer.from(arrayBuffer, offset, length)).
// `--one NAME ROUNDS` (below) runs one promise design alone, for instruction counts.

import { pathToFileURL } from 'node:url'

/** In flight at once: the buffered workload's round in --quick and in full mode. */
const IN_FLIGHT = [10_000, 100_000]
const RUNS = 5
const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]
const fmt = (x) => Math.round(x).toLocaleString('en-US')

let parkedResolve
const park = (resolve) => {
  parkedResolve = resolve
}

/**
 * One round of the promise floor: `N` distinct promises made now, each resolved with its
 * own result object on the next turn; what `append()` x N costs at minimum.
 */
export function promiseRound(N) {
  const ps = new Array(N)
  const rs = new Array(N)
  for (let i = 0; i < N; i++) {
    ps[i] = new Promise(park)
    rs[i] = parkedResolve
  }
  setImmediate(() => {
    for (let i = 0; i < N; i++) rs[i]({ lsn: i + 1, segment: 1, offset: 64 + i * 160 })
  })
  return Promise.all(ps)
}

/**
 * `append()`'s own promise design without I/O, to weigh it against the floor: the
 * appends of one crossing (2,048) share one promise, resolved with their group, and each
 * call returns `group.promise.then(take)`, `take` handing out its own result in call order.
 */
export function derivedRound(N, GROUP = 2048) {
  const ps = new Array(N)
  const groups = []
  let g
  for (let i = 0; i < N; i++) {
    if (i % GROUP === 0) {
      g = { out: null, next: 0, promise: new Promise(park), resolve: parkedResolve }
      groups.push(g)
    }
    ps[i] = g.promise.then(takeNext)
  }
  setImmediate(() => {
    let i = 0
    for (const g of groups) {
      const out = new Array(Math.min(GROUP, N - i))
      for (let k = 0; k < out.length; k++, i++) out[k] = { lsn: i + 1, segment: 1, offset: 64 + i * 160 }
      g.out = out
      g.resolve(g)
    }
  })
  return Promise.all(ps)
}
function takeNext(g) {
  return g.out[g.next++]
}

/** The other design: a distinct promise per call and its resolving function kept in a ring. */
const ring = { rs: new Array(1 << 17), head: 0, tail: 0, mask: (1 << 17) - 1 }
export function ringRound(N) {
  const ps = new Array(N)
  for (let i = 0; i < N; i++) {
    ps[i] = new Promise(park)
    ring.rs[ring.tail] = parkedResolve
    ring.tail = (ring.tail + 1) & ring.mask
  }
  setImmediate(() => {
    for (let i = 0; i < N; i++) {
      const h = ring.head
      const resolve = ring.rs[h]
      ring.rs[h] = undefined
      ring.head = (h + 1) & ring.mask
      resolve({ lsn: i + 1, segment: 1, offset: 64 + i * 160 })
    }
  })
  return Promise.all(ps)
}

async function promiseFloor(N) {
  const t0 = performance.now()
  await promiseRound(N)
  return N / ((performance.now() - t0) / 1000)
}

/**
 * The for-await floor's source: an async iterator of `count` records made as `stream()`
 * makes them (a `Buffer.from` view of `size` bytes, a record object, a settled promise),
 * over frames of a buffer reused round robin; no I/O.
 */
export function viewIterator(count, size = 128) {
  const frame = size + 32
  const data = Buffer.alloc(frame * 4096)
  let i = 0
  return {
    [Symbol.asyncIterator]() {
      return this
    },
    next() {
      if (i >= count) return Promise.resolve({ done: true, value: undefined })
      const at = (i++ % 4096) * frame
      const payload = Buffer.from(data.buffer, data.byteOffset + at + 24, size)
      return Promise.resolve({ done: false, value: { lsn: i, payload, segment: 1, offset: at } })
    },
  }
}

async function iteratorFloor() {
  const M = 1_000_000
  const it = viewIterator(M)
  let bytes = 0
  const t0 = performance.now()
  for await (const r of it) bytes += r.payload.length
  return M / ((performance.now() - t0) / 1000)
}

async function main() {
  const p = IN_FLIGHT.map(() => [])
  const s = []
  for (let r = 0; r < RUNS; r++) {
    for (let i = 0; i < IN_FLIGHT.length; i++) p[i].push(await promiseFloor(IN_FLIGHT[i]))
    s.push(await iteratorFloor())
  }
  for (let i = 0; i < IN_FLIGHT.length; i++) {
    const n = fmt(IN_FLIGHT[i]).padStart(7)
    console.log(`promise-per-append floor (${n} in flight): ${fmt(median(p[i]))} appends/s (median of ${RUNS})`)
  }
  console.log(`for-await record floor (Buffer views):              ${fmt(median(s))} records/s (median of ${RUNS})`)
}

// `--one floor|derived|ring ROUNDS`: that many rounds of 10,000 calls of one promise design,
// untimed, for instruction counts (callgrind at two round counts; the difference / calls):
//   valgrind --tool=callgrind node bench/floors.mjs --one derived 10   (and 30)
async function one(name, rounds) {
  const round = { floor: promiseRound, derived: derivedRound, ring: ringRound }[name]
  if (!round) throw new Error('--one: floor, derived or ring')
  for (let r = 0; r < rounds; r++) await round(IN_FLIGHT[0])
}

// Run as a script (the bench imports promiseFloor to measure the floor in its own run).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv[2] === '--one') await one(process.argv[3], Number(process.argv[4] ?? 10))
  else await main()
}
