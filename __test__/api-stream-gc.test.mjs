// Issue #9.12: a stream read with next() and dropped kept its native reader and batches
// until close(). Run in a child with --expose-gc, so that collection can be forced.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-gc')
test.after.always(cleanup)

test('a stream dropped part way is collected and its descriptors closed before close()', (t) => {
  const child = fileURLToPath(new URL('./stream-gc-child.mjs', import.meta.url))
  const out = execFileSync(process.execPath, ['--expose-gc', child, tempDir()], { encoding: 'utf8', timeout: 60_000 })
  const r = JSON.parse(out.trim().split('\n').at(-1))
  t.log(r)
  t.true(r.during >= r.before + 15, 'the streams held descriptors while alive')
  t.is(r.alive, 0, 'every dropped stream was collected')
  t.true(r.after <= r.before + 1, `descriptors released: ${r.before} -> ${r.after}`)
})

for (const [mode, what, before] of [
  ['batches', 'a batch stream', '2-3'],
  ['records', 'a record stream', '3'],
]) {
  test(`${what} gives its batches back through scavenges where V8 has grown the young generation`, (t) => {
    const child = fileURLToPath(new URL('./stream-young-child.mjs', import.meta.url))
    const out = execFileSync(process.execPath, ['--expose-gc', child, tempDir(), mode], { encoding: 'utf8', timeout: 120_000 })
    const r = JSON.parse(out.trim().split('\n').at(-1))
    t.log(r)
    t.is(r.records, 48 * 1024)
    t.true(r.young >= 16 << 10, `the young generation was grown (${r.young} KiB)`)
    t.true(r.minor > 0, 'scavenges found the batches')
    // Before lib/ballast.ts this made ${before} here (one per ~64 MiB of batches).
    t.is(r.major, 0, 'no mark-compact was needed to find them')
  })
}
