// The workloads of `npm run bench` (issue #3). Each one runs segwal and its peers in the
// same process, interleaved (A B C A B C ...), and returns printable tables, the rows as
// data, and the issue's targets checked against what it measured.
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import {
  GiB,
  KiB,
  MiB,
  fmtBytes,
  fmtMs,
  fmtNum,
  freeBytes,
  pauseGap,
  resumeGap,
  settle,
  interleave,
  Latencies,
  median,
  now,
  percentile,
  rm,
  scratchRoot,
  table,
  throughputTable,
  timedLoops,
  timedSyncLoop,
  tmpDir,
  dirBytes,
  firedRounds,
  inScratch,
  sumBatches,
  sumRecords,
} from './lib.mjs'
import { promiseRound } from './floors.mjs'
import { writes, writtenChild } from './writes.mjs'
import { beKey, openLevel, openLmdb, openSegwal, payload, rawWriter } from './peers.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))

/** Sizes and durations of the two modes. */
export function params(quick, opts = {}) {
  const P = quick
    ? {
        runs: 3,
        timeBox: 0.25,
        round: 10_000,
        batchBytes: 32 * MiB,
        read128: 150_000,
        read4kBytes: 64 * MiB,
        openSegments: 1000,
        openParts: 4,
        openBig: 128 * MiB,
        seekBytes: 64 * MiB,
        seeks: 60,
        rotationRecords: 8_000,
        streamBytes: 128 * MiB,
        inflight: 1_000_000,
        inflightSizes: [128],
        inflightSyncs: ['none'],
        memRuns: 1,
        engineRecords: 50_000,
        rawSeqBytes: 32 * MiB,
      }
    : {
        runs: 5,
        timeBox: 2,
        round: 100_000,
        batchBytes: 1 * GiB,
        read128: 1_000_000,
        read4kBytes: 1 * GiB,
        openSegments: 1000,
        openParts: 1,
        openBig: 10 * GiB,
        seekBytes: 1 * GiB,
        seeks: 300,
        rotationRecords: 100_000,
        streamBytes: 4 * GiB,
        inflight: 1_000_000,
        inflightSizes: [128, 1024],
        inflightSyncs: ['none', 'always'],
        memRuns: 3,
        engineRecords: 50_000,
        rawSeqBytes: 1 * GiB,
      }
  if (opts.runs) P.runs = opts.runs
  if (opts.openGiB) P.openBig = Math.round(opts.openGiB * GiB)
  P.openSmall = Math.max(MiB, Math.round(P.openBig / 100))
  return P
}

const ms = (s) => s * 1000

// Appends `count` records of `rec` to partition 1 in batches of `per`, keeping `window`
// batches in flight (sync 'none' WALs: used to build data sets quickly).
async function fillSegwal(wal, count, rec, per = 256, window = 16) {
  const full = Array(per).fill(rec)
  const inflight = []
  for (let done = 0; done < count; done += per) {
    const n = Math.min(per, count - done)
    inflight.push(wal.appendBatch(1, n === per ? full : full.slice(0, n)))
    if (inflight.length >= window) await inflight.shift()
  }
  await Promise.all(inflight)
  await wal.sync()
}

/**
 * fdatasyncs every file under `dir`: a peer filled with its sync off leaves dirty pages,
 * and the kernel writing them back on a 2-core machine would slow whatever is timed next.
 */
function settleFiles(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) settleFiles(p)
    else if (e.isFile()) {
      const fd = fs.openSync(p, 'r+')
      try {
        fs.fdatasyncSync(fd)
      } finally {
        fs.closeSync(fd)
      }
    }
  }
}

async function fillLmdb(db, count, rec, per = 256, window = 16) {
  let k = 0
  const inflight = []
  for (let done = 0; done < count; done += per) {
    const n = Math.min(per, count - done)
    inflight.push(
      db.batch(() => {
        for (let i = 0; i < n; i++) db.put(++k, rec)
      }),
    )
    if (inflight.length >= window) await inflight.shift()
  }
  await Promise.all(inflight)
  await db.flushed
}

function target(ctx, workload, metric, value, goal, pass, unit = '') {
  ctx.targets.push({ workload, metric, value, goal, pass: value == null ? null : pass, unit })
}

/** Issue #11 target 8: the max loop gap of `row` within 5 ms of the idle loop's (raw workload). */
function gapTarget(ctx, workload, row) {
  const idle = ctx.shared.idleGapMs
  if (idle == null) return
  const gc = row.maxGapGc?.ms > 0 ? ` (V8 ${row.maxGapGc.kind} inside: ${row.maxGapGc.ms.toFixed(1)} ms)` : ''
  target(ctx, workload, `max loop gap - idle floor${gc}`, row.maxGapMs - idle, '<= 5 ms', row.maxGapMs - idle <= 5, 'ms')
}

const rowOf = (rows, prefix) => rows.find((r) => r.system.startsWith(prefix))

// ------------------------------------------------------------------ raw limits (fio-style)

export async function raw(ctx) {
  const { P } = ctx
  const chunk = payload(MiB, 7)
  const b4k = payload(4 * KiB, 3)
  const seq = {
    name: `sequential write, 1 MiB writes, ${fmtBytes(P.rawSeqBytes)} + final fdatasync`,
    run() {
      const dir = tmpDir('raw-seq')
      const fd = fs.openSync(path.join(dir, 'f'), 'w')
      try {
        const t0 = now()
        for (let done = 0; done < P.rawSeqBytes; done += MiB) fs.writeSync(fd, chunk)
        fs.fdatasyncSync(fd)
        return { bytes: P.rawSeqBytes, seconds: (now() - t0) / 1000 }
      } finally {
        fs.closeSync(fd)
        rm(dir)
      }
    },
  }
  const b128 = payload(128)
  const lat = {
    name: '4 KiB append + fdatasync (writeSync/fdatasyncSync loop)',
    run: () => rawSyncedLoop(P, 'raw-4k', b4k),
  }
  const lat128 = {
    name: '128 B append + fdatasync (writeSync/fdatasyncSync loop)',
    run: () => rawSyncedLoop(P, 'raw-128', b128),
  }
  const idle = {
    name: 'idle event loop (nothing running: the noise floor of the loop-gap column)',
    async run() {
      await new Promise((r) => setTimeout(r, ms(P.timeBox)))
      return { seconds: P.timeBox }
    },
  }
  const rows = await interleave([seq, lat, lat128, idle], P.runs, ctx.log)
  ctx.shared.rawSeqMBs = rows[0].mbPerSec
  ctx.shared.raw4k = rows[1]
  ctx.shared.raw128 = rows[2]
  ctx.shared.idleGapMs = rows[3].maxGapMs
  const text = table('Raw limits of this disk (measured from Node, blocking calls)', rows, [
    ['test', (r) => r.system, 'l'],
    ['MiB/s', (r) => fmtNum(r.mbPerSec, 1)],
    ['ops/s', (r) => (r.p50 != null ? fmtNum(r.opsPerSec) : '-')],
    ['p50', (r) => fmtMs(r.p50)],
    ['p99', (r) => fmtMs(r.p99)],
    ['max loop gap', (r) => fmtMs(r.maxGapMs)],
  ])
  return { text, rows }
}

