// Child of api-stream-fds.test.mjs, run under `ulimit -n 1024`: thousands of streams
// open at once over hundreds of partitions, each in a segment of its own, must share a
// bounded set of descriptors. Prints one JSON line.
import { readdirSync } from 'node:fs'
import { Wal } from 'segwal'

const [dir, partitionsArg, perArg] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const per = Number(perArg)
const fds = () => readdirSync('/proc/self/fd').length
const wal = await Wal.open(dir, { sync: 'none', segmentSize: 4 << 10 })
const opened = fds()
const streams = []
let expected = 0
for (let p = 0; p < partitions; p++) {
  const segs = wal.segments(p)
  for (let k = 0; k < per; k++) {
    const seg = segs[k % segs.length]
    const batches = k % 2 === 0 && wal.streamBatches !== undefined
    const it = batches ? wal.streamBatches(p, { fromLsn: seg.firstLsn, maxBytes: 4096 }) : wal.stream(p, { fromLsn: seg.firstLsn })
    streams.push({ it, p, next: seg.firstLsn, batches })
    expected += wal.lastLsn(p) - seg.firstLsn + 1
  }
}
// Every stream takes a first step (all readers open and positioned at once).
const firsts = await Promise.allSettled(streams.map((s) => s.it.next()))
const failed = firsts.filter((r) => r.status === 'rejected').map((r) => `${r.reason.code}: ${r.reason.message}`)
const peak = fds()
let records = 0
let wrong = 0
await Promise.all(
  streams.map(async (s, i) => {
    if (firsts[i].status === 'rejected') return
    const take = (v) => {
      for (const r of s.batches ? v : [v]) {
        if (r.lsn !== s.next || r.payload[0] !== (r.lsn + s.p) % 251) wrong++
        s.next = r.lsn + 1
        records++
      }
    }
    take(firsts[i].value.value)
    try {
      for await (const v of s.it) take(v)
    } catch (e) {
      failed.push(`${e.code}: ${e.message}`)
    }
  }),
)
console.log(JSON.stringify({ expected, opened, peak, after: fds(), streams: streams.length, records, wrong, failed: failed.slice(0, 5), failures: failed.length }))
await wal.close()
