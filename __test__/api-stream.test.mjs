// Streams: follow mode (wakes on new appends, ends cleanly on abort and on
// close), from-position starts, breaking out releases the reader, empty
// partitions, Node Readable conversion, large reads spanning batches.
import test from 'ava'
import { readdirSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Wal } from 'segwal'
import { collect, makeTempDirs, payloadOf } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-stream')
test.after.always(cleanup)

const openFds = () => readdirSync('/proc/self/fd').length

test('an empty or unknown partition streams nothing', async (t) => {
  const wal = await Wal.open(tempDir())
  t.deepEqual(await collect(wal.stream(4)), [])
  await wal.append(5, 'x')
  t.deepEqual(await collect(wal.stream(4)), [])
  await wal.close()
})

test('follow: yields records appended later, ends cleanly on abort', async (t) => {
  const wal = await Wal.open(tempDir())
  await wal.append(1, 'old')
  const ac = new AbortController()
  const seen = []
  const reading = (async () => {
    for await (const r of wal.stream(1, { follow: true, signal: ac.signal })) {
      seen.push(r.payload.toString())
      if (seen.length === 4) ac.abort()
    }
    return 'ended'
  })()
  const deadline = Date.now() + 10_000
  while (seen.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  await new Promise((r) => setTimeout(r, 20))
  t.deepEqual(seen, ['old'])
  await wal.append(1, 'a')
  await wal.appendBatch(1, ['b', 'c'])
  t.is(await reading, 'ended')
  t.deepEqual(seen, ['old', 'a', 'b', 'c'])
  // an aborted signal ends a stream before it starts, and any stream
  t.deepEqual(await collect(wal.stream(1, { follow: true, signal: AbortSignal.abort() })), [])
  t.deepEqual(await collect(wal.stream(1, { signal: AbortSignal.abort() })), [])
  await wal.close()
})

test('follow: close() ends a waiting stream without an error', async (t) => {
  const wal = await Wal.open(tempDir())
  const seen = []
  const reading = (async () => {
    for await (const r of wal.stream(2, { follow: true })) seen.push(r.payload.toString())
    return 'ended'
  })()
  await wal.append(2, 'one')
  const deadline = Date.now() + 10_000
  while (seen.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  t.deepEqual(seen, ['one'])
  await wal.close()
  t.is(await reading, 'ended')
})

test('follow from lastLsn + 1 waits for the next record; many appends arrive in order', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  for (let i = 1; i <= 10; i++) await wal.append(3, payloadOf(i))
  const ac = new AbortController()
  const lsns = []
  const reading = (async () => {
    for await (const r of wal.stream(3, { fromLsn: 11, follow: true, signal: ac.signal })) {
      lsns.push(r.lsn)
      t.deepEqual(r.payload, payloadOf(r.lsn))
      if (r.lsn === 5010) ac.abort()
    }
  })()
  const ps = []
  for (let i = 11; i <= 5010; i++) ps.push(wal.append(3, payloadOf(i)))
  await Promise.all(ps)
  await reading
  t.is(lsns.length, 5000)
  t.deepEqual(lsns.slice(0, 3), [11, 12, 13])
  t.true(lsns.every((l, i) => l === 11 + i))
  await wal.close()
})

test('from: the position of any record (single or batch member) starts at that record', async (t) => {
  const wal = await Wal.open(tempDir(), { segmentSize: 2048 })
  const singles = []
  for (let i = 0; i < 20; i++) {
    singles.push(await wal.append(1, payloadOf(i, 150)))
    if (i % 5 === 0) await wal.appendBatch(1, [payloadOf(1000 + i, 40), payloadOf(2000 + i, 40)])
  }
  const all = await collect(wal.stream(1))
  t.true(new Set(all.map((r) => r.segment)).size >= 2, 'spans segments')
  for (const r of singles) {
    const it = wal.stream(1, { from: { segment: r.segment, offset: r.offset } })
    const first = await it.next()
    await it.return()
    t.is(first.value.lsn, r.lsn)
  }
  for (const r of all) {
    const rest = await collect(wal.stream(1, { from: { segment: r.segment, offset: r.offset } }))
    t.is(rest[0].lsn, r.lsn)
    t.is(rest.length, all.length - r.lsn + 1)
  }
  await wal.close()
})

test.serial('breaking out of for await releases the file handles', async (t) => {
  const wal = await Wal.open(tempDir(), { segmentSize: 4096 })
  for (let i = 1; i <= 100; i++) await wal.append(1, payloadOf(i, 200))
  const before = openFds()
  for (let k = 0; k < 20; k++) {
    for await (const r of wal.stream(1, { fromLsn: 1 + k })) {
      if (r.lsn > 5 + k) break
    }
  }
  global.gc?.()
  t.true(openFds() <= before + 1, `fds: ${before} -> ${openFds()}`)
  // return() on a stream that never started is fine too
  const it = wal.stream(1)
  t.deepEqual(await it.return(), { done: true, value: undefined })
  t.deepEqual(await it.next(), { done: true, value: undefined })
  await wal.close()
})

test('reads spanning many native batches keep payloads intact', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none', segmentSize: 1 << 20 })
  const n = 3000
  const ps = []
  for (let i = 1; i <= n; i++) ps.push(wal.append(6, payloadOf(i, 1000 + (i % 7))))
  await Promise.all(ps)
  let count = 0
  for await (const r of wal.stream(6)) {
    count++
    t.is(r.lsn, count)
    if (!r.payload.equals(payloadOf(count, 1000 + (count % 7)))) t.fail(`payload ${count} differs`)
  }
  t.is(count, n)
  await wal.close()
})