/** The raw baseline: a blocking write + fdatasync loop of `rec` into a fresh file. */
function rawSyncedLoop(P, tag, rec) {
  const dir = tmpDir(tag)
  const w = rawWriter(path.join(dir, 'f'))
  try {
    const r = timedSyncLoop(P.timeBox, () => w.syncedWrite(rec))
    r.bytes = r.ops * rec.length
    return r
  } finally {
    w.close()
    rm(dir)
  }
}

// ------------------------------------------------------------------ 1 and 2. durable appends

/**
 * The durable workloads' systems: `C` async loops each awaiting one durable 128 B write
 * (the plain-fs and raw baselines write serially: one file, one writer). Rows come back in
 * this order: segwal, raw, lmdb, classic-level, fs.
 */
function durableSystems(P, rec, C) {
  const loops = C === 1 ? '1 appender awaiting each' : `${C} async loops awaiting each`
  return [
    {
      name: 'segwal',
      note: `sync 'always', ${loops} append`,
      async run() {
        return inScratch(`d${C}-segwal`, (dir) => openSegwal(dir, { sync: 'always' }), async (wal) => {
          const s0 = wal.stats()
          const r = await timedLoops(C, P.timeBox, () => wal.append(1, rec))
          const s1 = wal.stats()
          const appends = s1.appends - s0.appends
          const syncs = s1.syncs - s0.syncs
          r.bytes = r.ops * rec.length
          r.extra = { appends, syncs, text: `${fmtNum(appends)} appends / ${fmtNum(syncs)} syncs = ${(appends / Math.max(1, syncs)).toFixed(1)} per sync` }
          return r
        })
      },
    },
    {
      name: 'raw',
      note: 'writeSync + fdatasyncSync per record, serial (blocks the loop)',
      run: () => rawSyncedLoop(P, `d${C}-raw`, rec),
    },
    {
      name: 'lmdb',
      note: `overlappingSync off (put resolves after its synced commit), ${loops} put`,
      async run() {
        let k = 0
        return inScratch(`d${C}-lmdb`, (dir) => openLmdb(dir, { durable: true }), async (db) => {
          const r = await timedLoops(C, P.timeBox, () => db.put(++k, rec))
          r.bytes = r.ops * rec.length
          return r
        })
      },
    },
    {
      name: 'classic-level',
      note: `put {sync:true}, ${loops} put`,
      async run() {
        let k = 0
        return inScratch(`d${C}-level`, (dir) => openLevel(dir), async (db) => {
          const r = await timedLoops(C, P.timeBox, () => db.put(beKey(++k), rec, { sync: true }))
          r.bytes = r.ops * rec.length
          return r
        })
      },
    },
    {
      name: 'fs',
      note: 'FileHandle write + datasync per record, serial',
      async run() {
        return inScratch(`d${C}-fs`, (dir) => fsp.open(path.join(dir, 'f'), 'w'), async (fh) => {
          const r = await timedLoops(1, P.timeBox, async () => {
            await fh.write(rec)
            await fh.datasync()
          })
          r.bytes = r.ops * rec.length
          return r
        })
      },
    },
  ]
}

export async function durable64(ctx) {
  const { P } = ctx
  const rec = payload(128)
  const rows = await interleave(durableSystems(P, rec, 64), P.runs, ctx.log)
  const [seg, rw, lm] = rows
  const W = '1 durable 64'
  target(ctx, W, 'segwal appends/s', seg.opsPerSec, '>= 250,000', seg.opsPerSec >= 250_000)
  target(ctx, W, 'segwal / lmdb', lm.opsPerSec && seg.opsPerSec / lm.opsPerSec, '>= 3x', seg.opsPerSec / lm.opsPerSec >= 3, 'x')
  target(ctx, W, 'segwal p99 / raw fdatasync p99', rw.p99 && seg.p99 / rw.p99, '<= 4x', seg.p99 / rw.p99 <= 4, 'x')
  target(ctx, W, 'max loop gap', seg.maxGapMs, '<= 5 ms', seg.maxGapMs <= 5, 'ms')
  const limit = rw.p50 && 64 / (rw.p50 / 1000)
  target(ctx, '#11.3 durable 64', 'segwal / (64 / raw 128 B write+fdatasync p50)', limit && seg.opsPerSec / limit, '>= 0.75', seg.opsPerSec / limit >= 0.75, 'x')
  target(ctx, '#11.3 durable 64', 'segwal / lmdb', lm.opsPerSec && seg.opsPerSec / lm.opsPerSec, '>= 2x', seg.opsPerSec / lm.opsPerSec >= 2, 'x')
  gapTarget(ctx, '#11.8 durable 64', seg)
  return {
    text: throughputTable('1. Durable: 64 concurrent appenders, 128 B records, acknowledged after fdatasync', rows),
    rows,
  }
}

export async function durable1(ctx) {
  const { P } = ctx
  const rec = payload(128)
  const rows = await interleave(durableSystems(P, rec, 1), P.runs, ctx.log)
  const [seg, rw] = rows
  target(ctx, '2 durable 1', 'segwal / raw write+fdatasync', rw.opsPerSec && seg.opsPerSec / rw.opsPerSec, '>= 0.9x', seg.opsPerSec / rw.opsPerSec >= 0.9, 'x')
  target(ctx, '2 durable 1', 'max loop gap', seg.maxGapMs, '<= 5 ms', seg.maxGapMs <= 5, 'ms')
  target(ctx, '#11.4 durable 1', 'segwal / raw write+fdatasync', rw.opsPerSec && seg.opsPerSec / rw.opsPerSec, '>= 0.9x', seg.opsPerSec / rw.opsPerSec >= 0.9, 'x')
  gapTarget(ctx, '#11.8 durable 1', seg)
  return { text: throughputTable('2. Durable: 1 appender awaiting each 128 B append', rows), rows }
}

// ------------------------------------------------------------------ 3. buffered append

