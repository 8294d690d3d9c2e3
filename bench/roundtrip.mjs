#!/usr/bin/env node
// The durable round trip without the disk's share: C async loops each awaiting a durable
// 128 B append(), on a directory of your choice (tmpfs: fdatasync costs ~nothing, so what is
// left is thread hand-offs, the engine and the JS thread). Reports records per fdatasync,
// the round's wall time and the CPU each thread spends per append (Linux /proc, 10 ms ticks:
// use enough appends), which the load of a shared machine does not move much. Then the same
// loops on a fake append with no I/O and no segwal (a promise per call, resolved with its own
// result object, all of a round together on a later macrotask, as acks arrive): V8's floor
// for the JS thread's share of a round, in the same process.
//
//   node bench/roundtrip.mjs [dir=/dev/shm] [appenders=64] [appends=100000]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { openSegwal, payload } from './peers.mjs'

const [base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), C = '64', OPS = '100000'] = process.argv.slice(2)
const c = Number(C)
const N = Number(OPS)

/** CPU ms per thread name (the writer threads summed). */
function threads() {
  const out = {}
  for (const t of fs.readdirSync('/proc/self/task')) {
    const s = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8')
    const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'))
    const f = s.slice(s.lastIndexOf(') ') + 2).split(' ')
    // V8's and libuv's helper threads are called `node` too: the JS thread is the main one.
    const key = name.startsWith('segwal-writer') ? 'writers' : t === String(process.pid) ? 'js' : 'other'
    out[key] = (out[key] ?? 0) + (Number(f[11]) + Number(f[12])) * 10
  }
  return out
}

const dir = fs.mkdtempSync(path.join(base, 'segwal-rt-'))
const wal = await openSegwal(dir, { sync: 'always' })
const rec = payload(128)
/**
 * The floor's fake `append()`: a promise per call, the round's promises resolved together
 * with their own result objects on a later macrotask (as the notifier's callback does).
 */
let lsn = 0
let round = []
function fakeAppend() {
  if (round.length === 0) setImmediate(settleRound)
  return new Promise((resolve) => round.push(resolve))
}
function settleRound() {
  const rs = round
  round = []
  for (const r of rs) r({ lsn: ++lsn, segment: 1, offset: 64 + lsn * 160 })
}

const loopsOn = (append) => async (each) => {
  let left = each
  await Promise.all(Array.from({ length: c }, async () => {
    while (left-- > 0) await append(1, rec)
  }))
}

/** JS-thread CPU µs per append of `n` appends over `loops`, and their rate. */
async function timed(loops, n) {
  const t0 = threads()
  const w0 = performance.now()
  await loops(n)
  const ms = performance.now() - w0
  const t1 = threads()
  return { ms, per: (k) => ((((t1[k] ?? 0) - (t0[k] ?? 0)) * 1000) / n).toFixed(1) }
}

try {
  const loops = loopsOn((p, r) => wal.append(p, r))
  await loops(20 * c) // warm-up
  const s0 = wal.stats()
  const { ms, per } = await timed(loops, N)
  const syncs = wal.stats().syncs - s0.syncs
  const floorLoops = loopsOn(fakeAppend)
  await floorLoops(20 * c)
  const floor = await timed(floorLoops, N)
  console.log(
    `${c} appenders, ${N} appends on ${base}: ${Math.round((N / ms) * 1000)}/s, ${(N / syncs).toFixed(1)} per fdatasync, ` +
      `round ${Math.round((ms * 1000) / syncs)} µs; CPU µs per append: JS thread ${per('js')}, writers ${per('writers')}, other ${per('other')}\n` +
      `V8 floor, same loops on a fake append (no I/O): JS thread ${floor.per('js')} µs per append, ${Math.round((N / floor.ms) * 1000)}/s`,
  )
} finally {
  await wal.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
