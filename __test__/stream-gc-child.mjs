// Child of api-stream-gc.test.mjs (run with --expose-gc): streams read part way with
// next() and dropped must be collected, and their readers' descriptors closed, before
// close(). Prints one JSON line.
import { readdirSync } from 'node:fs'
import { Wal } from 'segwal'

const fds = () => readdirSync('/proc/self/fd').length
const settle = () => new Promise((r) => setTimeout(r, 10))

const wal = await Wal.open(process.argv[2], { sync: 'none', segmentSize: 4 << 10 })
const ps = []
for (let i = 1; i <= 2000; i++) ps.push(wal.append(1, Buffer.alloc(100, i)))
await Promise.all(ps)
const before = fds()
const refs = []
const segments = wal.segments(1)
/** Opens a stream in segment `i` (so that each holds a descriptor of its own), reads two steps, drops it. */
async function readTwo(i) {
  const from = { fromLsn: segments[i].firstLsn }
  const s = i % 2 || !wal.streamBatches ? wal.stream(1, from) : wal.streamBatches(1, from)
  for (let k = 0; k < 2; k++) await s.next()
  refs.push(new WeakRef(s))
}
for (let i = 0; i < 40; i++) await readTwo(i)
const during = fds()
// A WeakRef's target is kept until the end of the job that dereferenced it: check in a
// job of its own, never right before gc().
const dropped = () => refs.every((r) => r.deref() === undefined) && fds() <= before
for (let i = 0; i < 50; i++) {
  await settle()
  globalThis.gc()
  await settle()
  if (dropped()) break
}
const after = fds()
const alive = refs.filter((r) => r.deref() !== undefined).length
console.log(JSON.stringify({ before, during, after, alive, which: refs.map((r, i) => (r.deref() ? i : -1)).filter((i) => i >= 0) }))
await wal.close()