export async function buffered(ctx) {
  const { P } = ctx
  const rec = payload(128)
  const R = P.round
  // Fire R operations without awaiting (one synchronous turn, left out of the loop-gap
  // figure and reported apart), await them all, repeat until the time box is over.
  const rounds = (fire) => firedRounds(P.timeBox, R, rec.length, fire)
  const systems = [
    {
      name: 'segwal',
      note: `sync 'none', ${fmtNum(R)} appends fired then awaited, repeated`,
      async run() {
        return inScratch('buf-segwal', (dir) => openSegwal(dir, { sync: 'none' }), async (wal) => {
          return rounds(() => {
            const ps = new Array(R)
            for (let i = 0; i < R; i++) ps[i] = wal.append(1, rec)
            return Promise.all(ps)
          })
        })
      },
    },
    {
      name: 'lmdb',
      note: 'noSync, puts fired then awaited (one event turn = one txn)',
      async run() {
        let k = 0
        return inScratch('buf-lmdb', (dir) => openLmdb(dir, { durable: false }), async (db) => {
          return rounds(() => {
            const ps = new Array(R)
            for (let i = 0; i < R; i++) ps[i] = db.put(++k, rec)
            return Promise.all(ps)
          })
        })
      },
    },
    {
      name: 'classic-level put',
      note: 'put (no sync) fired then awaited',
      async run() {
        let k = 0
        return inScratch('buf-level', (dir) => openLevel(dir), async (db) => {
          return rounds(() => {
            const ps = new Array(R)
            for (let i = 0; i < R; i++) ps[i] = db.put(beKey(++k), rec)
            return Promise.all(ps)
          })
        })
      },
    },
    {
      name: 'classic-level batch',
      note: 'batch of 1,000 puts (no sync)',
      async run() {
        let k = 0
        return inScratch('buf-levelb', (dir) => openLevel(dir), async (db) => {
          return rounds(() => {
            const ps = []
            for (let i = 0; i < R; i += 1000) {
              const ops = new Array(1000)
              for (let j = 0; j < 1000; j++) ops[j] = { type: 'put', key: beKey(++k), value: rec }
              ps.push(db.batch(ops))
            }
            return Promise.all(ps)
          })
        })
      },
    },
    {
      name: 'fs writev',
      note: 'FileHandle.writev of 1,024 records per call, awaited in turn (no sync)',
      async run() {
        const iov = Array(1024).fill(rec)
        return inScratch('buf-fs', (dir) => fsp.open(path.join(dir, 'f'), 'w'), async (fh) => {
          return rounds(async () => {
            for (let i = 0; i < R; i += 1024) await fh.writev(iov)
          })
        })
      },
    },
  ]
  systems.push({
    name: 'V8 promise floor',
    note: `no I/O: ${fmtNum(R)} distinct promises, each resolved with its own object (bench/floors.mjs)`,
    run: () => rounds(() => promiseRound(R)),
  })
  const rows = await interleave(systems, P.runs, ctx.log)
  const [seg, lm] = rows
  const floor = rows.at(-1)
  target(ctx, '#11.2 append() in flight', 'segwal / V8 promise floor', seg.opsPerSec / floor.opsPerSec, '>= 0.9x', seg.opsPerSec / floor.opsPerSec >= 0.9, 'x')
  target(ctx, '#11.2 append() in flight', 'segwal / lmdb', lm.opsPerSec && seg.opsPerSec / lm.opsPerSec, '>= 1.0x', seg.opsPerSec / lm.opsPerSec >= 1, 'x')
  gapTarget(ctx, '#11.8 buffered append', seg)
  target(ctx, '3 buffered append', 'segwal appends/s', seg.opsPerSec, '>= 2,000,000', seg.opsPerSec >= 2_000_000)
  target(ctx, '3 buffered append', 'segwal / lmdb', lm.opsPerSec && seg.opsPerSec / lm.opsPerSec, '>= 2x', seg.opsPerSec / lm.opsPerSec >= 2, 'x')
  target(ctx, '3 buffered append', 'max loop gap (firing turn excluded)', seg.maxGapMs, '<= 5 ms', seg.maxGapMs <= 5, 'ms')
  return {
    text: throughputTable(
      `3. Buffered append, 128 B records, ${fmtNum(R)} fired per round (loop gap excludes the benchmark's own firing turn, shown in notes)`,
      rows,
      { latency: false },
    ),
    rows,
  }
}

// ------------------------------------------------------------------ 4. buffered appendBatch, 4 KiB

export async function batch(ctx) {
  const { P } = ctx
  const rec = payload(4 * KiB)
  const PER = 256
  const total = P.batchBytes
  const nBatches = Math.ceil(total / (PER * rec.length))
  const bytes = nBatches * PER * rec.length
  const records = Array(PER).fill(rec)
  const WINDOW = 16
  const systems = [
    {
      name: 'segwal',
      note: `sync 'none', appendBatch of ${PER}, ${WINDOW} batches in flight, final wal.sync() timed`,
      async run() {
        return inScratch('batch-segwal', (dir) => openSegwal(dir, { sync: 'none' }), async (wal) => {
          const t0 = now()
          const inflight = []
          for (let i = 0; i < nBatches; i++) {
            inflight.push(wal.appendBatch(1, records))
            if (inflight.length >= WINDOW) await inflight.shift()
          }
          await Promise.all(inflight)
          await wal.sync()
          return { ops: nBatches * PER, bytes, seconds: (now() - t0) / 1000 }
        })
      },
    },
    {
      name: 'lmdb',
      note: `noSync, db.batch of ${PER} puts, ${WINDOW} in flight`,
      async run() {
        let k = 0
        return inScratch('batch-lmdb', (dir) => openLmdb(dir, { durable: false }), async (db) => {
          const t0 = now()
          const inflight = []
          for (let i = 0; i < nBatches; i++) {
            inflight.push(
              db.batch(() => {
                for (let j = 0; j < PER; j++) db.put(++k, rec)
              }),
            )
            if (inflight.length >= WINDOW) await inflight.shift()
          }
          await Promise.all(inflight)
          return { ops: nBatches * PER, bytes, seconds: (now() - t0) / 1000 }
        })
      },
    },
    {
      name: 'fs writev',
      note: `FileHandle.writev of ${PER} records per call, final datasync`,
      async run() {
        return inScratch('batch-fs', (dir) => fsp.open(path.join(dir, 'f'), 'w'), async (fh) => {
          const t0 = now()
          for (let i = 0; i < nBatches; i++) await fh.writev(records)
          await fh.datasync()
          return { ops: nBatches * PER, bytes, seconds: (now() - t0) / 1000 }
        })
      },
    },
    {
      name: 'raw sequential',
      note: '1 MiB writeSync + final fdatasyncSync (blocks the loop)',
      run() {
        const dir = tmpDir('batch-raw')
        const fd = fs.openSync(path.join(dir, 'f'), 'w')
        const chunk = payload(MiB, 5)
        try {
          const t0 = now()
          for (let done = 0; done < bytes; done += MiB) fs.writeSync(fd, chunk)
          fs.fdatasyncSync(fd)
          return { ops: bytes / rec.length, bytes, seconds: (now() - t0) / 1000 }
        } finally {
          fs.closeSync(fd)
          rm(dir)
        }
      },
    },
  ]
  const rows = await interleave(systems, P.runs, ctx.log)
  const [seg, lm, , rw] = rows
  target(ctx, '4 appendBatch 4 KiB', 'segwal / lmdb MB/s', lm.mbPerSec && seg.mbPerSec / lm.mbPerSec, '>= 2x', seg.mbPerSec / lm.mbPerSec >= 2, 'x')
  target(ctx, '4 appendBatch 4 KiB', 'segwal / raw sequential MB/s', rw.mbPerSec && seg.mbPerSec / rw.mbPerSec, '>= 0.8x', seg.mbPerSec / rw.mbPerSec >= 0.8, 'x')
  target(ctx, '4 appendBatch 4 KiB', 'max loop gap', seg.maxGapMs, '<= 5 ms', seg.maxGapMs <= 5, 'ms')
  return {
    text: throughputTable(`4. Buffered appendBatch: ${PER} x 4 KiB records per batch, ${fmtBytes(bytes)} per run`, rows, { latency: false }),
    rows,
  }
}

