// Preallocation on Linux: a fresh segment has its whole size reserved
// (fallocate KEEP_SIZE) while its logical size is what was written.
import test from 'ava'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { Wal } from 'segwal'
import { makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-prealloc')
test.after.always(cleanup)

const linux = process.platform === 'linux' ? test : test.skip
const SEGMENT = 4 * 1024 * 1024

linux('a fresh segment is preallocated to segmentSize, its size is the written size', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { segmentSize: SEGMENT })
  await wal.append(1, 'hello')
  const [seg] = wal.segments(1)
  const st = statSync(join(dir, seg.file))
  t.is(st.size, seg.bytes)
  t.true(st.size < 4096)
  t.true(st.blocks * 512 >= SEGMENT, `allocated ${st.blocks * 512} of ${SEGMENT}`)
  await wal.close()
})

linux('preallocate: false reserves nothing ahead', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { segmentSize: SEGMENT, preallocate: false })
  await wal.append(1, 'hello')
  const [seg] = wal.segments(1)
  const st = statSync(join(dir, seg.file))
  t.is(st.size, seg.bytes)
  t.true(st.blocks * 512 < SEGMENT, `allocated ${st.blocks * 512}`)
  await wal.close()
})
