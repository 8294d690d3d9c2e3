// Issue #9, defect 11: descriptors must not grow with partitions. 10,000 partitions are
// written, reopened and written again (every one rotating into a second segment) by a
// child process limited to 1024 open files.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('many')
test.after.always(cleanup)

test('10,000 partitions under ulimit -n 1024', (t) => {
  const child = fileURLToPath(new URL('./many-partitions-child.mjs', import.meta.url))
  const r = spawnSync('bash', ['-c', `ulimit -n 1024 && exec "${process.execPath}" "${child}" "${tempDir()}" 10000`], {
    encoding: 'utf8',
    timeout: 110_000,
  })
  t.is(r.status, 0, `${r.stdout}\n${r.stderr}`)
  t.regex(r.stdout, /ok 10000/)
})