// ------------------------------------------------------------------ 5. reads

/** Times `iterate` (which reads a whole data set), checking it saw every record and byte. */
async function timedStream(iterate, count, size) {
  const t0 = now()
  const { n, b } = await iterate()
  const seconds = (now() - t0) / 1000
  if (n !== count || b !== count * size) throw new Error(`saw ${n} records / ${b} bytes, expected ${count} / ${count * size}`)
  return { ops: n, bytes: b, seconds }
}

/** `for await` over `wal.stream(1)`, as an `interleave` system. */
function streamSystem(name, wal, count, size) {
  return {
    name,
    note: 'for await over wal.stream()',
    run: () =>
      timedStream(async () => {
        const [n, b] = await sumRecords(wal.stream(1))
        return { n, b }
      }, count, size),
  }
}

/** `for...of db.getRange()`, as an `interleave` system. */
function getRangeSystem(name, db, count, size) {
  return {
    name,
    note: 'for...of db.getRange() (synchronous iterator)',
    run: () =>
      timedStream(async () => {
        let n = 0
        let b = 0
        for (const { value } of db.getRange()) {
          n++
          b += value.length
        }
        return { n, b }
      }, count, size),
  }
}

/**
 * For 128 B and 4 KiB records: builds the read workloads' data set in segwal (partition 1)
 * and lmdb, calls `use(size, count, wal, db)`, and deletes both.
 */
async function withReadSets(ctx, tag, use) {
  const { P } = ctx
  for (const [size, count] of [
    [128, P.read128],
    [4 * KiB, Math.floor(P.read4kBytes / (4 * KiB))],
  ]) {
    const rec = payload(size)
    const sdir = tmpDir(`${tag}${size}-segwal`)
    const ldir = tmpDir(`${tag}${size}-lmdb`)
    ctx.log(`  building ${fmtNum(count)} x ${size} B records in segwal and lmdb...`)
    const wal = await openSegwal(sdir, { sync: 'none' })
    const db = await openLmdb(ldir, { durable: false })
    try {
      await fillSegwal(wal, count, rec, size === 128 ? 1024 : 256)
      await fillLmdb(db, count, rec, size === 128 ? 1024 : 256)
      // Reads are timed from a warm page cache with no writeback of the fill running.
      settleFiles(ldir)
      await use(size, count, wal, db)
    } finally {
      await wal.close()
      await db.close()
      rm(sdir)
      rm(ldir)
    }
  }
}

export async function read(ctx) {
  const { P } = ctx
  const out = { text: '', rows: {} }
  await withReadSets(ctx, 'read', async (size, count, wal, db) => {
    const systems = [streamSystem('segwal', wal, count, size), getRangeSystem('lmdb', db, count, size)]
    const rows = await interleave(systems, P.runs, ctx.log)
    for (const r of rows) if (r.mbPerSec != null) r.extra = { text: `${((r.mbPerSec * MiB) / 1e9).toFixed(2)} GB/s` }
    out.rows[size] = rows
    const [seg, lm] = rows
    if (size === 128) {
      target(ctx, '5 read 128 B', 'segwal records/s', seg.opsPerSec, '>= 5,000,000', seg.opsPerSec >= 5e6)
      target(ctx, '5 read 128 B', 'segwal / lmdb getRange', lm.opsPerSec && seg.opsPerSec / lm.opsPerSec, '>= 5x', seg.opsPerSec / lm.opsPerSec >= 5, 'x')
    } else {
      const gbs = (seg.mbPerSec * MiB) / 1e9
      target(ctx, '5 read 4 KiB', 'segwal GB/s', gbs, '>= 2 GB/s', gbs >= 2, 'GB/s')
    }
    target(ctx, `5 read ${size === 128 ? '128 B' : '4 KiB'}`, 'max loop gap', seg.maxGapMs, '<= 5 ms', seg.maxGapMs <= 5, 'ms')
    out.text += throughputTable(
      `5. Read: stream ${fmtNum(count)} records of ${fmtBytes(size)} (${fmtBytes(count * size)}, page cache warm)`,
      rows,
      { latency: false },
    )
  })
  return out
}

// ------------------------------------------------------------------ 5b. streamBatches

// Issue #11 targets 5-8: streamBatches() beside stream(), lmdb getRange and the engine's
// Reader alone (target 6's reference), and the idle loop of the same run (the floor of
// the loop-gap column).
export async function readBatches(ctx) {
  const { P } = ctx
  const out = { text: '', rows: {} }
  await withReadSets(ctx, 'batches', async (size, count, wal, db) => {
    const systems = [
      {
        name: 'segwal streamBatches()',
        note: 'for await over wal.streamBatches(), lengths summed per batch',
        run: () =>
          timedStream(async () => {
            const [n, b] = await sumBatches(wal.streamBatches(1))
            return { n, b }
          }, count, size),
      },
      streamSystem('segwal stream()', wal, count, size),
      getRangeSystem('lmdb getRange()', db, count, size),
      {
        // Target #6's reference, on the same records in the same run: the engine's Reader
        // draining the partition on the thread pool (1 MiB batches into one recycled
        // buffer), no JS object made (a doc-hidden call of the batch stream).
        name: 'engine Reader alone',
        note: 'the engine reading the same records, no JS objects (streamBatches().engineScan())',
        run: () =>
          timedStream(async () => {
            const s = await wal.streamBatches(1).engineScan()
            return { n: s.records, b: s.bytes }
          }, count, size),
      },
      {
        name: 'idle event loop',
        note: 'nothing running: the floor of the loop-gap column',
        async run() {
          await new Promise((r) => setTimeout(r, ms(P.timeBox)))
          return { seconds: P.timeBox }
        },
      },
    ]
    const rows = await interleave(systems, P.runs, ctx.log)
    for (const r of rows) if (r.mbPerSec != null) r.extra = { text: `${((r.mbPerSec * MiB) / 1e9).toFixed(2)} GB/s` }
    out.rows[size] = rows
    const [batches, stream, lm, engine, idle] = rows
    const label = size === 128 ? '128 B' : '4 KiB'
    if (size === 128) {
      target(ctx, '#5 streamBatches 128 B', 'records/s', batches.opsPerSec, '>= 20,000,000', batches.opsPerSec >= 20e6)
      target(ctx, '#7 stream() 128 B', 'records/s', stream.opsPerSec, '>= 5,000,000', stream.opsPerSec >= 5e6)
    } else {
      const ratio = engine.mbPerSec ? batches.mbPerSec / engine.mbPerSec : null
      target(ctx, '#6 streamBatches 4 KiB', 'MiB/s / engine Reader alone MiB/s (same run)', ratio, '>= 0.8x', ratio != null && ratio >= 0.8, 'x')
      const vs = lm.mbPerSec ? stream.mbPerSec / lm.mbPerSec : null
      target(ctx, '#7 stream() 4 KiB', 'stream() / lmdb getRange', vs, '>= 2x', vs != null && vs >= 2, 'x')
    }
    for (const r of [batches, stream]) {
      const over = r.maxGapMs - idle.maxGapMs
      target(ctx, `#8 ${r.system} ${label}`, 'max loop gap - idle floor', over, '<= 5 ms', over <= 5, 'ms')
    }
    out.text += throughputTable(
      `5b. Read in batches: ${fmtNum(count)} records of ${fmtBytes(size)} (${fmtBytes(count * size)}, page cache warm)`,
      rows,
      { latency: false },
    )
  })
  return out
}

