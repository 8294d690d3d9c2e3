// Issue #9, defect 5: the next segment made ahead of time must not look like a segment to
// anything listing part_*_*.wal, during the WAL's life and after a crash.
import test from 'ava'
import { readdirSync } from 'node:fs'
import { Wal } from '../dist/index.js'
import { makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('spares')
test.after.always(cleanup)

const listed = (dir) => readdirSync(dir).filter((n) => /^part_\d+_\d+\.wal$/.test(n)).sort()

test('a listing of part_*_*.wal shows exactly the segments segments() reports', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { segmentSize: 8192 })
  let spareSeen = false
  for (let i = 0; i < 200; i++) {
    await wal.append(3, Buffer.alloc(300, i))
    t.deepEqual(listed(dir), wal.segments(3).map((s) => s.file), `after append ${i + 1}`)
    spareSeen ||= readdirSync(dir).some((n) => n.endsWith('.tmp'))
  }
  t.true(spareSeen, 'a spare was made ahead of time, under a name of its own')
  await wal.close()
  t.false(readdirSync(dir).some((n) => n.endsWith('.tmp')), 'close removes the spare')
  const again = await Wal.open(dir, { segmentSize: 8192 })
  t.deepEqual(again.recovery, [])
  t.deepEqual(listed(dir), again.segments(3).map((s) => s.file))
  await again.close()
})
