// The everyday API through the package as users load it: appends and their
// results, batches, rotation into new segment files, chained reading,
// reopen/recovery, inspection shapes, sync modes, close semantics.
import test from 'ava'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { Wal, WalError } from 'segwal'
import { collect, makeTempDirs, payloadOf, segmentFile } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-basic')
test.after.always(cleanup)

test('require() and import give the same classes', (t) => {
  const require = createRequire(import.meta.url)
  const cjs = require('segwal')
  t.is(cjs.Wal, Wal)
  t.is(cjs.WalError, WalError)
  t.true(new WalError('WAL_CLOSED', 'x') instanceof Error)
})

test('append: LSNs dense from 1 in call order, results, payload kinds', async (t) => {
  const wal = await Wal.open(tempDir())
  t.deepEqual(wal.recovery, [])
  const results = await Promise.all([
    wal.append(1, Buffer.from('buffer')),
    wal.append(1, new Uint8Array([1, 2, 3])),
    wal.append(1, 'strïng ✓'),
    wal.append(1, ''),
    wal.append(1, Buffer.alloc(0)),
    wal.append(2, 'other partition'),
  ])
  t.deepEqual(
    results.map((r) => r.lsn),
    [1, 2, 3, 4, 5, 1],
  )
  for (const r of results) {
    t.deepEqual(Object.keys(r).sort(), ['lsn', 'offset', 'segment'])
    t.is(r.segment, 1)
    t.true(Number.isInteger(r.offset) && r.offset >= 0)
  }
  t.true(results[1].offset > results[0].offset)
  t.is(wal.lastLsn(1), 5)
  t.is(wal.firstLsn(1), 1)
  t.is(wal.lastLsn(3), 0)
  t.is(wal.firstLsn(3), 0)
  const recs = await collect(wal.stream(1))
  t.deepEqual(
    recs.map((r) => r.payload),
    [Buffer.from('buffer'), Buffer.from([1, 2, 3]), Buffer.from('strïng ✓', 'utf8'), Buffer.alloc(0), Buffer.alloc(0)],
  )
  for (let i = 0; i < recs.length; i++) {
    t.is(recs[i].lsn, i + 1)
    t.is(recs[i].segment, results[i].segment)
    t.is(recs[i].offset, results[i].offset)
  }
  await wal.close()
})

test('appendBatch: consecutive LSNs, members readable with their own positions', async (t) => {
  const wal = await Wal.open(tempDir())
  await wal.append(7, 'before')
  const b = await wal.appendBatch(7, ['a', Buffer.from('bb'), new Uint8Array([99, 99, 99]), ''])
  t.deepEqual(b, { firstLsn: 2, lastLsn: 5, count: 4 })
  // Views into larger memory: only the view's bytes are appended.
  const views = [Buffer.from('--dd--').subarray(2, 4), new Uint8Array(Uint8Array.from([0, 101, 101, 0]).buffer, 1, 2)]
  const vb = await wal.appendBatch(8, [...views, new Uint8Array(new ArrayBuffer(8), 6, 1)])
  t.deepEqual(vb, { firstLsn: 1, lastLsn: 3, count: 3 })
  t.deepEqual(
    (await collect(wal.stream(8))).map((r) => [...r.payload]),
    [[100, 100], [101, 101], [0]],
  )
  const after = await wal.append(7, 'after')
  t.is(after.lsn, 6)
  const recs = await collect(wal.stream(7))
  t.deepEqual(
    recs.map((r) => [r.lsn, r.payload.toString()]),
    [
      [1, 'before'],
      [2, 'a'],
      [3, 'bb'],
      [4, 'ccc'],
      [5, ''],
      [6, 'after'],
    ],
  )
  // every record's position is a valid `from` starting at that record
  for (const r of recs) {
    const it = wal.stream(7, { from: { segment: r.segment, offset: r.offset } })
    const first = await it.next()
    await it.return()
    t.is(first.value.lsn, r.lsn)
  }
  t.is(wal.stats().batches, 2)
  await wal.close()
})

test('rotation: a record that does not fit goes to a new segment file', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { segmentSize: 4096 })
  const results = []
  for (let i = 1; i <= 60; i++) results.push(await wal.append(3, payloadOf(i, 200)))
  const segs = wal.segments(3)
  t.true(segs.length >= 2, `expected rotation, got ${segs.length} segment(s)`)
  t.is(segs[0].file, segmentFile(3, 1))
  t.is(segs[1].file, segmentFile(3, 2))
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]
    t.is(s.index, i + 1)
    t.is(s.active, i === segs.length - 1)
    t.true(existsSync(join(dir, s.file)))
    t.is(statSync(join(dir, s.file)).size, s.bytes, `${s.file}: bytes is the logical size`)
    t.true(s.bytes <= 4096)
    if (i > 0) t.is(s.firstLsn, segs[i - 1].lastLsn + 1)
  }
  t.is(segs[0].firstLsn, 1)
  t.is(segs.at(-1).lastLsn, 60)
  // results name the segment the record is in
  for (const r of results) {
    const s = segs.find((x) => x.index === r.segment)
    t.true(r.lsn >= s.firstLsn && r.lsn <= s.lastLsn)
  }
  // chained reading across all segments
  const recs = await collect(wal.stream(3))
  t.is(recs.length, 60)
  recs.forEach((r, i) => {
    t.is(r.lsn, i + 1)
    t.deepEqual(r.payload, payloadOf(i + 1, 200))
  })
  // and from the middle
  const mid = await collect(wal.stream(3, { fromLsn: 30 }))
  t.deepEqual(
    mid.map((r) => r.lsn),
    Array.from({ length: 31 }, (_, i) => 30 + i),
  )
  await wal.close()
})

