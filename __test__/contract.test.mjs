// Behaviour the API contract leaves open and the README documents: each claim pinned here.
import test from 'ava'
import { Wal } from 'segwal'
import { makeTempDirs, collect } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('contract')
test.after.always(cleanup)

test('truncateAfter: above lastLsn is WAL_LSN_OUT_OF_RANGE; below the first retained LSN - 1 is WAL_LSN_PURGED; first - 1 empties it', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none', segmentSize: 1024 })
  for (let i = 1; i <= 60; i++) await wal.append(1, `r${i} ${'x'.repeat(60)}`)
  await wal.purgeBefore(1, 40)
  const first = wal.firstLsn(1)
  t.true(first > 2)
  await t.throwsAsync(wal.truncateAfter(1, 61), { code: 'WAL_LSN_OUT_OF_RANGE' })
  const purged = await t.throwsAsync(wal.truncateAfter(1, first - 2), { code: 'WAL_LSN_PURGED' })
  t.regex(purged.message, /lsn/)
  t.is(wal.lastLsn(1), 60, 'a rejected truncate removes nothing')
  await wal.truncateAfter(1, first - 1)
  t.is(wal.lastLsn(1), first - 1)
  t.is(wal.firstLsn(1), 0, 'no record is retained')
  t.deepEqual(await collect(wal.stream(1)), [])
  const { lsn } = await wal.append(1, 'next')
  t.is(lsn, first, 'LSNs continue, they never restart')
  await wal.close()
})

test('a stream inside a segment that purgeBefore deletes finishes reading it', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none', segmentSize: 4096 })
  for (let i = 1; i <= 200; i++) await wal.append(2, `p${i} ${'y'.repeat(90)}`)
  const it = wal.stream(2)
  const first = await it.next()
  t.is(first.value.lsn, 1)
  const seg1 = wal.segments(2)[0]
  await wal.purgeBefore(2, seg1.lastLsn + 1)
  t.true(wal.firstLsn(2) > 1)
  const lsns = [1]
  for await (const r of it) lsns.push(r.lsn)
  t.deepEqual(lsns, Array.from({ length: 200 }, (_, i) => i + 1))
  await wal.close()
})
