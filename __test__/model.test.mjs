// Model-based test of the JS API (issue 9): random operation sequences against a model
// of what API.md promises, on real threads and a real directory. The Rust simulator
// (crates/segwal-sim) covers the engine with faults and power loss; this covers the
// facade and the binding above it, which it cannot see.
//
// The operation sequence comes from a seed (printed on failure); timing does not.
// SEGWAL_MODEL_SEED=n replays one seed; SEGWAL_MODEL_SEEDS=n runs more of them, from
// SEGWAL_MODEL_FROM (1000).
import test from 'ava'
import { Wal, WalError } from '../dist/index.js'
import { makeTempDirs, rng } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('model')
test.after.always(cleanup)

/** Defects known and still open whose checks this test skips, as `KNOWN_OPEN` in
 * crates/segwal-sim/src/run.rs: none. Issue 9 fixed the last two (`#1`, a truncate of a
 * partition never written to hung the next append; `#3`, a stream yielded records a
 * resolved truncate removed, read ahead before the cut), so both are checked. */
const KNOWN_OPEN = new Set()

/** Every promise settles: the hang detector. */
const SETTLE_MS = 20_000

function settle(promise, what) {
  let timer
  const hang = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle in ${SETTLE_MS} ms`)), SETTLE_MS)
  })
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer))
}

async function runSeed(seed, ops) {
  const rand = rng(seed)
  const int = (n) => Math.floor(rand() * n)
  const dir = tempDir()
  const options = {
    segmentSize: [4096, 64 << 10, 1 << 20][int(3)],
    sync: ['always', 'none', { intervalMs: 5 }][int(3)],
  }
  const ids = [0, 1, 7, 65535, 300].slice(0, 1 + int(5))
  /** Per partition: payloads by LSN (the caller's view), next LSN, first retained LSN. */
  const model = new Map()
  const part = (p) => {
    if (!model.has(p)) model.set(p, { recs: new Map(), next: 1, first: 1, written: false })
    return model.get(p)
  }
  let wal = await Wal.open(dir, options)
  let inflight = []
  let serial = 0
  const log = []
  const fail = (msg) => {
    throw new Error(`seed ${seed}: ${msg}\n  options ${JSON.stringify(options)}\n  last ops:\n    ${log.slice(-25).join('\n    ')}`)
  }
  // Sizes that fit a segment (`WAL_RECORD_TOO_LARGE` is the Rust simulator's business).
  const payload = (most = options.segmentSize / 4) => {
    const n = Math.min([0, 10, 100, 3000, 70_000][int(5)], most)
    const b = Buffer.alloc(n)
    b.write(`s${seed}-${serial++}-`.slice(0, n))
    for (let i = 24; i < n; i += 97) b[i] = int(256)
    return b
  }
  const drain = async () => {
    const all = inflight
    inflight = []
    for (const [what, pr] of all) await settle(pr, what)
    await settle(wal.flush(), 'flush')
    if (wal.pendingBytes !== 0) fail(`pendingBytes ${wal.pendingBytes} once every append and write settled`)
  }
  /** Positions seen in streams, by partition and LSN: later streams start `from` them. */
  const seen = new Map()
  const remember = (p, lsn, pos) => {
    if (!seen.has(p)) seen.set(p, new Map())
    seen.get(p).set(lsn, pos)
  }
  /** The records of a stream, through `stream()` or (randomly) `streamBatches()`. */
  async function* recordsOf(p, options) {
    if (int(2) === 0) {
      for await (const r of wal.stream(p, options)) yield r
      return
    }
    const maxBytes = [4096, 20_000, 1 << 20][int(3)]
    let next = 0
    for await (const b of wal.streamBatches(p, { ...options, maxBytes })) {
      if (b.count < 1 || b.lastLsn !== b.firstLsn + b.count - 1 || b.partition !== p) {
        fail(`streamBatches p${p}: batch ${JSON.stringify({ partition: b.partition, count: b.count, firstLsn: b.firstLsn, lastLsn: b.lastLsn })}`)
      }
      if (next !== 0 && b.firstLsn !== next) fail(`streamBatches p${p}: batch from ${b.firstLsn} after one that ended at ${next - 1}`)
      next = b.lastLsn + 1
      let bytes = 0
      for (let i = 0; i < b.count; i++) bytes += b.lengths[i]
      if (b.count > 1 && bytes > maxBytes) fail(`streamBatches p${p}: ${b.count} records, ${bytes} B in a batch of maxBytes ${maxBytes}`)
      let i = 0
      for (const r of b) {
        const pos = b.position(i)
        if (r.lsn !== b.firstLsn + i || pos.segment !== r.segment || pos.offset !== r.offset || !b.payload(i).equals(r.payload)) {
          fail(`streamBatches p${p}: record ${i} of the batch from ${b.firstLsn} disagrees with payload()/position()`)
        }
        if (!b.data.subarray(b.starts[i], b.starts[i] + b.lengths[i]).equals(r.payload)) fail(`streamBatches p${p}: data/starts/lengths of LSN ${r.lsn}`)
        i++
        yield r
      }
      if (i !== b.count) fail(`streamBatches p${p}: the batch from ${b.firstLsn} iterated ${i} of ${b.count} records`)
    }
  }
  // A stream must yield exactly the model's records from its start, in order.
  const checkStream = async (p, fromLsn, limit) => {
    const m = part(p)
    const last = wal.lastLsn(p)
    let expect = fromLsn === 0 ? wal.firstLsn(p) || last + 1 : fromLsn
    // Sometimes from a position seen earlier, when it is the record of that LSN still.
    const pos = seen.get(p)?.get(expect)
    const options = pos !== undefined && fromLsn !== 0 && int(2) === 0 ? { from: pos } : { fromLsn }
    let n = 0
    for await (const r of recordsOf(p, options)) {
      if (r.lsn !== expect) fail(`stream p${p} from ${JSON.stringify(options)} yielded LSN ${r.lsn}, expected ${expect}`)
      const want = m.recs.get(r.lsn)
      if (!want || !want.equals(r.payload)) fail(`stream p${p} LSN ${r.lsn}: bytes differ from what was appended`)
      remember(p, r.lsn, { segment: r.segment, offset: r.offset })
      expect++
      if (++n === limit) break
    }
    if (n !== limit && expect <= last) fail(`stream p${p} from ${JSON.stringify(options)} ended at ${expect}, lastLsn was ${last}`)
  }
  /** LSNs from `lsn` on no longer hold what `seen` says (a truncate rewrote them). */
  const forget = (p, lsn) => {
    for (const l of [...(seen.get(p)?.keys() ?? [])]) if (l > lsn) seen.get(p).delete(l)
  }

  for (let step = 0; step < ops; step++) {
    const p = ids[int(ids.length)]
    const m = part(p)
    const roll = int(100)
    if (roll < 12) {
      // write(): the LSN at once, no promise; flush() reports it.
      const b = payload()
      const lsn = m.next++
      m.recs.set(lsn, b)
      m.written = true
      log.push(`write p${p} ${b.length} B (lsn ${lsn})`)
      const got = wal.write(p, b)
      if (got !== lsn) fail(`write p${p} returned LSN ${got}, expected ${lsn}`)
      if (b.length > 0 && options.sync === 'always' && wal.pendingBytes < b.length) {
        fail(`pendingBytes ${wal.pendingBytes} right after a durable write of ${b.length} B`)
      }
    } else if (roll < 16) {
      // flush(): every record written or appended before it is acknowledged once it resolves.
      const lasts = new Map([...model].map(([q, mq]) => [q, mq.next - 1]))
      log.push('flush')
      const w = wal
      inflight.push([
        'flush',
        w.flush().then(() => {
          // Once closed (a close in the same turn), the reopened WAL is checked instead.
          if (w.closed) return
          for (const [q, last] of lasts) {
            if (w.lastLsn(q) < last && part(q).next - 1 >= last) fail(`flush resolved with lastLsn(${q}) ${w.lastLsn(q)} below ${last}, written before it`)
          }
        }),
      ])
    } else if (roll < 35) {
      const b = payload()
      const lsn = m.next++
      m.recs.set(lsn, b)
      m.written = true
      log.push(`append p${p} ${b.length} B (lsn ${lsn})`)
      inflight.push([
        `append p${p} lsn ${lsn}`,
        wal.append(p, b).then((r) => {
          if (r.lsn !== lsn) fail(`append p${p} resolved LSN ${r.lsn}, expected ${lsn}`)
        }),
      ])
    } else if (roll < 50) {
      const count = 1 + int(20)
      const bs = Array.from({ length: count }, () => payload(options.segmentSize / 2 / count - 64))
      const first = m.next
      bs.forEach((b, i) => m.recs.set(first + i, b))
      m.next += bs.length
      m.written = true
      log.push(`appendBatch p${p} ${bs.length} recs (lsn ${first})`)
      inflight.push([
        `appendBatch p${p}`,
        wal.appendBatch(p, bs).then((r) => {
          if (r.firstLsn !== first || r.count !== bs.length) fail(`appendBatch p${p} resolved ${JSON.stringify(r)}, expected ${first}+${bs.length}`)
        }),
      ])
    } else if (roll < 55) {
      log.push('sync')
      inflight.push(['sync', wal.sync()])
    } else if (roll < 70) {
      await drain()
      const last = wal.lastLsn(p)
      const first = wal.firstLsn(p) || last + 1
      const from = [0, first, first + int(last + 2 - first)][int(3)]
      log.push(`stream p${p} from ${from}`)
      await settle(checkStream(p, from, int(3) === 0 ? 1 + int(5) : Infinity), `stream p${p}`)
    } else if (roll < 75) {
      // A follow stream (of records or of batches) sees appends made after it started,
      // then ends at abort.
      await drain()
      const ac = new AbortController()
      const start = wal.lastLsn(p) + 1
      const got = []
      log.push(`follow p${p} from ${start}`)
      const reading = (async () => {
        for await (const r of recordsOf(p, { fromLsn: start, follow: true, signal: ac.signal })) {
          got.push(r.lsn)
          if (got.length === 3) ac.abort()
        }
      })()
      for (let i = 0; i < 3; i++) {
        const b = payload()
        m.recs.set(m.next, b)
        m.next++
        m.written = true
        await settle(wal.append(p, b), `append p${p} under a follow stream`)
      }
      await settle(reading, `follow stream p${p}`)
      if (got.join() !== [start, start + 1, start + 2].join()) fail(`follow p${p} yielded ${got}`)
    } else if (roll < 78) {
      // A stream open across a truncate that leaves its next record in place goes on
      // normally and, once the truncate has resolved, never yields a removed record.
      await drain()
      const last = wal.lastLsn(p)
      if (last < 3 || m.first > 1) continue
      const it = wal.stream(p, { fromLsn: 1 })[Symbol.asyncIterator]()
      const k = 1 + int(Math.min(last - 1, 5))
      for (let i = 1; i <= k; i++) {
        const r = await settle(it.next(), `stream p${p} before a truncate`)
        if (r.done || r.value.lsn !== i) fail(`stream p${p} step ${i} gave ${JSON.stringify(r.done ? 'end' : r.value.lsn)}`)
      }
      const cut = k + int(last - k)
      log.push(`stream p${p} read ${k}, then truncateAfter ${cut} (last ${last})`)
      await settle(wal.truncateAfter(p, cut), `truncateAfter p${p}`)
      for (const l of [...m.recs.keys()]) if (l > cut) m.recs.delete(l)
      forget(p, cut)
      m.next = cut + 1
      if (KNOWN_OPEN.has('#3')) {
        await it.return()
        continue
      }
      let expect = k + 1
      for (;;) {
        const r = await settle(it.next(), `stream p${p} after a truncate`)
        if (r.done) break
        if (r.value.lsn > cut) fail(`stream p${p} yielded LSN ${r.value.lsn}, removed by truncateAfter(${p}, ${cut}) (issue 9 #3)`)
        if (r.value.lsn !== expect++) fail(`stream p${p} yielded LSN ${r.value.lsn} after a truncate, expected ${expect - 1}`)
      }
      if (expect !== cut + 1) fail(`stream p${p} ended at ${expect} after truncateAfter(${p}, ${cut})`)
    } else if (roll < 82) {
      if (!m.written && KNOWN_OPEN.has('#1')) continue
      await drain()
      const last = m.next - 1
      const lsn = int(3) === 0 ? 0 : Math.max(0, last - int(10))
      if (lsn !== 0 && lsn + 1 < m.first) continue
      log.push(`truncateAfter p${p} ${lsn}`)
      await settle(wal.truncateAfter(p, lsn), `truncateAfter p${p}`)
      for (const l of [...m.recs.keys()]) if (l > lsn) m.recs.delete(l)
      forget(p, lsn)
      m.next = lsn + 1
      m.first = Math.min(m.first, lsn + 1)
      if (wal.lastLsn(p) !== lsn) fail(`after truncateAfter(${p}, ${lsn}) lastLsn is ${wal.lastLsn(p)}`)
    } else if (roll < 88) {
      await drain()
      // Sometimes with a stream open part way: it goes on in order with the right bytes,
      // and either reaches the end or rejects with WAL_LSN_PURGED where records are gone.
      // Such a purge reaches near the end, so that it deletes the segments the stream is in.
      const start = wal.firstLsn(p)
      const it = start > 0 && int(2) === 0 ? recordsOf(p, { fromLsn: start }) : undefined
      const min = it === undefined ? int(m.next + 2) : Math.max(0, m.next - int(5))
      let expect = start
      const step = async () => {
        const r = await settle(it.next(), `stream p${p} across a purge`)
        if (r.done) return false
        if (r.value.lsn !== expect) fail(`stream p${p} across a purge yielded LSN ${r.value.lsn}, expected ${expect}`)
        if (!m.recs.get(expect)?.equals(r.value.payload)) fail(`stream p${p} across a purge: LSN ${expect} bytes differ`)
        expect++
        return true
      }
      const before = it === undefined ? 0 : int(4)
      for (let i = 0; i < before && (await step()); i++);
      log.push(`purgeBefore p${p} ${min}${it === undefined ? '' : ` (a stream from ${start} at ${expect})`}`)
      const r = await settle(wal.purgeBefore(p, min), `purgeBefore p${p}`)
      const floor = Math.max(min, m.first, 1)
      if (r.firstLsn > floor) fail(`purgeBefore(${p}, ${min}) left firstLsn ${r.firstLsn} (records from ${floor} must stay)`)
      if (r.firstLsn > 0) m.first = Math.max(m.first, r.firstLsn)
      if (it !== undefined) {
        const last = wal.lastLsn(p)
        try {
          while (await step());
          if (expect <= last) fail(`stream p${p} across a purge ended at ${expect}, lastLsn ${last}`)
        } catch (e) {
          if (!(e instanceof WalError) || e.code !== 'WAL_LSN_PURGED') throw e
          if (expect >= wal.firstLsn(p) && wal.firstLsn(p) > 0) fail(`stream p${p} rejected WAL_LSN_PURGED at ${expect}, still retained (first ${wal.firstLsn(p)})`)
        }
      }
    } else if (roll < 92) {
      log.push('close + reopen')
      const closing = wal.close()
      // Everything appended before close() completes and is durable.
      await settle(Promise.all([closing, ...inflight.map(([, pr]) => pr)]), 'close')
      inflight = []
      try {
        wal.lastLsn(p)
        fail('a closed WAL still answers')
      } catch (e) {
        if (!(e instanceof WalError) || e.code !== 'WAL_CLOSED') throw e
      }
      wal = await Wal.open(dir, options)
      if (wal.recovery.length !== 0) fail(`recovery after a clean close: ${JSON.stringify(wal.recovery)}`)
      for (const q of model.keys()) {
        const mq = part(q)
        if (wal.lastLsn(q) !== mq.next - 1 && mq.recs.size > 0) fail(`after reopen p${q} lastLsn ${wal.lastLsn(q)}, expected ${mq.next - 1}`)
        await settle(checkStream(q, 0, Infinity), `stream p${q} after reopen`)
      }
    } else {
      await drain()
    }
  }
  await drain()
  for (const q of model.keys()) await settle(checkStream(q, 0, Infinity), `final stream p${q}`)
  await settle(wal.close(), 'final close')
}

const one = process.env.SEGWAL_MODEL_SEED
const count = Number(process.env.SEGWAL_MODEL_SEEDS ?? 6)
const from = Number(process.env.SEGWAL_MODEL_FROM ?? 1000)
const seeds = one !== undefined ? [Number(one)] : Array.from({ length: count }, (_, i) => from + i)

for (const seed of seeds) {
  test.serial(`model seed ${seed}`, async (t) => {
    try {
      await runSeed(seed, 150)
    } catch (e) {
      t.log(`replay: SEGWAL_MODEL_SEED=${seed} npx ava __test__/model.test.mjs`)
      throw e
    }
    t.pass()
  })
}