test('reopen: clean recovery, appends continue with the next LSN in the latest segment', async (t) => {
  const dir = tempDir()
  let wal = await Wal.open(dir, { segmentSize: 4096 })
  for (let i = 1; i <= 30; i++) await wal.append(1, payloadOf(i, 150))
  await wal.append(9, 'p9')
  const before = wal.segments(1)
  await wal.close()

  wal = await Wal.open(dir, { segmentSize: 8192 })
  t.deepEqual(wal.recovery, [])
  t.deepEqual(wal.partitions(), [1, 9])
  t.is(wal.lastLsn(1), 30)
  t.is(wal.firstLsn(1), 1)
  t.is(wal.lastLsn(9), 1)
  t.deepEqual(
    wal.segments(1).map((s) => s.file),
    before.map((s) => s.file),
  )
  const r = await wal.append(1, 'after reopen')
  t.is(r.lsn, 31)
  t.is(r.segment, before.at(-1).index)
  t.is(r.offset, before.at(-1).bytes, 'the next append starts where the log ended')
  const recs = await collect(wal.stream(1, { fromLsn: 29 }))
  t.deepEqual(
    recs.map((x) => x.lsn),
    [29, 30, 31],
  )
  t.is(recs[2].payload.toString(), 'after reopen')
  await wal.close()
})

test('partitions, segments and stats have the documented shapes', async (t) => {
  const wal = await Wal.open(tempDir())
  t.deepEqual(wal.partitions(), [])
  t.deepEqual(wal.segments(5), [])
  await Promise.all([wal.append(65535, 'x'), wal.append(0, 'y'), wal.append(300, 'z'), wal.appendBatch(0, ['a', 'b'])])
  t.deepEqual(wal.partitions(), [0, 300, 65535])
  const segs = wal.segments(0)
  t.is(segs.length, 1)
  t.deepEqual(Object.keys(segs[0]).sort(), ['active', 'bytes', 'file', 'firstLsn', 'index', 'lastLsn'])
  t.like(segs[0], { index: 1, file: segmentFile(0, 1), firstLsn: 1, lastLsn: 3, active: true })
  const stats = wal.stats()
  t.deepEqual(Object.keys(stats).sort(), ['appends', 'batches', 'bytesWritten', 'partitions', 'syncs'])
  t.deepEqual(
    stats.partitions.map((p) => p.partition),
    [0, 300, 65535],
  )
  t.deepEqual(Object.keys(stats.partitions[0]).sort(), ['bytes', 'firstLsn', 'lastLsn', 'partition', 'segments'])
  t.like(stats.partitions[0], { partition: 0, firstLsn: 1, lastLsn: 3, segments: 1, bytes: segs[0].bytes })
  t.true(stats.appends >= 3)
  t.is(stats.batches, 1)
  t.true(stats.bytesWritten > 0)
  t.true(stats.syncs >= 1, "sync 'always' syncs")
  await wal.close()
})

test("sync modes: 'none' with sync(), and { intervalMs }", async (t) => {
  const dir = tempDir()
  let wal = await Wal.open(dir, { sync: 'none' })
  const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => wal.append(1, `n${i}`)))
  t.is(rs.at(-1).lsn, 100)
  await wal.sync()
  await wal.close()
  wal = await Wal.open(dir, { sync: { intervalMs: 5 } })
  t.is((await wal.append(1, 'interval')).lsn, 101)
  await new Promise((r) => setTimeout(r, 30))
  t.is(wal.lastLsn(1), 101)
  await wal.close()
})

test('close: completes pending appends, is idempotent, then everything fails with WAL_CLOSED', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir)
  const pending = Array.from({ length: 500 }, (_, i) => wal.append(1, `p${i}`))
  const closing = wal.close()
  t.is(wal.close(), closing, 'closing twice returns the same promise')
  await closing
  await wal.close()
  const results = await Promise.all(pending)
  t.is(results.at(-1).lsn, 500)
  t.true(wal.closed)
  const sync = [() => wal.lastLsn(1), () => wal.firstLsn(1), () => wal.partitions(), () => wal.segments(1), () => wal.stats(), () => wal.stream(1)]
  for (const f of sync) t.throws(f, { instanceOf: WalError, code: 'WAL_CLOSED' })
  const async = [() => wal.append(1, 'x'), () => wal.appendBatch(1, ['x']), () => wal.sync(), () => wal.purgeBefore(1, 1), () => wal.truncateAfter(1, 1)]
  for (const f of async) await t.throwsAsync(f, { instanceOf: WalError, code: 'WAL_CLOSED' })
  // the lock is released and everything was made durable
  const again = await Wal.open(dir)
  t.is(again.lastLsn(1), 500)
  await again.close()
})

test('Symbol.asyncDispose closes the WAL', async (t) => {
  const wal = await Wal.open(tempDir())
  t.is(typeof wal[Symbol.asyncDispose], 'function')
  await wal.append(1, 'x')
  await wal[Symbol.asyncDispose]()
  t.true(wal.closed)
})

test('many appends in flight across partitions all resolve in order', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  const n = 20000
  const ps = []
  for (let i = 0; i < n; i++) ps.push(wal.append(i % 4, payloadOf(i, 64)))
  const rs = await Promise.all(ps)
  const next = [1, 1, 1, 1]
  rs.forEach((r, i) => {
    t.is(r.lsn, next[i % 4]++)
  })
  for (let p = 0; p < 4; p++) t.is(wal.lastLsn(p), n / 4)
  await wal.close()
})