test('payloads kept past their batch stay intact while batch memory is recycled', async (t) => {
  // Batch buffers go back to a pool when V8 collects them: a payload still referenced
  // must keep its batch alive, whatever other streams read meanwhile.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc')
  const wal = await Wal.open(tempDir(), { sync: 'none', segmentSize: 1 << 20 })
  const n = 6000
  for (let i = 1; i <= n; i += 1000) {
    await wal.appendBatch(7, Array.from({ length: 1000 }, (_, k) => payloadOf(i + k, 900 + ((i + k) % 13))))
  }
  const kept = []
  let i = 0
  for await (const r of wal.stream(7)) {
    if (++i % 5 === 0) kept.push(r)
    if (i % 1000 === 0) {
      // Another stream reads (and drops) whole batches while ours is between them.
      for await (const other of wal.stream(7)) other.payload.fill(0xee)
      gc()
    }
  }
  gc()
  for await (const other of wal.stream(7)) other.payload.fill(0xdd)
  t.is(kept.length, n / 5)
  for (const r of kept) {
    if (!r.payload.equals(payloadOf(r.lsn, 900 + (r.lsn % 13)))) t.fail(`payload of LSN ${r.lsn} changed`)
  }
  await wal.close()
})

test('toReadable() gives an object-mode Node Readable', async (t) => {
  const wal = await Wal.open(tempDir())
  await wal.appendBatch(1, ['x', 'y', 'z'])
  const readable = wal.stream(1).toReadable()
  t.true(readable.readableObjectMode)
  const got = []
  for await (const r of readable) got.push(r.payload.toString())
  t.deepEqual(got, ['x', 'y', 'z'])
  // destroying it early releases the stream
  const early = wal.stream(1, { follow: true }).toReadable()
  const first = await new Promise((resolve) => early.once('data', resolve))
  t.is(first.lsn, 1)
  early.destroy()
  await wal.close()
})

test('concurrent next() calls are served in order', async (t) => {
  const wal = await Wal.open(tempDir())
  await wal.appendBatch(1, ['a', 'b', 'c'])
  const it = wal.stream(1)
  const rs = await Promise.all([it.next(), it.next(), it.next(), it.next()])
  t.deepEqual(
    rs.map((r) => (r.done ? 'done' : r.value.payload.toString())),
    ['a', 'b', 'c', 'done'],
  )
  await wal.close()
})

// Records of a batch already read come through promises settled at once: without a
// pause, a `for await` over a whole batch (thousands of small records) ran in one turn
// of the event loop, and timers and I/O waited for all of it.
test('a stream lets the event loop run while it hands out a large batch', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  // 1,200 records of 40-byte frames: one read of the stream's first 64 KiB.
  const n = 1200
  await wal.appendBatch(1, Array.from({ length: n }, (_, i) => `record ${i}`))
  let ranAt = -1
  let i = 0
  for await (const r of wal.stream(1)) {
    t.is(r.payload.toString(), `record ${i}`)
    // Queued while the first record is handled; it runs once the stream pauses.
    if (i === 0) setImmediate(() => (ranAt = i))
    i++
  }
  t.is(i, n)
  t.true(ranAt > 0 && ranAt < n, `the event loop ran while the batch was handed out (at record ${ranAt} of ${n})`)
  await wal.close()
})
