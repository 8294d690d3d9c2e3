// Child of pool.test.mjs: a batch stream whose caller keeps up with its reader, on a
// libuv thread pool of one thread, and an fs.stat issued once it has started. Prints how
// many batches the stream had yielded when the stat settled, and in all, as JSON.
import { stat } from 'node:fs/promises'
import { Wal } from 'segwal'

const dir = process.argv[2]
const wal = await Wal.open(dir, { sync: 'none' })
// Small records: the reader verifies each, the caller only takes batches, so it keeps up.
const record = Buffer.alloc(128, 7)
// 64 MiB of payload: 64 batches of the default 1 MiB.
for (let i = 0; i < 64; i++) await wal.appendBatch(1, Array.from({ length: 8192 }, () => record))
await wal.sync()
let batches = 0
let statAt
let statting
for await (const batch of wal.streamBatches(1)) {
  // The stream is under way: the pool's one thread is reading ahead.
  if (batches++ === 0) statting = stat(dir).then(() => (statAt = batches))
  if (batch.count === 0) throw new Error('an empty batch')
}
await statting
await wal.close()
process.stdout.write(JSON.stringify({ statAt, batches }))
