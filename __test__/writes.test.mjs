// write(), flush() and pendingBytes (API.md "High-throughput paths"), and how acks
// find their records: by count in staging order, whatever truncates did to LSNs.

import test from 'ava'
import { Wal, WalError } from 'segwal'
import { collect, makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('writes')
test.after.always(cleanup)

/** Rejects if `promise` has not settled within `ms` (a hang detector, not a timing test). */
function settlesWithin(promise, ms, what) {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
    }),
  ])
}

/** A seeded PRNG (mulberry32); the seed is printed so a failure can be replayed. */
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('defect 1: truncateAfter(p, 0) on a never-written partition, then append(p) settles', async (t) => {
  const wal = await Wal.open(tempDir())
  await wal.truncateAfter(7, 0)
  const r = await settlesWithin(wal.append(7, 'x'), 10_000, 'append after truncateAfter(7, 0)')
  t.is(r.lsn, 1)
  // Repeatedly, mixing appends queued behind the truncates and writes.
  const early = wal.append(7, 'y')
  const cut = wal.truncateAfter(7, 1)
  const after = wal.append(7, 'z')
  t.is(wal.write(7, 'w'), 3)
  await settlesWithin(Promise.all([early, cut, after, wal.flush()]), 10_000, 'appends around truncates')
  t.is((await early).lsn, 2)
  t.is((await after).lsn, 2)
  await wal.truncateAfter(7, 0)
  t.is((await settlesWithin(wal.append(7, 'again'), 10_000, 'append after a second truncateAfter(7, 0)')).lsn, 1)
  const recs = await collect(wal.stream(7))
  t.deepEqual(
    recs.map((r) => [r.lsn, r.payload.toString()]),
    [[1, 'again']],
  )
  await wal.close()
})

test('write() returns LSNs at once, in one sequence with append() and appendBatch(), in call order', async (t) => {
  const wal = await Wal.open(tempDir())
  t.is(wal.write(1, 'a'), 1)
  const appended = wal.append(1, 'b')
  t.is(wal.write(1, Buffer.from('c')), 3)
  const batch = wal.appendBatch(1, ['d', 'e'])
  t.is(wal.write(1, new Uint8Array([102])), 6)
  t.is(wal.write(2, ''), 1)
  // Partition 2's record is still in the facade's staging (its first write handed the
  // records staged before it over, then staged itself): the engine cannot have
  // acknowledged it. Partition 1's records crossed already and may be acknowledged any time.
  t.is(wal.lastLsn(2), 0, 'not acknowledged before the engine has it')
  await wal.flush()
  t.is((await appended).lsn, 2)
  t.deepEqual(await batch, { firstLsn: 4, lastLsn: 5, count: 2 })
  t.is(wal.lastLsn(1), 6)
  t.is(wal.lastLsn(2), 1)
  const recs = await collect(wal.stream(1))
  t.deepEqual(
    recs.map((r) => r.payload.toString()),
    ['a', 'b', 'c', 'd', 'e', 'f'],
  )
  await wal.close()
})

test('write() copies the payload before it returns', async (t) => {
  const wal = await Wal.open(tempDir())
  const buf = Buffer.from('original')
  wal.write(1, buf)
  buf.write('CHANGED!')
  const big = Buffer.alloc(200_000, 1)
  wal.write(1, big)
  big.fill(2)
  await wal.flush()
  const recs = await collect(wal.stream(1))
  t.is(recs[0].payload.toString(), 'original')
  t.true(recs[1].payload.equals(Buffer.alloc(200_000, 1)))
  await wal.close()
})

