// The write path without a promise per record (issue #11): `write()` then one `flush()`,
// beside lmdb-js puts of the same records, and the memory child for 1 M written records.
// As a script, the share of rotation in write()+flush() (a diagnosis, not a bench row):
//   node bench/writes.mjs --rotation [records per round] [rounds]
import { pathToFileURL } from 'node:url'
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

/**
 * Rounds of `R` write()s + flush() on 64 MiB segments (sync 'none'): the rounds during
 * which a segment was sealed (segments() grew) against the others.
 */
export async function rotationShare(R = 10_000, K = 400) {
  const rec = payload(128)
  return inScratch('w-rotation', (dir) => openSegwal(dir, { sync: 'none' }), async (wal) => {
    const rot = []
    const plain = []
    for (let k = 0; k < K; k++) {
      const before = wal.segments(1).length
      const t0 = now()
      for (let i = 0; i < R; i++) wal.write(1, rec)
      await wal.flush()
      ;(k > 0 && wal.segments(1).length > before ? rot : plain).push(now() - t0)
    }
    const sum = (xs) => xs.reduce((a, b) => a + b, 0)
    const usual = sum(plain) / plain.length
    const total = sum(rot) + sum(plain)
    return {
      rounds: K,
      rotations: rot.length,
      rotationMs: rot.length ? sum(rot) / rot.length : 0,
      maxRotationMs: Math.max(0, ...rot),
      usualMs: usual,
      share: (sum(rot) - rot.length * usual) / total,
      recordsPerSec: (R * K) / (total / 1000),
    }
  })
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv[2] === '--rotation') {
  const R = Number(process.argv[3] ?? 10_000)
  const r = await rotationShare(R, Number(process.argv[4] ?? 400))
  console.log(
    `${r.rounds} rounds of ${fmtNum(R)}: ${r.rotations} sealed a segment, ${r.rotationMs.toFixed(1)} ms each ` +
      `(max ${r.maxRotationMs.toFixed(1)}) vs ${r.usualMs.toFixed(2)} ms; rotation's share of the time ` +
      `${(r.share * 100).toFixed(0)}%; ${(r.recordsPerSec / 1e6).toFixed(2)} M records/s`,
  )
}
