// Streams open while truncateAfter and purgeBefore run (issue #9: 2, 3, 10; API.md,
// Cleanup): each stream yields exactly the model's records or the API's error code.
import test from 'ava'
import { Wal } from 'segwal'
import { makeTempDirs, payloadOf } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-cuts')
test.after.always(cleanup)

/** The LSNs (and checked payloads) a stream yields until it ends or fails. */
async function rest(it, check = true) {
  const lsns = []
  try {
    for (;;) {
      const { done, value } = await it.next()
      if (done) return { lsns }
      if (check && !value.payload.equals(payloadOf(value.lsn, value.payload.length))) {
        return { lsns, error: `payload of ${value.lsn}` }
      }
      lsns.push(value.lsn)
    }
  } catch (e) {
    return { lsns, code: e.code, message: e.message }
  }
}

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i)

async function appendRange(wal, p, from, to, size = 10) {
  const ps = []
  for (let l = from; l <= to; l++) ps.push(wal.append(p, payloadOf(l, size)))
  const got = await Promise.all(ps)
  if (got.at(-1).lsn !== to) throw new Error(`appended up to ${got.at(-1).lsn}, expected ${to}`)
}

// Issue #9.2, as reported.
test('a stream is not ended by a second truncate above it (the cut is per reader)', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  await appendRange(wal, 1, 1, 20)
  await wal.truncateAfter(1, 10)
  await appendRange(wal, 1, 11, 10010)
  const s = wal.stream(1, { fromLsn: 1 })
  for (let i = 1; i <= 5; i++) t.is((await s.next()).value.lsn, i)
  await wal.truncateAfter(1, 9000)
  t.deepEqual(await rest(s), { lsns: range(6, 9000) })
  await wal.close()
})

test('streamBatches: a second truncate above the stream leaves it alone', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  await appendRange(wal, 1, 1, 20)
  await wal.truncateAfter(1, 10)
  await appendRange(wal, 1, 11, 10010)
  const b = wal.streamBatches(1, { fromLsn: 1, maxBytes: 4096 })
  t.is((await b.next()).value.firstLsn, 1)
  await wal.truncateAfter(1, 9000)
  let next = 0
  for await (const batch of b) next = batch.lastLsn
  t.is(next, 9000)
  await wal.close()
})

// Issue #9.3, as reported, and the rest of API.md's rule.
test('once truncateAfter resolved no stream yields a removed record; a stream above the cut fails', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  await appendRange(wal, 1, 1, 1000)
  const below = wal.stream(1)
  for (let i = 1; i <= 5; i++) await below.next()
  const follow = wal.stream(1, { follow: true })
  for (let i = 1; i <= 5; i++) await follow.next()
  const past = wal.stream(1, { fromLsn: 990 })
  for (let i = 990; i <= 995; i++) t.is((await past.next()).value.lsn, i)
  const above = wal.stream(1, { fromLsn: 995 })
  await wal.truncateAfter(1, 990)
  t.deepEqual(await rest(below), { lsns: range(6, 990) })
  const r = await rest(past)
  t.deepEqual(r.lsns, [])
  t.is(r.code, 'WAL_LSN_OUT_OF_RANGE', r.message)
  t.is((await rest(above)).code, 'WAL_LSN_OUT_OF_RANGE')
  // Records appended after the truncation follow, with their own bytes.
  await appendRange(wal, 1, 991, 1010, 33)
  const seen = []
  for (;;) {
    const { value } = await follow.next()
    t.true(value.payload.equals(payloadOf(value.lsn, value.lsn > 990 ? 33 : 10)), `payload of ${value.lsn}`)
    seen.push(value.lsn)
    if (value.lsn === 1010) break
  }
  t.deepEqual(seen, range(6, 1010))
  await wal.close()
})

test('a follow stream waiting past the cut fails; one waiting at the cut gets the new records', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  await appendRange(wal, 2, 1, 100)
  const atEnd = wal.stream(2, { fromLsn: 101, follow: true })
  const atCut = wal.stream(2, { fromLsn: 51, follow: true })
  const ahead = (async () => rest(atEnd, false))()
  t.is((await atCut.next()).value.lsn, 51)
  await new Promise((r) => setTimeout(r, 20))
  await wal.truncateAfter(2, 50)
  await appendRange(wal, 2, 51, 120, 20)
  const r = await ahead
  t.is(r.code, 'WAL_LSN_OUT_OF_RANGE', JSON.stringify(r))
  // atCut had yielded 51 (removed) before the truncate resolved: its next step fails.
  await t.throwsAsync(atCut.next(), { code: 'WAL_LSN_OUT_OF_RANGE' })
  await wal.close()
})

