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

// Run as a script (the bench imports promiseFloor to measure the floor in its own run).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main()
