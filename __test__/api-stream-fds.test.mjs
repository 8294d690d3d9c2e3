// Issue #9.11: readers shared no descriptors; thousands of streams open at once over many
// partitions ran out of them under a default `ulimit -n` of 1024.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Wal } from 'segwal'
import { makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-fds')
test.after.always(cleanup)

test('3,000 streams over 300 partitions, each in its own segment, under ulimit -n 1024', async (t) => {
  const dir = tempDir()
  const partitions = 300
  const per = 10
  const wal = await Wal.open(dir, { sync: 'none', segmentSize: 4 << 10 })
  const ps = []
  for (let p = 0; p < partitions; p++) {
    // About 11 segments each: 30 records of ~130 bytes framed fit a 4 KiB segment.
    for (let lsn = 1; lsn <= 330; lsn++) ps.push(wal.append(p, Buffer.alloc(100, (lsn + p) % 251)))
  }
  await Promise.all(ps)
  t.true(wal.segments(0).length >= per)
  await wal.close()
  const child = fileURLToPath(new URL('./stream-fds-child.mjs', import.meta.url))
  const out = execFileSync('bash', ['-c', `ulimit -n 1024 && exec "${process.execPath}" "$@"`, 'bash', child, dir, String(partitions), String(per)], {
    encoding: 'utf8',
    timeout: 110_000,
  })
  const r = JSON.parse(out.trim().split('\n').at(-1))
  t.log(r)
  t.deepEqual(r.failed, [])
  t.is(r.wrong, 0)
  t.is(r.records, r.expected, 'every stream read from its segment to the end of its partition')
  t.true(r.peak - r.opened <= 256 + 8, `readers held ${r.peak - r.opened} descriptors`)
})
