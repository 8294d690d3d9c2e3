#!/usr/bin/env node
// CPU time of the JS thread per record, for write()+flush(), append() and V8's promise
// floor, and of the engine's writer threads: on a shared machine the wall-clock rate says
// how much CPU the process got, this says what each record costs it (Linux schedstat).
//
//   node bench/cpu.mjs [records]
//
// Load moves CPU time too (a shared VM's caches and steal); instruction counts do not.
// `--one write|append|floor N` runs one workload once, untimed, for counting them:
//   valgrind --tool=callgrind node bench/cpu.mjs --one append 100000   (and 300000)
// and (difference of the two totals) / 200,000 is the marginal cost of a record, all
// threads (the writer's CRC and round included, the kernel not).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promiseRound } from './floors.mjs'
import { openSegwal, payload } from './peers.mjs'

const one = process.argv[2] === '--one' ? process.argv[3] : undefined
const N = Number((one ? process.argv[4] : process.argv[2]) ?? 2_000_000)
const R = 10_000
const RUNS = 3
// Run time in ns (schedstat; /proc/*/stat counts 10 ms ticks) of this thread and of the
// engine's writer threads, which run the other half of every record (CRC, pwrite).
const runNs = (task) => Number(fs.readFileSync(`/proc/${task}/schedstat`, 'utf8').split(' ')[0])
const cpuNs = () => runNs('thread-self')
const writersNs = () => {
  let ns = 0
  for (const t of fs.readdirSync('/proc/self/task')) {
    try {
      if (fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').startsWith('segwal-writer')) ns += runNs(`self/task/${t}`)
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns
}
const rec = payload(128)

async function measure(name, body) {
  const out = []
  for (let r = 0; r < RUNS; r++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segwal-cpu-'))
    const wal = await openSegwal(dir, { sync: 'none' })
    try {
      const c0 = cpuNs()
      const w0 = writersNs()
      const t0 = performance.now()
      await body(wal)
      out.push({ ns: (cpuNs() - c0) / N, writer: (writersNs() - w0) / N, wall: N / ((performance.now() - t0) / 1000) })
    } finally {
      await wal.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  out.sort((a, b) => a.ns - b.ns)
  const m = out[out.length >> 1]
  const writer = m.writer > 0 ? `, writers ${m.writer.toFixed(0)} ns` : ''
  console.log(`${name.padEnd(34)} ${m.ns.toFixed(0).padStart(5)} ns of JS-thread CPU per record (${(1e3 / m.ns).toFixed(2)} M/s on a core of its own)${writer}; wall ${(m.wall / 1e6).toFixed(2)} M/s`)
}

const workloads = {
  write: async (wal) => {
    for (let done = 0; done < N; done += R) {
      for (let i = 0; i < R; i++) wal.write(1, rec)
      await wal.flush()
    }
  },
  append: async (wal) => {
    for (let done = 0; done < N; done += R) {
      const ps = new Array(R)
      for (let i = 0; i < R; i++) ps[i] = wal.append(1, rec)
      await Promise.all(ps)
    }
  },
  floor: async () => {
    for (let done = 0; done < N; done += R) await promiseRound(R)
  },
}

if (one !== undefined) {
  if (!(one in workloads)) throw new Error(`--one: one of ${Object.keys(workloads).join(', ')}`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segwal-cpu-'))
  const wal = await openSegwal(dir, { sync: 'none' })
  await workloads[one](wal)
  await wal.close()
  fs.rmSync(dir, { recursive: true, force: true })
} else {
  await measure('write() x N, then one flush()', async (wal) => {
    for (let i = 0; i < N; i++) wal.write(1, rec)
    await wal.flush()
  })
  await measure(`write() x ${R.toLocaleString('en-US')}, then flush(), repeated`, workloads.write)
  await measure(`append(), ${R.toLocaleString('en-US')} in flight`, workloads.append)
  await measure(`V8 promise floor, ${R.toLocaleString('en-US')} in flight`, workloads.floor)
}