test('a truncate inside a segment and across segments while streams read (seeded model)', async (t) => {
  const seed = Number(process.env.SEGWAL_SEED ?? Date.now() % 100000)
  t.log(`seed ${seed}`)
  let x = seed || 1
  const rand = (n) => {
    x = (x * 48271) % 2147483647
    return x % n
  }
  const wal = await Wal.open(tempDir(), { sync: 'none', segmentSize: 16 << 10 })
  let last = 0
  /** What each LSN holds now (payload size encodes the generation). */
  const sizes = [0]
  for (let round = 0; round < 25; round++) {
    const n = 50 + rand(500)
    const size = 5 + rand(200)
    await appendRange(wal, 3, last + 1, last + n, size)
    for (let l = last + 1; l <= last + n; l++) sizes[l] = size
    last += n
    const streams = []
    for (let k = 0; k < 4; k++) {
      const from = 1 + rand(last)
      const s = k % 2 ? wal.stream(3, { fromLsn: from }) : wal.streamBatches(3, { fromLsn: from, maxBytes: 4096 })
      const take = rand(40)
      let next = from
      for (let i = 0; i < take && next <= last; i++) {
        const v = (await s.next()).value
        next = k % 2 ? v.lsn + 1 : v.lastLsn + 1
      }
      streams.push({ s, next, batches: k % 2 === 0 })
    }
    const cut = Math.max(0, last - rand(Math.min(last, 700)))
    await wal.truncateAfter(3, cut)
    last = cut
    sizes.length = cut + 1
    for (const { s, next, batches } of streams) {
      const lsns = []
      let code
      try {
        for await (const v of s) {
          const recs = batches ? [...v] : [v]
          for (const r of recs) {
            t.true(r.lsn <= cut, `seed ${seed}: yielded removed LSN ${r.lsn} (cut ${cut})`)
            t.is(r.payload.length, sizes[r.lsn], `seed ${seed}: bytes of ${r.lsn}`)
            lsns.push(r.lsn)
          }
        }
      } catch (e) {
        code = e.code
      }
      if (next <= cut + 1) {
        t.is(code, undefined, `seed ${seed}: a stream at ${next} below the cut ${cut} failed`)
        if (lsns.length > 0) t.is(lsns.at(-1), cut)
      } else {
        t.is(code, 'WAL_LSN_OUT_OF_RANGE', `seed ${seed}: a stream at ${next} above the cut ${cut}`)
      }
    }
  }
  await wal.close()
})

test('streamBatches: batches read ahead of a truncate are cut', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none' })
  await appendRange(wal, 1, 1, 1000)
  const batches = wal.streamBatches(1, { maxBytes: 4096 })
  const first = (await batches.next()).value
  t.is(first.firstLsn, 1)
  await wal.truncateAfter(1, 990)
  let last = first.lastLsn
  for await (const b of batches) {
    t.is(b.firstLsn, last + 1)
    last = b.lastLsn
  }
  t.is(last, 990)
  await wal.close()
})

// API.md, Cleanup: "a stream that has not reached a purged segment when it is deleted rejects
// its next step with WAL_LSN_PURGED (a stream inside a segment may finish it)". Batches read
// ahead from segments a purge then deleted must not make it through: the streams below wait
// until their readers have read ahead, then purge, then go on.
test('streams read ahead of a purge reject at the purged segments, for both streams', async (t) => {
  for (const kind of ['stream', 'streamBatches']) {
    const wal = await Wal.open(tempDir(), { sync: 'none', segmentSize: 4096 })
    await appendRange(wal, 1, 1, 300, 200)
    const segs = wal.segments(1)
    t.true(segs.length >= 6, `${segs.length} segments`)
    const it =
      kind === 'stream'
        ? wal.stream(1)[Symbol.asyncIterator]()
        : wal.streamBatches(1, { maxBytes: 4096 })[Symbol.asyncIterator]()
    const first = (await it.next()).value
    const took = kind === 'stream' ? first.lsn : first.lastLsn
    t.true(took <= segs[0].lastLsn)
    // Long enough for the reader to have read ahead into the next segments.
    await new Promise((resolve) => setTimeout(resolve, 100))
    const minLsn = segs[3].lastLsn + 1
    const r = await wal.purgeBefore(1, minLsn)
    t.is(r.segmentsDeleted, 4)
    let last = took
    let code
    try {
      for (;;) {
        const { done, value } = await it.next()
        if (done) break
        last = kind === 'stream' ? value.lsn : value.lastLsn
      }
    } catch (e) {
      code = e.code
    }
    t.is(code, 'WAL_LSN_PURGED', `${kind}: went on to LSN ${last} through segments purged below ${minLsn}`)
    t.true(last <= segs[0].lastLsn, `${kind}: yielded LSN ${last}, past the segment it was in`)
    await wal.close()
  }
})

// Issue #9.10: only the API's codes while purges and truncates race readers.
test('streams and from positions racing purges and truncates get only WAL_LSN_PURGED / OUT_OF_RANGE', async (t) => {
  const wal = await Wal.open(tempDir(), { sync: 'none', segmentSize: 4096 })
  let last = 0
  const codes = new Set()
  let stop = false
  const reader = async () => {
    let i = 0
    while (!stop) {
      i++
      const segs = wal.segments(4)
      const opts = i % 2 && segs.length > 0 ? { from: { segment: segs[0].index, offset: 64 } } : {}
      try {
        let expect = 0
        for await (const r of wal.stream(4, opts)) {
          if (expect !== 0 && r.lsn !== expect) throw new Error(`LSN ${r.lsn} where ${expect} was expected`)
          expect = r.lsn + 1
        }
      } catch (e) {
        codes.add(e.code ?? e.message)
      }
      await new Promise((r) => setImmediate(r))
    }
  }
  const readers = [reader(), reader(), reader()]
  for (let round = 0; round < 150; round++) {
    await appendRange(wal, 4, last + 1, last + 60, 90)
    last += 60
    if (round % 3 === 0) {
      last -= round % 25
      await wal.truncateAfter(4, last)
    } else {
      await wal.purgeBefore(4, last - 20)
    }
  }
  stop = true
  await Promise.all(readers)
  for (const c of codes) t.true(c === 'WAL_LSN_PURGED' || c === 'WAL_LSN_OUT_OF_RANGE', `a reader got ${c}`)
  await wal.close()
})