// ------------------------------------------------------------------ 7. open

async function buildBig(dir, bytes, segmentSize = 64 * MiB) {
  const rec = payload(4 * KiB, 9)
  const wal = await openSegwal(dir, { sync: 'none', segmentSize })
  // Batches must fit a segment: at most a quarter of one.
  const per = Math.max(1, Math.min(256, Math.floor(segmentSize / 4 / (rec.length + 32))))
  await fillSegwal(wal, Math.ceil(bytes / rec.length), rec, per, 16)
  await wal.close()
}

async function timeOpen(dir, options) {
  const t0 = now()
  const wal = await openSegwal(dir, options)
  const t = now() - t0
  const parts = wal.partitions()
  const segs = parts.reduce((n, p) => n + wal.segments(p).length, 0)
  const last = parts.reduce((n, p) => n + wal.lastLsn(p), 0)
  await wal.close()
  return { t, segs, last }
}

export async function open(ctx) {
  const { P } = ctx
  // 1,000 segments: 4 KiB segments holding one 3-record batch each. Every rotation syncs,
  // so quick mode spreads them over a few partitions (their writers sync in parallel).
  const d1 = tmpDir('open-1000')
  const parts = P.openParts
  const segsName = `${P.openSegments} segments of 4 KiB${parts > 1 ? ` in ${parts} partitions` : ''}`
  ctx.log(`  building a WAL of ${segsName}...`)
  {
    const wal = await openSegwal(d1, { sync: 'none', segmentSize: 4096 })
    const recs = Array(3).fill(payload(1000))
    const ps = []
    for (let i = 0; i < P.openSegments; i++) ps.push(wal.appendBatch(1 + (i % parts), recs))
    await Promise.all(ps)
    await wal.close()
  }
  // Big vs small.
  const free = freeBytes(scratchRoot())
  let big = P.openBig
  let scaled = ''
  if (big * 1.3 + 4 * GiB > free) {
    big = Math.max(64 * MiB, Math.floor((free - 4 * GiB) / 1.3 / GiB) * GiB)
    scaled = ` (scaled down from ${fmtBytes(P.openBig)}: ${fmtBytes(free)} free)`
  }
  const small = Math.max(MiB, Math.round(big / 100))
  const dBig = tmpDir('open-big')
  const dSmall = tmpDir('open-small')
  // The target compares equal segment counts (open must not depend on bytes), so the
  // small WAL uses segments 1/100 the size: the same number of files.
  const smallSegment = Math.max(64 * KiB, Math.floor(small / Math.ceil(big / (64 * MiB)) / (4 * KiB)) * 4 * KiB)
  ctx.log(
    `  building WALs of ${fmtBytes(big)} (64 MiB segments) and ${fmtBytes(small)} (${fmtBytes(smallSegment)} segments), 4 KiB records${scaled}...`,
  )
  const tb = now()
  await buildBig(dBig, big)
  ctx.log(`  (built ${fmtBytes(big)} in ${((now() - tb) / 1000).toFixed(1)} s)`)
  await buildBig(dSmall, small, smallSegment)
  ctx.shared.bigWal = { dir: dBig, bytes: big }
  const runs = Math.max(P.runs, 5)
  const systems = [
    { name: segsName, dir: d1, opt: { segmentSize: 4096 } },
    { name: `${fmtBytes(dirBytes(dBig))} (${fmtNum(fs.readdirSync(dBig).length)} files)`, dir: dBig, opt: {} },
    { name: `${fmtBytes(dirBytes(dSmall))} (${fmtNum(fs.readdirSync(dSmall).length)} files)`, dir: dSmall, opt: { segmentSize: smallSegment } },
  ].map((s) => ({
    name: s.name,
    async run() {
      const r = await timeOpen(s.dir, s.opt)
      return { seconds: r.t / 1000, lat: { p50: r.t, p99: r.t }, extra: { segments: r.segs, lastLsn: r.last } }
    },
  }))
  const rows = await interleave(systems, runs, ctx.log)
  rm(d1)
  rm(dSmall)
  const [s1000, sBig, sSmall] = rows
  const ratio = sBig.p50 / sSmall.p50
  target(ctx, '7 open', `${P.openSegments} segments open`, s1000.p50, '<= 50 ms', s1000.p50 <= 50, 'ms')
  target(ctx, '7 open', `${fmtBytes(big)} / ${fmtBytes(small)} open time`, ratio, '<= 1.5x', ratio <= 1.5, 'x')
  const text =
    table(`7. Open: Wal.open() time (median of ${runs}; segment table from headers, page cache warm)${scaled}`, rows, [
      ['WAL', (r) => r.system, 'l'],
      ['open (median)', (r) => fmtMs(r.p50)],
      ['segments', (r) => fmtNum(r.extra?.segments)],
      ['lastLsn', (r) => fmtNum(r.extra?.lastLsn)],
      ['max loop gap', (r) => fmtMs(r.maxGapMs)],
    ]) + `\n  big/small open-time ratio: ${ratio.toFixed(2)}x${P.quick ? ' (quick mode: smaller WALs than the full 10 GiB vs 100 MiB)' : ''}`
  return { text, rows, ratio, big, small }
}

// ------------------------------------------------------------------ 8. seek

