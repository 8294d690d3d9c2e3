// The write path without a promise per record (issue #11): `write()` then one `flush()`,
// beside lmdb-js puts of the same records, and the memory child for 1 M written records.
import { firedRounds, fmtNum, inScratch, interleave, now, throughputTable } from './lib.mjs'
import { openLmdb, openSegwal, payload } from './peers.mjs'

/** The systems of the write() workload; rows come back as segwal, lmdb. */
export function writeSystems(P, rec) {
  const R = P.round
  return [
    {
      name: 'segwal write()+flush()',
      note: `sync 'none', ${fmtNum(R)} write() calls then one flush(), repeated`,
      async run() {
        return inScratch('w-segwal', (dir) => openSegwal(dir, { sync: 'none' }), (wal) =>
          firedRounds(P.timeBox, R, rec.length, () => {
            for (let i = 0; i < R; i++) wal.write(1, rec)
            return wal.flush()
          }),
        )
      },
    },
    {
      name: 'lmdb',
      note: 'noSync, puts fired then awaited (one event turn = one txn)',
      async run() {
        let k = 0
        return inScratch('w-lmdb', (dir) => openLmdb(dir, { durable: false }), (db) =>
          firedRounds(P.timeBox, R, rec.length, () => {
            const ps = new Array(R)
            for (let i = 0; i < R; i++) ps[i] = db.put(++k, rec)
            return Promise.all(ps)
          }),
        )
      },
    },
  ]
}

/** Workload: 128 B records through `write()` + one `flush()` per round, vs lmdb-js puts. */
export async function writes(ctx, target) {
  const { P } = ctx
  const rec = payload(128)
  const rows = await interleave(writeSystems(P, rec), P.runs, ctx.log)
  const [seg, lm] = rows
  const W = '#11.1 write()+flush()'
  target(ctx, W, 'records/s', seg.opsPerSec, '>= 5,000,000', seg.opsPerSec >= 5_000_000)
  target(ctx, W, 'segwal / lmdb puts', lm.opsPerSec && seg.opsPerSec / lm.opsPerSec, '>= 5x', seg.opsPerSec / lm.opsPerSec >= 5, 'x')
  const idle = ctx.shared.idleGapMs
  if (idle != null) {
    target(ctx, '#11.8 write()+flush()', 'max loop gap - idle floor (firing turn excluded)', seg.maxGapMs - idle, '<= 5 ms', seg.maxGapMs - idle <= 5, 'ms')
  }
  return {
    text: throughputTable(`W. write() + flush(), 128 B records, ${fmtNum(P.round)} per round (loop gap excludes the firing turn)`, rows, { latency: false }),
    rows,
  }
}

/** Memory child: `n` records of `size` bytes through write(), then one flush(). */
export async function writtenChild(args) {
  const rss = () => process.memoryUsage.rss()
  const wal = await openSegwal(args.dir, { sync: 'none' })
  const rec = payload(args.size)
  wal.write(1, rec)
  await wal.flush()
  const rss0 = rss()
  const heap0 = process.memoryUsage().heapUsed
  const t0 = now()
  let max = rss0
  for (let i = 0; i < args.n; i++) {
    wal.write(1, rec)
    if ((i & 65535) === 0) max = Math.max(max, rss())
  }
  const fireMs = now() - t0
  max = Math.max(max, rss())
  const heapFired = process.memoryUsage().heapUsed
  const timer = setInterval(() => {
    max = Math.max(max, rss())
  }, 5)
  await wal.flush()
  clearInterval(timer)
  const seconds = (now() - t0) / 1000
  max = Math.max(max, rss())
  await wal.close()
  return { rss0, rssMax: max, heapDelta: heapFired - heap0, fireMs, seconds, n: args.n, size: args.size }
}
