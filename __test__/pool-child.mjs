// Child of pool.test.mjs: control operations pending behind a large write, and a
// readFile on libuv's thread pool (4 threads here) issued after them. Prints the order
// in which they settled, as JSON.
import { readFile } from 'node:fs/promises'
import { Wal } from 'segwal'

const dir = process.argv[2]
const wal = await Wal.open(dir, { sync: 'none' })
const order = []
const part = Buffer.alloc(256 << 10, 7)
// 64 MiB to make durable: the syncs below stay pending while it is written and synced.
const batches = Array.from({ length: 4 }, () => wal.appendBatch(1, Array.from({ length: 64 }, () => part)))
const ops = []
for (let i = 0; i < 4; i++) ops.push(wal.sync().then(() => order.push(`sync${i}`)))
for (let i = 0; i < 2; i++) ops.push(wal.purgeBefore(1, 1).then(() => order.push(`purge${i}`)))
for (let i = 0; i < 2; i++) ops.push(wal.truncateAfter(1, 256).then(() => order.push(`truncate${i}`)))
const file = readFile(new URL(import.meta.url)).then(() => order.push('readFile'))
await Promise.all([...batches, file, ...ops])
await wal.close()
process.stdout.write(JSON.stringify(order))
