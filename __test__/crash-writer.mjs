// Child process of the kill -9 harness (see crash-lib.mjs). Usage:
//   node crash-writer.mjs '<json config>'
// Opens the WAL with sync: 'always', appends (and writes, then flushes) concurrently to
// several partitions and reports on stdout, one line each, written only after the promise
// resolved:
//   O {"last":{p:lastLsn},"recovery":[...]}   opened (before any append)
//   A p lsn segment offset                      single append acknowledged
//   I p first last                              batch about to be appended (intent)
//   B p first last                              batch acknowledged, or a run of write()s
//                                               acknowledged by the flush() after it
//   P p minLsn                                  purgeBefore about to be called
//   Q p minLsn firstLsn segmentsDeleted         purgeBefore resolved
//   C                                           closed cleanly (after "stop" on stdin)
//   E message                                   something unexpected; exits 2
// process.stdout.write is synchronous for pipes on Linux, so a line is in the pipe
// before the next thing happens; whatever the parent reads was really acknowledged.

import { Wal } from 'segwal'
import { payloadFor, mulberry32, frameSize, SEGMENT_HEADER } from './crash-lib.mjs'

const cfg = JSON.parse(process.argv[2])
const rnd = mulberry32(cfg.seed)
const out = (line) => process.stdout.write(line + '\n')

function fail(msg) {
  out(`E ${String(msg).replace(/\n/g, ' | ')}`)
  process.exit(2)
}
process.on('uncaughtException', (e) => fail(`uncaught ${e?.stack ?? e}`))
process.on('unhandledRejection', (e) => fail(`unhandled rejection ${e?.code ?? ''} ${e?.stack ?? e}`))

const wal = await Wal.open(cfg.dir, { sync: 'always', segmentSize: cfg.segmentSize, preallocate: cfg.preallocate })
const last = {}
for (const p of cfg.partitions) last[p] = wal.lastLsn(p)
out(`O ${JSON.stringify({ last, recovery: wal.recovery })}`)

const next = new Map(cfg.partitions.map((p) => [p, last[p] + 1]))
// Everything up to watermark[p] is acknowledged (or was durable at open).
const watermark = new Map(cfg.partitions.map((p) => [p, last[p]]))
const ackedAbove = new Map(cfg.partitions.map((p) => [p, new Set()]))
function acked(p, a, b) {
  const set = ackedAbove.get(p)
  for (let l = a; l <= b; l++) set.add(l)
  let w = watermark.get(p)
  while (set.delete(w + 1)) w++
  watermark.set(p, w)
}

// A view at an odd offset inside a bigger buffer, to exercise byteOffset handling.
function asView(s) {
  const b = Buffer.from(s, 'utf8')
  const off = 1 + Math.floor(rnd() * 7)
  const big = new Uint8Array(b.length + off + 3)
  big.set(b, off)
  return big.subarray(off, off + b.length)
}
function form(s) {
  const r = rnd()
  if (r < 0.4) return s
  if (r < 0.8) return Buffer.from(s, 'utf8')
  return asView(s)
}

const budget = cfg.segmentSize - SEGMENT_HEADER
let stopping = false

async function worker() {
  while (!stopping) {
    const p = cfg.partitions[Math.floor(rnd() * cfg.partitions.length)]
    const r = rnd()
    if (r < cfg.purgeProb) {
      const w = watermark.get(p)
      if (w < 2) continue
      const m = Math.max(1, w - Math.floor(rnd() * 200))
      out(`P ${p} ${m}`)
      const res = await wal.purgeBefore(p, m)
      out(`Q ${p} ${m} ${res.firstLsn} ${res.segmentsDeleted}`)
    } else if (r < cfg.purgeProb + cfg.batchProb) {
      const want = 1 + Math.floor(rnd() * 24)
      const first = next.get(p)
      const payloads = []
      let bytes = 0
      for (let i = 0; i < want; i++) {
        const s = payloadFor(p, first + i, cfg.round)
        const f = frameSize(Buffer.byteLength(s, 'utf8'))
        if (bytes + f > budget) break
        bytes += f
        payloads.push(form(s))
      }
      const lastLsn = first + payloads.length - 1
      next.set(p, lastLsn + 1)
      out(`I ${p} ${first} ${lastLsn}`)
      const res = await wal.appendBatch(p, payloads)
      if (res.firstLsn !== first || res.lastLsn !== lastLsn || res.count !== payloads.length) {
        fail(`appendBatch(${p}) expected ${first}..${lastLsn}, got ${JSON.stringify(res)}`)
      }
      out(`B ${p} ${first} ${lastLsn}`)
      acked(p, first, lastLsn)
    } else if (r < cfg.purgeProb + cfg.batchProb + cfg.writeProb) {
      // A run of write()s (no promise each), acknowledged together by the flush() after
      // them: reported like a batch's acknowledgement, with no intent (not atomic).
      const first = next.get(p)
      const n = 1 + Math.floor(rnd() * 40)
      for (let i = 0; i < n; i++) {
        const lsn = wal.write(p, form(payloadFor(p, first + i, cfg.round)))
        if (lsn !== first + i) fail(`write(${p}) expected lsn ${first + i}, got ${lsn}`)
      }
      next.set(p, first + n)
      await wal.flush()
      out(`B ${p} ${first} ${first + n - 1}`)
      acked(p, first, first + n - 1)
    } else {
      const lsn = next.get(p)
      next.set(p, lsn + 1)
      const res = await wal.append(p, form(payloadFor(p, lsn, cfg.round)))
      if (res.lsn !== lsn) fail(`append(${p}) expected lsn ${lsn}, got ${JSON.stringify(res)}`)
      out(`A ${p} ${lsn} ${res.segment} ${res.offset}`)
      acked(p, lsn, lsn)
    }
  }
}

let stopResolve
const stopped = new Promise((resolve) => {
  stopResolve = resolve
})
process.stdin.setEncoding('utf8')
process.stdin.on('data', (d) => {
  if (d.includes('stop')) stopResolve()
})
const selfStop = setTimeout(stopResolve, cfg.maxMs)

const workers = []
for (let i = 0; i < cfg.concurrency; i++) workers.push(worker().catch((e) => fail(`${e?.code ?? ''} ${e?.stack ?? e}`)))
await stopped
clearTimeout(selfStop)
stopping = true
await Promise.all(workers)
await wal.close()
out('C')
process.exit(0)
