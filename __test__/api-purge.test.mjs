// Cleanup: purgeBefore deletes old segments only when they and all earlier
// ones are wholly below minLsn, never the active one, durably; truncateAfter
// rewinds a partition and the next append reuses lsn + 1.
import test from 'ava'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Wal } from 'segwal'
import { collect, makeTempDirs, payloadOf } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-purge')
test.after.always(cleanup)

async function filled(dir, n = 60) {
  const wal = await Wal.open(dir, { segmentSize: 2048 })
  for (let i = 1; i <= n; i++) await wal.append(1, payloadOf(i, 200))
  return wal
}

test('purgeBefore deletes whole segments below minLsn, oldest first, never the active one', async (t) => {
  const dir = tempDir()
  const wal = await filled(dir)
  const segs = wal.segments(1)
  t.true(segs.length >= 5, `${segs.length} segments`)
  const size = (s) => statSync(join(dir, s.file)).size

  // nothing is below LSN 1, and a minLsn inside the first segment deletes nothing
  t.deepEqual(await wal.purgeBefore(1, 1), { segmentsDeleted: 0, bytesFreed: 0, firstLsn: 1 })
  t.deepEqual(await wal.purgeBefore(1, segs[0].lastLsn), { segmentsDeleted: 0, bytesFreed: 0, firstLsn: 1 })

  // exactly the segments whose last LSN is below minLsn
  const freed = size(segs[0]) + size(segs[1])
  const r = await wal.purgeBefore(1, segs[1].lastLsn + 1)
  t.deepEqual(r, { segmentsDeleted: 2, bytesFreed: freed, firstLsn: segs[2].firstLsn })
  t.false(existsSync(join(dir, segs[0].file)))
  t.false(existsSync(join(dir, segs[1].file)))
  t.true(existsSync(join(dir, segs[2].file)))
  t.is(wal.firstLsn(1), segs[2].firstLsn)
  t.deepEqual(
    wal.segments(1).map((s) => s.index),
    segs.slice(2).map((s) => s.index),
  )
  // records at or above minLsn are all there
  const recs = await collect(wal.stream(1))
  t.is(recs[0].lsn, segs[2].firstLsn)
  t.is(recs.at(-1).lsn, 60)

  // far beyond the end: everything but the active segment
  const r2 = await wal.purgeBefore(1, 10 ** 6)
  t.is(r2.segmentsDeleted, segs.length - 3)
  const left = wal.segments(1)
  t.is(left.length, 1)
  t.true(left[0].active)
  t.is(left[0].index, segs.at(-1).index)
  t.is(r2.firstLsn, left[0].firstLsn)

  // LSNs stay dense; an unknown partition purges nothing
  t.is((await wal.append(1, 'next')).lsn, 61)
  t.deepEqual(await wal.purgeBefore(42, 100), { segmentsDeleted: 0, bytesFreed: 0, firstLsn: 0 })
  await wal.close()

  // durable: a reopen sees the purged state
  const again = await Wal.open(dir, { segmentSize: 2048 })
  t.is(again.firstLsn(1), left[0].firstLsn)
  t.is(again.lastLsn(1), 61)
  await again.close()
})

test('truncateAfter removes the records above lsn; the next append gets lsn + 1', async (t) => {
  const dir = tempDir()
  const wal = await filled(dir, 30)
  const segsBefore = wal.segments(1).length
  await wal.truncateAfter(1, 12)
  t.is(wal.lastLsn(1), 12)
  t.true(wal.segments(1).length <= segsBefore)
  const r = await wal.append(1, 'rewritten 13')
  t.is(r.lsn, 13)
  const recs = await collect(wal.stream(1))
  t.deepEqual(
    recs.map((x) => x.lsn),
    Array.from({ length: 13 }, (_, i) => i + 1),
  )
  t.is(recs[12].payload.toString(), 'rewritten 13')
  t.deepEqual(recs[11].payload, payloadOf(12, 200))

  // appends in flight around a truncate settle with the right LSNs
  const a = wal.append(1, 'a14')
  const trunc = wal.truncateAfter(1, 13)
  const b = wal.append(1, 'b14')
  await trunc
  t.is((await a).lsn, 14)
  t.is((await b).lsn, 14)
  t.deepEqual(
    (await collect(wal.stream(1, { fromLsn: 13 }))).map((x) => x.payload.toString()),
    ['rewritten 13', 'b14'],
  )

  // 0 empties the partition
  await wal.truncateAfter(1, 0)
  t.is(wal.lastLsn(1), 0)
  t.deepEqual(await collect(wal.stream(1)), [])
  t.is((await wal.append(1, 'fresh')).lsn, 1)
  await wal.close()

  const again = await Wal.open(dir, { segmentSize: 2048 })
  t.is(again.lastLsn(1), 1)
  t.deepEqual(
    (await collect(again.stream(1))).map((x) => x.payload.toString()),
    ['fresh'],
  )
  await again.close()
})

test('truncateAfter above the last LSN rejects with WAL_LSN_OUT_OF_RANGE', async (t) => {
  const wal = await Wal.open(tempDir())
  await wal.append(1, 'x')
  await t.throwsAsync(wal.truncateAfter(1, 5), { code: 'WAL_LSN_OUT_OF_RANGE' })
  t.is((await wal.append(1, 'y')).lsn, 2)
  await wal.close()
})
