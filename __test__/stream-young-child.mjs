// Child of api-stream-gc.test.mjs: streams 192 MiB of 4 KiB records with streamBatches()
// (argv[3] 'batches') or stream() ('records') in a process whose young generation V8 has
// grown to its largest (as a server's with many requests in flight), and counts the
// collections V8 made meanwhile. Batches must come back to the pool through scavenges,
// not through a mark-compact per ~64 MiB of batch memory (lib/ballast.ts). Prints one
// JSON line.
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { Wal } from 'segwal'
import { growYoung } from '../bench/young.mjs'

const RECORD = 4096
const RECORDS = 48 * 1024 // 192 MiB

const wal = await Wal.open(process.argv[2], { sync: 'none' })
const rec = Buffer.alloc(RECORD, 7)
const batch = Array(256).fill(rec)
for (let done = 0; done < RECORDS; done += batch.length) await wal.appendBatch(1, batch)

const young = await growYoung()
globalThis.gc()

const gcs = { major: 0, minor: 0 }
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.detail?.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) continue
    if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.major++
    else if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++
  }
})
observer.observe({ entryTypes: ['gc'] })
let records = 0
if (process.argv[3] === 'records') {
  for await (const r of wal.stream(1)) records += r.payload.length === RECORD ? 1 : 0
} else {
  for await (const b of wal.streamBatches(1)) records += b.count
}
// The observer hears of the last collections a turn or two later.
await new Promise((resolve) => setTimeout(resolve, 50))
observer.disconnect()
console.log(JSON.stringify({ young, records, ...gcs }))
await wal.close()