export async function seek(ctx) {
  const { P } = ctx
  const rec = payload(128)
  const count = Math.floor(P.seekBytes / (128 + 32))
  const dir = tmpDir('seek')
  ctx.log(`  building a ${fmtBytes(P.seekBytes)} partition of ${fmtNum(count)} x 128 B records...`)
  let wal = await openSegwal(dir, { sync: 'none' })
  await fillSegwal(wal, count, rec, 1024, 8)
  await wal.close()
  wal = await openSegwal(dir, { sync: 'none' })
  try {
    let seed = 12345
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed
    }
    const systems = [
      {
        name: 'segwal stream({fromLsn}) -> first record',
        async run() {
          const lat = new Latencies()
          for (let i = 0; i < Math.ceil(P.seeks / P.runs); i++) {
            const lsn = 1 + (rnd() % count)
            const t0 = now()
            const it = wal.stream(1, { fromLsn: lsn })
            const { value } = await it.next()
            lat.add(now() - t0)
            await it.return()
            if (!value || value.lsn !== lsn) throw new Error(`seek to ${lsn} returned ${value?.lsn}`)
          }
          const s = lat.summary()
          return { seconds: 0, lat: s, extra: { n: s.n } }
        },
      },
    ]
    const rows = await interleave(systems, P.runs, ctx.log)
    const r = rows[0]
    target(ctx, '8 seek', `median time to first record (${fmtBytes(P.seekBytes)} partition)`, r.p50, '<= 2 ms', r.p50 <= 2, 'ms')
    const text = table(
      `8. Seek: stream({fromLsn}) at ${P.seeks} random LSNs of a ${fmtBytes(P.seekBytes)} partition (${fmtNum(count)} records)${P.quick ? ' (quick mode: smaller than the full 1 GiB)' : ''}`,
      rows,
      [
        ['operation', (x) => x.system, 'l'],
        ['median', (x) => fmtMs(x.p50)],
        ['p99', (x) => fmtMs(x.p99)],
        ['max loop gap', (x) => fmtMs(x.maxGapMs)],
      ],
    )
    return { text, rows }
  } finally {
    await wal.close()
    rm(dir)
  }
}

// ------------------------------------------------------------------ 9. rotation

export async function rotation(ctx) {
  const { P } = ctx
  const rec = payload(1024)
  const N = P.rotationRecords
  const C = 64
  const frame = 1024 + 32
  const rotSeg = Math.max(4096, Math.floor((N * frame) / 150 / 4096) * 4096)
  const mk = (name, segmentSize) => ({
    name,
    async run() {
      return inScratch('rot', (dir) => openSegwal(dir, { sync: 'always', segmentSize }), async (wal) => {
        const lat = new Latencies()
        let left = N
        const t0 = now()
        const loop = async () => {
          while (left > 0) {
            left--
            const s = now()
            await wal.append(1, rec)
            lat.add(now() - s)
          }
        }
        await Promise.all(Array.from({ length: C }, loop))
        const seconds = (now() - t0) / 1000
        const segs = wal.segments(1).length
        const l = lat.summary()
        return { ops: N, bytes: N * rec.length, seconds, lat: l, extra: { rotations: segs - 1, p999: l.p999, max: l.max } }
      })
    },
  })
  const systems = [mk(`segwal, segmentSize ${fmtBytes(rotSeg)}`, rotSeg), mk('segwal, segmentSize 1 GiB (no rotation)', GiB)]
  const rows = await interleave(systems, P.runs, ctx.log)
  const [rot, none] = rows
  target(ctx, '9 rotation', `p99 with ${rot.extra?.rotations} rotations / p99 without`, rot.p99 / none.p99, '<= 2x', rot.p99 / none.p99 <= 2, 'x')
  const text = table(`9. Rotation: ${fmtNum(N)} x 1 KiB appends, 64 concurrent, sync 'always'`, rows, [
    ['run', (r) => r.system, 'l'],
    ['rotations', (r) => fmtNum(r.extra?.rotations)],
    ['ops/s', (r) => fmtNum(r.opsPerSec)],
    ['p50', (r) => fmtMs(r.p50)],
    ['p99', (r) => fmtMs(r.p99)],
    ['p99.9', (r) => fmtMs(r.extra?.p999)],
    ['max', (r) => fmtMs(r.extra?.max)],
    ['max loop gap', (r) => fmtMs(r.maxGapMs)],
  ])
  return { text: text + `\n  p99 ratio (rotation / none): ${(rot.p99 / none.p99).toFixed(2)}x`, rows }
}

// ------------------------------------------------------------------ 10. memory (child processes)

function child(kind, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(HERE, 'index.mjs'), '--child', kind, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.on('error', reject)
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`child ${kind} exited with ${code}`))
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()))
      } catch (e) {
        reject(e)
      }
    })
  })
}

/** Entry point of the memory children (run in a fresh process so earlier workloads don't count). */
export async function runChild(kind, args) {
  const rss = () => process.memoryUsage.rss()
  if (kind === 'stream') {
    const wal = await openSegwal(args.dir, { sync: 'none' })
    const rss0 = rss()
    let max = rss0
    let bytes = 0
    let n = 0
    const t0 = now()
    for await (const r of wal.stream(1)) {
      bytes += r.payload.length
      if ((++n & 1023) === 0) {
        const m = rss()
        if (m > max) max = m
        if (bytes >= args.bytes) break
      }
    }
    const seconds = (now() - t0) / 1000
    max = Math.max(max, rss())
    await wal.close()
    return { rss0, rssMax: max, bytes, records: n, seconds }
  }
  if (kind === 'inflight') {
    const wal = await openSegwal(args.dir, { sync: args.sync })
    const rec = payload(args.size)
    await wal.append(1, rec)
    const rss0 = rss()
    const heap0 = process.memoryUsage().heapUsed
    const ps = new Array(args.n)
    const t0 = now()
    for (let i = 0; i < args.n; i++) ps[i] = wal.append(1, rec)
    const fireMs = now() - t0
    let max = rss()
    const heapFired = process.memoryUsage().heapUsed
    const timer = setInterval(() => {
      const m = rss()
      if (m > max) max = m
    }, 5)
    await Promise.all(ps)
    clearInterval(timer)
    const seconds = (now() - t0) / 1000
    max = Math.max(max, rss())
    await wal.close()
    return { rss0, rssMax: max, heapDelta: heapFired - heap0, fireMs, seconds, n: args.n, size: args.size }
  }
  if (kind === 'written') return writtenChild(args)
  throw new Error(`unknown child ${kind}`)
}