test('write() throws argument errors, WAL_RECORD_TOO_LARGE and WAL_CLOSED synchronously', async (t) => {
  const wal = await Wal.open(tempDir(), { segmentSize: 1024 })
  for (const p of [-1, 65536, 1.5, '1', null, undefined, NaN]) {
    const e = t.throws(() => wal.write(p, 'x'), { instanceOf: WalError })
    t.is(e.code, 'WAL_INVALID_ARGUMENT')
    t.regex(e.message, /partition/)
  }
  for (const bad of [undefined, null, 1, {}, [1], new Uint16Array(2)]) {
    const e = t.throws(() => wal.write(1, bad), { instanceOf: WalError })
    t.is(e.code, 'WAL_INVALID_ARGUMENT')
    t.regex(e.message, /payload/)
  }
  const detached = new Uint8Array(16)
  structuredClone(detached.buffer, { transfer: [detached.buffer] })
  const d = t.throws(() => wal.write(1, detached), { instanceOf: WalError })
  t.is(d.code, 'WAL_INVALID_ARGUMENT')
  t.regex(d.message, /payload/)
  for (const big of [Buffer.alloc(2000), 'x'.repeat(2000), 'é'.repeat(600)]) {
    const e = t.throws(() => wal.write(1, big), { instanceOf: WalError })
    t.is(e.code, 'WAL_RECORD_TOO_LARGE')
  }
  // Nothing was handed out for them.
  t.is(wal.write(1, 'ok'), 1)
  t.is(wal.pendingBytes, 2)
  await wal.flush()
  await wal.close()
  const e = t.throws(() => wal.write(1, 'x'), { instanceOf: WalError })
  t.is(e.code, 'WAL_CLOSED')
  await t.throwsAsync(wal.flush(), { code: 'WAL_CLOSED' })
})

test('pendingBytes counts payload bytes (UTF-8) neither acknowledged nor failed; 0 once closed', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  t.is(wal.pendingBytes, 0)
  wal.write(1, 'é') // 2 bytes
  wal.write(2, Buffer.alloc(10))
  const a = wal.append(1, '€') // 3 bytes
  const b = wal.appendBatch(3, ['ab', Buffer.alloc(5)])
  wal.write(4, Buffer.alloc(100_000)) // crosses on its own
  t.is(wal.pendingBytes, 2 + 10 + 3 + 7 + 100_000)
  await Promise.all([a, b, wal.flush()])
  t.is(wal.pendingBytes, 0)
  for (let i = 0; i < 1000; i++) wal.write(5, 'abcd')
  t.is(wal.pendingBytes, 4000)
  const closing = wal.close()
  t.is(wal.pendingBytes, 0)
  await closing
  t.is(wal.pendingBytes, 0)
})

test('flush() with nothing pending resolves; flush() waits for appends made before it only', async (t) => {
  const wal = await Wal.open(tempDir())
  await wal.flush()
  const order = []
  const a = wal.append(1, 'a').then(() => order.push('append'))
  const f = wal.flush().then(() => order.push('flush'))
  await Promise.all([a, f])
  t.deepEqual(order, ['append', 'flush'])
  t.is(wal.lastLsn(1), 1)
  await wal.close()
})

test('close() settles written records and pending flushes; written records are durable', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir)
  for (let i = 0; i < 5000; i++) wal.write(i % 3, `r${i}`)
  const flushed = wal.flush()
  await wal.close()
  await flushed
  const again = await Wal.open(dir)
  t.is(again.lastLsn(0) + again.lastLsn(1) + again.lastLsn(2), 5000)
  t.is(again.write(0, 'next'), again.lastLsn(0) + 1)
  await again.close()
})

