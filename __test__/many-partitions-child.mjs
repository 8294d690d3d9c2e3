// Run under a small `ulimit -n` by many-partitions.test.mjs: writes one record to each of
// N partitions, closes, reopens, writes again and reads some back. Prints "ok N" or throws.
import { Wal } from '../dist/index.js'

const [dir, n] = [process.argv[2], Number(process.argv[3])]
const opts = { sync: 'none', segmentSize: 4096, preallocate: false }
let wal = await Wal.open(dir, opts)
const all = (fn) => Promise.all(Array.from({ length: n }, (_, p) => fn(p)))
await all((p) => wal.append(p, `first ${p}`))
await wal.close()
wal = await Wal.open(dir, opts)
if (wal.partitions().length !== n) throw new Error(`reopened with ${wal.partitions().length} partitions`)
await all((p) => wal.append(p, Buffer.alloc(3000, p % 251)))
for (let p = 0; p < n; p += Math.floor(n / 7)) {
  const got = []
  for await (const r of wal.stream(p)) got.push(r.payload.length)
  if (got.length !== 2 || got[1] !== 3000) throw new Error(`partition ${p}: ${got}`)
}
if (wal.lastLsn(n - 1) !== 2) throw new Error(`lastLsn ${wal.lastLsn(n - 1)}`)
await wal.close()
console.log(`ok ${n}`)