export async function memory(ctx) {
  const { P } = ctx
  let text = ''
  const rows = {}
  // Streaming: needs a WAL at least streamBytes big (reuse the open workload's).
  let want = P.streamBytes
  let src = ctx.shared.bigWal
  let made = null
  if (!src || src.bytes < want) {
    const free = freeBytes(scratchRoot())
    if (want * 1.3 + 2 * GiB > free) want = Math.max(64 * MiB, Math.floor((free - 2 * GiB) / 1.3))
    made = tmpDir('mem-stream')
    ctx.log(`  building a ${fmtBytes(want)} WAL to stream...`)
    await buildBig(made, want)
    src = { dir: made, bytes: want }
  }
  const st = []
  for (let r = 0; r < P.memRuns; r++) st.push(await child('stream', { dir: src.dir, bytes: want }))
  if (made) rm(made)
  const pick = (f) => median(st.map(f))
  rows.stream = {
    bytes: pick((x) => x.bytes),
    rss0: pick((x) => x.rss0),
    rssMax: Math.max(...st.map((x) => x.rssMax)),
    gbPerSec: pick((x) => x.bytes / x.seconds / 1e9),
  }
  target(ctx, '10 memory', `max RSS streaming ${fmtBytes(want)}`, rows.stream.rssMax / MiB, '< 200 MiB', rows.stream.rssMax < 200 * MiB, 'MiB')
  text += table(`10a. Memory: streaming ${fmtBytes(want)} in a fresh process (${P.memRuns} run(s))${P.quick ? ' (quick mode: smaller than the full 4 GiB)' : ''}`, [rows.stream], [
    ['bytes streamed', (r) => fmtBytes(r.bytes)],
    ['RSS before', (r) => fmtBytes(r.rss0)],
    ['max RSS', (r) => fmtBytes(r.rssMax)],
    ['GB/s', (r) => r.gbPerSec.toFixed(2)],
  ])
  // In-flight appends.
  rows.inflight = []
  for (const size of P.inflightSizes) {
    for (const sync of P.inflightSyncs) {
      const res = []
      for (let r = 0; r < P.memRuns; r++) {
        const dir = tmpDir('mem-inflight')
        try {
          res.push(await child('inflight', { dir, n: P.inflight, size, sync }))
        } finally {
          rm(dir)
        }
      }
      const payloadBytes = P.inflight * size
      const delta = median(res.map((x) => x.rssMax - x.rss0))
      const row = {
        size,
        sync,
        n: P.inflight,
        payloadBytes,
        rssDelta: delta,
        ratio: delta / payloadBytes,
        heapDelta: median(res.map((x) => x.heapDelta)),
        fireMs: median(res.map((x) => x.fireMs)),
        seconds: median(res.map((x) => x.seconds)),
      }
      rows.inflight.push(row)
      target(ctx, '10 memory', `${fmtNum(P.inflight)} x ${size} B in flight (sync ${sync}): RSS growth / payload`, row.ratio, '< 2x', row.ratio < 2, 'x')
    }
  }
  text += table(`10b. Memory: ${fmtNum(P.inflight)} appends fired without awaiting (fresh process, median of ${P.memRuns} run(s))`, rows.inflight, [
    ['record', (r) => fmtBytes(r.size)],
    ['sync', (r) => r.sync, 'l'],
    ['payload bytes', (r) => fmtBytes(r.payloadBytes)],
    ['RSS growth (max)', (r) => fmtBytes(r.rssDelta)],
    ['growth / payload', (r) => r.ratio.toFixed(2) + 'x'],
    ['JS heap growth', (r) => fmtBytes(r.heapDelta)],
    ['firing took', (r) => fmtMs(r.fireMs)],
    ['all resolved after', (r) => fmtMs(r.seconds * 1000)],
  ])
  // Written records: write() x n, then one flush().
  {
    const res = []
    for (let r = 0; r < P.memRuns; r++) {
      const dir = tmpDir('mem-written')
      try {
        res.push(await child('written', { dir, n: P.inflight, size: 128 }))
      } finally {
        rm(dir)
      }
    }
    const payloadBytes = P.inflight * 128
    const delta = median(res.map((x) => x.rssMax - x.rss0))
    rows.written = { n: P.inflight, size: 128, payloadBytes, rssDelta: delta, ratio: delta / payloadBytes, fireMs: median(res.map((x) => x.fireMs)), seconds: median(res.map((x) => x.seconds)) }
    target(ctx, '#11.9 memory', `${fmtNum(P.inflight)} x 128 B via write() before one flush(): RSS growth / payload`, rows.written.ratio, '<= 1.5x', rows.written.ratio <= 1.5, 'x')
    text += table(`10c. Memory: ${fmtNum(P.inflight)} x 128 B written with write(), then one flush() (fresh process, median of ${P.memRuns} run(s))`, [rows.written], [
      ['payload bytes', (r) => fmtBytes(r.payloadBytes)],
      ['RSS growth (max)', (r) => fmtBytes(r.rssDelta)],
      ['growth / payload', (r) => r.ratio.toFixed(2) + 'x'],
      ['writing took', (r) => fmtMs(r.fireMs)],
      ['flushed after', (r) => fmtMs(r.seconds * 1000)],
    ])
  }
  if (ctx.shared.bigWal) {
    rm(ctx.shared.bigWal.dir)
    ctx.shared.bigWal = null
  }
  return { text, rows }
}

// ------------------------------------------------------------------ 11. the engine workload from Node

export async function engine(ctx) {
  const { P } = ctx
  const rec = payload(1024)
  const N = P.engineRecords
  const written = []
  const mk = (name, segmentSize) => ({
    name,
    async run() {
      const dir = tmpDir('engine')
      const wal = await openSegwal(dir, { sync: 'none', segmentSize })
      const t0 = now()
      const ps = new Array(N)
      pauseGap()
      for (let i = 0; i < N; i++) ps[i] = wal.append(1, rec)
      const fireMs = now() - t0
      resumeGap()
      await Promise.all(ps)
      await wal.sync()
      const seconds = (now() - t0) / 1000
      const segments = wal.segments(1).length
      if (segmentSize > 1 << 20) {
        written.push({ dir, wal })
      } else {
        await wal.close()
        rm(dir)
      }
      return { ops: N, bytes: N * rec.length, seconds, extra: { segments, fireMs } }
    },
  })
  const readBack = {
    name: 'read-back',
    async run() {
      const { dir, wal } = written.shift()
      try {
        let n = 0
        let b = 0
        const t0 = now()
        for await (const r of wal.stream(1)) {
          n++
          b += r.payload.length
        }
        const seconds = (now() - t0) / 1000
        if (n !== N) throw new Error(`read-back saw ${n}`)
        return { ops: n, bytes: b, seconds }
      } finally {
        await wal.close()
        rm(dir)
      }
    },
  }
  const systems = [mk('write 64MiB segs', 64 * MiB), readBack, mk('write 256KiB segs', 256 * KiB)]
  const rows = await interleave(systems, P.runs, ctx.log)
  // The engine's numbers from `cargo bench` (same workload, Rust, no Node).
  let eng = null
  const jf = ctx.engineJson
  try {
    eng = JSON.parse(fs.readFileSync(jf, 'utf8'))
  } catch {}
  for (const r of rows) {
    const e = eng?.rows.find((x) => x.workload === r.system && x.system === 'segwal-core')
    const peers = eng?.rows.filter((x) => x.workload === r.system && x.system !== 'segwal-core') ?? []
    r.engineOps = e?.opsPerSec
    r.nodeVsEngine = e ? e.opsPerSec / r.opsPerSec : null
    r.peers = peers.map((p) => ({ system: p.system, opsPerSec: p.opsPerSec }))
    if (e) target(ctx, '11 engine', `${r.system}: engine / Node time`, r.nodeVsEngine, '<= 1.5x', r.nodeVsEngine <= 1.5, 'x')
  }
  const age = eng ? `cargo bench results from ${new Date(eng.unixTime * 1000).toISOString()}${eng.quick ? ' (quick)' : ''}` : `no cargo bench results at ${jf}: run 'cargo bench -p segwal-core --bench wal_throughput' first`
  const text =
    table(`11. The engine's wal_throughput workload from Node: ${fmtNum(N)} x 1 KiB, sync 'none', all appends in flight + final sync`, rows, [
      ['workload', (r) => r.system, 'l'],
      ['Node records/s', (r) => fmtNum(r.opsPerSec)],
      ['MiB/s', (r) => fmtNum(r.mbPerSec, 1)],
      ['engine records/s', (r) => fmtNum(r.engineOps)],
      ['engine / Node', (r) => (r.nodeVsEngine ? r.nodeVsEngine.toFixed(2) + 'x' : '-')],
      ...['pwal 0.2', 'writeahead 0.4'].map((p) => [`${p} (Rust)`, (r) => fmtNum(r.peers.find((x) => x.system === p)?.opsPerSec)]),
      ['max loop gap', (r) => fmtMs(r.maxGapMs)],
      ['firing turn', (r) => fmtMs(r.extra?.fireMs)],
    ]) + `\n  ${age}\n  (loop gap excludes the benchmark's own synchronous firing turn, shown apart)`
  return { text, rows, engine: eng }
}

