#!/usr/bin/env node
// The durable round trip without the disk's share: C async loops each awaiting a durable
// 128 B append(), on a directory of your choice (tmpfs: fdatasync costs ~nothing, so what is
// left is thread hand-offs, the engine and the JS thread). Reports records per fdatasync,
// the round's wall time and the CPU each thread spends per append (Linux /proc, 10 ms ticks:
// use enough appends), which the load of a shared machine does not move much.
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
    const key = name.startsWith('segwal-writer') ? 'writers' : name === 'node' ? 'js' : 'other'
    out[key] = (out[key] ?? 0) + (Number(f[11]) + Number(f[12])) * 10
  }
  return out
}

const dir = fs.mkdtempSync(path.join(base, 'segwal-rt-'))
const wal = await openSegwal(dir, { sync: 'always' })
const rec = payload(128)
try {
  const loops = async (each) => {
    let left = each
    await Promise.all(Array.from({ length: c }, async () => {
      while (left-- > 0) await wal.append(1, rec)
    }))
  }
  await loops(20 * c) // warm-up
  const s0 = wal.stats()
  const t0 = threads()
  const w0 = performance.now()
  await loops(N)
  const ms = performance.now() - w0
  const t1 = threads()
  const syncs = wal.stats().syncs - s0.syncs
  const per = (k) => ((((t1[k] ?? 0) - (t0[k] ?? 0)) * 1000) / N).toFixed(1)
  console.log(
    `${c} appenders, ${N} appends on ${base}: ${Math.round((N / ms) * 1000)}/s, ${(N / syncs).toFixed(1)} per fdatasync, ` +
      `round ${Math.round((ms * 1000) / syncs)} µs; CPU µs per append: JS thread ${per('js')}, writers ${per('writers')}, other ${per('other')}`,
  )
} finally {
  await wal.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