test('model: random write/append/appendBatch/flush/truncateAfter sequences keep one LSN sequence', async (t) => {
  const seeds = Number(process.env.SEGWAL_WRITE_SEEDS ?? 12)
  for (let s = 0; s < seeds; s++) {
    const seed = (Date.now() + s * 7919) >>> 0
    t.log(`seed ${seed}`)
    const rand = rng(seed)
    const wal = await Wal.open(tempDir(), { segmentSize: 4096 + Math.floor(rand() * 8192), sync: rand() < 0.5 ? 'none' : 'always' })
    // The model: per partition, the payload of each LSN (index lsn - 1).
    const model = new Map()
    const log = (p) => model.get(p) ?? (model.set(p, []), model.get(p))
    const promises = []
    for (let step = 0; step < 400; step++) {
      const p = Math.floor(rand() * 3)
      const r = rand()
      const payload = `s${seed}-${step}-${'x'.repeat(Math.floor(rand() * 300))}`
      if (r < 0.45) {
        const lsn = wal.write(p, payload)
        t.is(lsn, log(p).length + 1, `seed ${seed} step ${step}: write LSN`)
        log(p).push(payload)
      } else if (r < 0.7) {
        const expected = log(p).length + 1
        log(p).push(payload)
        promises.push(wal.append(p, payload).then((res) => t.is(res.lsn, expected, `seed ${seed} step ${step}: append LSN`)))
      } else if (r < 0.8) {
        const n = 1 + Math.floor(rand() * 4)
        const first = log(p).length + 1
        const parts = Array.from({ length: n }, (_, i) => `${payload}-${i}`)
        for (const x of parts) log(p).push(x)
        promises.push(wal.appendBatch(p, parts).then((res) => t.is(res.firstLsn, first, `seed ${seed} step ${step}: batch LSN`)))
      } else if (r < 0.9) {
        promises.push(wal.flush())
        if (rand() < 0.3) await Promise.all(promises.splice(0))
      } else {
        const keep = Math.floor(rand() * (log(p).length + 1))
        log(p).length = keep
        promises.push(wal.truncateAfter(p, keep))
      }
    }
    promises.push(wal.flush())
    await settlesWithin(Promise.all(promises), 30_000, `seed ${seed}: every operation`)
    t.is(wal.pendingBytes, 0)
    for (const [p, payloads] of model) {
      t.is(wal.lastLsn(p), payloads.length, `seed ${seed}: lastLsn(${p})`)
      const got = (await collect(wal.stream(p))).map((r) => r.payload.toString())
      t.deepEqual(got, payloads, `seed ${seed}: records of partition ${p}`)
    }
    await wal.close()
  }
})

test('append groups: appends of one tick across partitions, with writes between and crossings mid-tick, each resolve with their own record, in call order', async (t) => {
  // The appends of one partition in one crossing share one internal promise; a tick of
  // more than 2,048 records crosses several times, and writes between appends split a
  // partition's group in the facade's ring (which grows from 16 entries meanwhile).
  const seed = (Date.now() ^ 0x5eed) >>> 0
  t.log(`seed ${seed}`)
  const rand = rng(seed)
  const wal = await Wal.open(tempDir(), { sync: rand() < 0.5 ? 'none' : 'always' })
  const next = new Map()
  const lsnOf = (p) => {
    const n = (next.get(p) ?? 0) + 1
    next.set(p, n)
    return n
  }
  for (let tick = 0; tick < 4; tick++) {
    const pending = []
    const order = []
    const n = 500 + Math.floor(rand() * 4000)
    for (let i = 0; i < n; i++) {
      const p = Math.floor(rand() * 3)
      const payload = `t${tick}-${i}-${'y'.repeat(Math.floor(rand() * 200))}`
      if (rand() < 0.3) {
        t.is(wal.write(p, payload), lsnOf(p), `seed ${seed}: write LSN`)
      } else {
        const lsn = lsnOf(p)
        const k = pending.length
        pending.push(
          wal.append(p, payload).then((r) => {
            order.push(k)
            return { p, lsn, payload, r }
          }),
        )
      }
    }
    const done = await settlesWithin(Promise.all(pending), 30_000, `seed ${seed} tick ${tick}`)
    for (const { lsn, r } of done) t.is(r.lsn, lsn, `seed ${seed}: append LSN`)
    // A sample's positions are their own records': valid `from` positions that start there.
    for (let s = 0; s < 40 && done.length > 0; s++) {
      const { p, lsn, payload, r } = done[Math.floor(rand() * done.length)]
      const it = wal.stream(p, { from: { segment: r.segment, offset: r.offset } })
      const { value } = await it.next()
      await it.return()
      t.is(value.lsn, lsn, `seed ${seed}: the position of LSN ${lsn}`)
      t.is(value.payload.toString(), payload)
    }
    // Per partition, appends settle in call order.
    const byPartition = new Map()
    for (const k of order) {
      const p = done[k].p
      const last = byPartition.get(p) ?? -1
      t.true(k > last, `seed ${seed}: append ${k} of partition ${p} settled after a later one`)
      byPartition.set(p, k)
    }
  }
  await wal.close()
})
