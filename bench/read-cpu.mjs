#!/usr/bin/env node
// CPU time per record of the read paths, for a shared machine where wall-clock rates say
// how much CPU the process got: the process (every thread: the reader on libuv's pool,
// V8's collector threads) and the JS thread alone, from /proc/*/schedstat (nanoseconds).
//
//   node --expose-gc bench/read-cpu.mjs [record bytes] [records] [runs] [batches|stream|floor ...] [--grown]
//
// `floor` is the for-await floor of bench/floors.mjs (a Buffer view, a record object and a
// settled promise per record, no I/O), measured in the same process. Medians of `runs`.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { viewIterator } from './floors.mjs'
import { sumBatches, sumRecords } from './lib.mjs'
import { openSegwal, payload } from './peers.mjs'
import { growYoung } from './young.mjs'

const size = Number(process.argv[2] ?? 128)
const count = Number(process.argv[3] ?? 1_000_000)
const RUNS = Number(process.argv[4] ?? 5)
const args = process.argv.slice(5)
// `--grown`: first grow V8's young generation to its largest, as a process that keeps many
// young objects alive does (the bench's earlier workloads, a server with requests in
// flight); batch streams must not fall back to a mark-compact per 64 MiB there either.
const grown = args.includes('--grown')
const modes = args.filter((a) => a !== '--grown')
if (modes.length === 0) modes.push('batches', 'stream', 'floor')

const ms = (file) => Number(fs.readFileSync(file, 'utf8').split(' ')[0]) / 1e6
const jsThreadMs = () => ms('/proc/thread-self/schedstat')
const processMs = () =>
  fs.readdirSync('/proc/self/task').reduce((sum, t) => {
    try {
      return sum + ms(`/proc/self/task/${t}/schedstat`)
    } catch {
      return sum // the thread ended meanwhile
    }
  }, 0)

// V8's collections while a mode runs: a batch that V8 must find by a mark-compact rather
// than a scavenge costs milliseconds of the JS thread (see docs/PERFORMANCE.md, reads).
const gcs = { major: 0, minor: 0 }
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    // Not the gc() each run starts with.
    if (e.detail?.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) continue
    if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.major++
    else if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++
  }
}).observe({ entryTypes: ['gc'] })
// The observer hears of collections a turn or two later.
const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

if (grown) console.log(`young generation grown to ${await growYoung()} KiB`)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segwal-read-cpu-'))
const wal = await openSegwal(dir, { sync: 'none' })
const rec = payload(size)
const per = size <= 128 ? 1024 : 256
const inflight = []
for (let done = 0; done < count; done += per) {
  inflight.push(wal.appendBatch(1, Array(Math.min(per, count - done)).fill(rec)))
  if (inflight.length >= 16) await inflight.shift()
}
await Promise.all(inflight)
await wal.sync()

const bodies = {
  batches: () => sumBatches(wal.streamBatches(1)),
  stream: () => sumRecords(wal.stream(1)),
  floor: () => sumRecords(viewIterator(count, size)),
}

try {
  for (const mode of modes) {
    const runs = []
    await settle()
    const gc0 = { ...gcs }
    for (let r = 0; r < RUNS; r++) {
      globalThis.gc?.()
      const p0 = processMs()
      const j0 = jsThreadMs()
      const t0 = performance.now()
      const [n, b] = await bodies[mode]()
      const wall = performance.now() - t0
      if (n !== count || b !== count * size) throw new Error(`${mode}: saw ${n} records / ${b} bytes`)
      runs.push({ wall, proc: processMs() - p0, js: jsThreadMs() - j0 })
    }
    await settle()
    const major = gcs.major - gc0.major
    const minor = gcs.minor - gc0.minor
    const med = (k) => runs.map((x) => x[k]).sort((a, b) => a - b)[runs.length >> 1]
    const ns = (v) => ((v * 1e6) / count).toFixed(0).padStart(5)
    console.log(
      `${mode.padEnd(7)} ${size} B x ${count}: process CPU ${ns(med('proc'))} ns/record, JS thread ${ns(med('js'))} ns/record;` +
        ` wall ${(count / med('wall') / 1e3).toFixed(2)} M records/s (median of ${RUNS});` +
        ` ${major} mark-compacts, ${minor} scavenges in all ${RUNS} runs`,
    )
  }
} finally {
  await wal.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