// ------------------------------------------------------------------ #10. the engine alone (cargo bench)

/** Rows of `cargo bench`'s wal_throughput that quick mode runs (6-16 s; all rows take ~30 s). */
const CARGO_QUICK_ROWS = 'durable64,durable1'

/**
 * Issue #11 target 10: `cargo bench -p segwal-core --bench wal_throughput` (segwal-core vs
 * pwal and writeahead, Rust, no Node) run now, so that its ratios are of this run's disk and
 * load; its JSON is what the `engine` workload compares Node with. Needs cargo; the first
 * run compiles the bench (minutes), later ones only check that it is fresh.
 */
export async function cargoBench(ctx) {
  const { P } = ctx
  const args = ['bench', '-q', '-p', 'segwal-core', '--bench', 'wal_throughput', '--', ...(P.quick ? ['--quick', '--only', CARGO_QUICK_ROWS] : [])]
  const title = `10. The engine alone: cargo ${args.join(' ')}`
  const code = await new Promise((resolve) => {
    const p = spawn('cargo', args, { cwd: path.join(HERE, '..'), env: { ...process.env, SEGWAL_BENCH_JSON: ctx.engineJson }, stdio: ['ignore', 'ignore', 'pipe'] })
    p.stderr.on('data', (d) => ctx.log(`  ${String(d).trimEnd()}`))
    p.on('error', (e) => resolve(e.message))
    p.on('exit', (c) => resolve(c))
  })
  let eng = null
  try {
    eng = code === 0 ? JSON.parse(fs.readFileSync(ctx.engineJson, 'utf8')) : null
  } catch {}
  if (!eng) return { text: `\n## ${title}\nnot run (cargo: ${code}); target #10 not checked`, rows: [] }
  const SYSTEMS = ['segwal-core', 'pwal 0.2', 'writeahead 0.4']
  const rows = [...new Set(eng.rows.map((r) => r.workload))].map((workload) => {
    const ops = Object.fromEntries(SYSTEMS.map((s) => [s, eng.rows.find((r) => r.workload === workload && r.system === s)?.opsPerSec]))
    return { system: workload, ops, vsPwal: ops['segwal-core'] / ops['pwal 0.2'], vsWriteahead: ops['segwal-core'] / ops['writeahead 0.4'] }
  })
  for (const r of rows) {
    const goal = r.system === 'durable 64 writers' ? 1.2 : 1
    for (const [peer, ratio, need] of [['writeahead', r.vsWriteahead, goal], ['pwal', r.vsPwal, 1]]) {
      if (Number.isFinite(ratio)) target(ctx, '#10 engine (cargo bench)', `${r.system}: segwal-core / ${peer}`, ratio, `>= ${need}x`, ratio >= need, 'x')
    }
  }
  const text =
    table(title, rows, [
      ['workload', (r) => r.system, 'l'],
      ...SYSTEMS.map((s) => [`${s} records/s`, (r) => fmtNum(r.ops[s])]),
      ['segwal / pwal', (r) => (Number.isFinite(r.vsPwal) ? r.vsPwal.toFixed(2) + 'x' : '-')],
      ['segwal / writeahead', (r) => (Number.isFinite(r.vsWriteahead) ? r.vsWriteahead.toFixed(2) + 'x' : '-')],
    ]) + `\n  medians of ${eng.runs} interleaved runs${P.quick ? ` (quick mode: rows ${CARGO_QUICK_ROWS} only)` : ''}; ${eng.totalSeconds} s`
  return { text, rows, engine: eng }
}

export const WORKLOADS = {
  raw: { run: raw, about: 'raw disk limits: sequential MB/s, 4 KiB and 128 B write+fdatasync latency' },
  durable64: { run: durable64, about: '1. durable, 64 concurrent appenders, 128 B' },
  durable1: { run: durable1, about: '2. durable, 1 appender awaiting each' },
  buffered: { run: buffered, about: "3. buffered append (sync 'none'), 128 B, many in flight" },
  writes: { run: (ctx) => writes(ctx, target), about: "W. write() + one flush() (sync 'none'), 128 B, vs lmdb puts" },
  batch: { run: batch, about: '4. buffered appendBatch, 256 x 4 KiB' },
  read: { run: read, about: '5. for await over stream(): 128 B and 4 KiB records vs lmdb getRange' },
  batches: { run: readBatches, about: '5b. streamBatches() and stream(): 128 B and 4 KiB records vs lmdb getRange, idle floor' },
  open: { run: open, about: '7. open time: 1,000 segments; big vs small WAL' },
  seek: { run: seek, about: '8. time to first record of stream({fromLsn})' },
  rotation: { run: rotation, about: '9. p99 append latency with 100+ rotations vs none' },
  memory: { run: memory, about: '10. RSS while streaming; 1 M appends in flight' },
  cargo: {
    run: cargoBench,
    about: '10. the engine alone: cargo bench wal_throughput, segwal-core vs pwal and writeahead (issue #11 target 10; quick mode: only with --only cargo)',
    fullOnly: true,
  },
  engine: { run: engine, about: "11. the cargo bench's wal_throughput workload from Node, vs the engine" },
}

export { percentile }
