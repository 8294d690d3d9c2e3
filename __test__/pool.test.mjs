// Issue #9 defect 12: sync, truncateAfter, purgeBefore and close used to park a libuv
// pool thread each until a writer had done them, so four pending operations stalled all
// of Node's fs, dns and crypto work behind them. They are settled from the writer now,
// so a readFile issued after eight of them, pending behind 64 MiB being written and
// synced, finishes first. (With parked threads it waited for the whole write.)

import { execFileSync } from 'node:child_process'
import test from 'ava'
import { makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('pool')
test.after.always(cleanup)

test('pending control operations leave the libuv thread pool to others', (t) => {
  const out = execFileSync(process.execPath, [new URL('./pool-child.mjs', import.meta.url).pathname, tempDir()], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '4' },
    encoding: 'utf8',
  })
  const order = JSON.parse(out)
  t.is(order.length, 9)
  t.is(order[0], 'readFile', `settled in this order: ${order.join(', ')}`)
})

// A batch stream's native reader reads ahead on the pool for as long as its caller keeps
// up; it gives the thread back every few batches (src/ahead.rs, FILL_BATCHES), so a stream
// on a pool of one thread does not hold off everything else until it ends.
test('a stream reading ahead leaves the libuv thread pool to others', (t) => {
  const out = execFileSync(process.execPath, [new URL('./pool-streams-child.mjs', import.meta.url).pathname, tempDir()], {
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
    encoding: 'utf8',
  })
  const { statAt, batches } = JSON.parse(out)
  t.true(batches >= 64)
  t.true(statAt <= batches / 3, `fs.stat settled after ${statAt} of ${batches} batches`)
})
