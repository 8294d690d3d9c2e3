// Model-based test of the failure rules of issue 11 with a real ENOSPC: random write(),
// append(), flush(), truncateAfter(), purgeBefore() and stream sequences, with each sync
// mode, on a WAL whose tmpfs runs full and is given room again, checked against what
// API.md promises:
// - write() returns the next LSN at once, or throws the partition's failure (a WalError,
//   WAL_IO_ERROR / ENOSPC) until a flush() has reported it; a rejected append() does not
//   report it, so right after one (with no flush() called or rejected since the append was
//   made) write() throws;
// - flush() resolves or rejects with such a failure, each failure once: with room again,
//   flushes reject a bounded number of times and then resolve;
// - LSNs resume after the last acknowledged record, so the first LSN handed out once the
//   failures are reported is lastLsn() + 1;
// - the log (streamed live, and again after close and reopen) holds LSNs
//   firstLsn()..lastLsn() densely, each with the payload last handed that LSN, every
//   resolved append in place and no rejected append's payload anywhere; a truncate ends it
//   at the cut, a purge keeps every record at or above its bound;
// - pendingBytes is 0 once everything settled.
// The Rust simulator injects faults into the engine; this covers the facade's side of them.
// Needs mount(2) (root or CAP_SYS_ADMIN); skipped with a message otherwise.
//
// SEGWAL_DISKFULL_SEED=n replays one seed; SEGWAL_DISKFULL_SEEDS=n runs more, from
// SEGWAL_DISKFULL_FROM (1).
import test from 'ava'
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Wal, WalError } from 'segwal'
import { rng } from './api-helpers.mjs'
import { mountTmpfs, probeMount, unmount, unmountAll, withTimeout } from './tmpfs-helpers.mjs'

test.after.always(unmountAll)

const SETTLE_MS = 20_000
/**
 * Seeds that found a defect, run first. Threads decide whether a seed meets its defect
 * (61 did in 2 runs of 3 without its fix); each defect is also pinned by an example test:
 * - 61: a large append (crossing on its own) refused by the engine, whose failure the
 *   facade had not taken yet, was rejected at once, and `write()` then went on handing out
 *   LSNs instead of throwing that failure until a flush() reported it (the example:
 *   writes-diskfull.test.mjs, "a large append refused before the facade took the failure").
 */
const REGRESSION_SEEDS = [61]
const MOUNT = 8 << 20

function isEnospc(e) {
  return e instanceof WalError && e.code === 'WAL_IO_ERROR' && e.errno === 'ENOSPC'
}

async function runSeed(seed, ops) {
  const rand = rng(seed)
  const int = (n) => Math.floor(rand() * n)
  const m = mountTmpfs(`${MOUNT}`)
  if (m.error) throw new Error(`mount failed: ${m.error}`)
  const dir = join(m.dir, 'wal')
  mkdirSync(dir)
  const filler = join(m.dir, 'filler')
  /**
   * Leaves about `free` bytes of the tmpfs unused. The WAL may take space meanwhile (a
   * spare segment made ahead): then the filler is made smaller.
   */
  const fill = () => {
    const free = [16 << 10, 200 << 10, 1 << 20][int(3)]
    for (let tries = 0; ; tries++) {
      rmSync(filler, { force: true })
      const s = statfsSync(m.dir)
      try {
        writeFileSync(filler, Buffer.alloc(Math.max(0, s.bavail * s.bsize - free - tries * (256 << 10))))
        return
      } catch (e) {
        if (e.code !== 'ENOSPC' || tries === 8) throw e
      }
    }
  }
  const options = {
    segmentSize: [64 << 10, 256 << 10, 1 << 20][int(3)],
    sync: ['always', 'none', { intervalMs: 5 }][int(3)],
    preallocate: int(2) === 0,
  }
  const ids = [1, 2, 3].slice(0, 1 + int(3))
  const log = []
  const fail = (msg) => {
    throw new Error(`seed ${seed}: ${msg}\n  options ${JSON.stringify(options)}\n  last ops:\n    ${log.slice(-30).join('\n    ')}`)
  }
  let wal = await Wal.open(dir, options)
  /**
   * Per partition: the payload last handed each LSN; the last LSN handed out; whether LSNs
   * may have gone back to lastLsn() + 1 (a failure was seen since); whether write() must
   * throw (an append's failure that no flush() can have reported yet).
   */
  const parts = new Map(ids.map((p) => [p, { byLsn: new Map(), prev: 0, mayReset: false, mustThrow: false, first: 1 }]))
  /** Appends that resolved (tag -> { p, lsn }) and the tags of those rejected. */
  const resolved = new Map()
  const rejected = new Set()
  let rejections = 0
  let calls = 0
  let serial = 0
  let inflight = []
  const payload = () => {
    const tag = `s${seed}-${serial++};`
    const n = Math.max(tag.length, Math.min([10, 3000, 20_000, 70_000][int(4)], options.segmentSize / 4))
    const b = Buffer.alloc(n, serial % 251)
    b.write(tag)
    return { tag, b }
  }
  const tagOf = (buf) => buf.subarray(0, buf.indexOf(';') + 1).toString()

  const flush = () => {
    log.push('flush')
    // The facade may settle a flush() with a failure it already took as the call is made:
    // from then on, the caller is told, and write() may go on.
    calls++
    for (const st of parts.values()) {
      st.mustThrow = false
      st.mayReset = true
    }
    return wal.flush().then(
      () => true,
      (e) => {
        if (!isEnospc(e)) fail(`flush rejected with ${e?.code ?? e}: ${e?.message}`)
        // It reported one failure, of a partition it does not name (maybe an append's
        // that was rejected before this flush() settled, though it was called earlier).
        rejections++
        for (const st of parts.values()) {
          st.mustThrow = false
          st.mayReset = true
        }
        return false
      },
    )
  }
  const drain = async () => {
    const all = inflight
    inflight = []
    await withTimeout(Promise.all(all), SETTLE_MS, 'the appends and flushes in flight')
  }
  /** Flushes until one resolves: with no new records, each failure is reported once. */
  const settleAll = async () => {
    await drain()
    for (let i = 0; ; i++) {
      if (i > 200) fail('flush() still rejects after 200 calls with no new records')
      if (await withTimeout(flush(), SETTLE_MS, 'flush')) break
    }
    if (wal.pendingBytes !== 0) fail(`pendingBytes ${wal.pendingBytes} once everything settled`)
  }
  /** The log of `p`, LSNs firstLsn()..lastLsn(), against the model. */
  const checkLog = async (p, what) => {
    const s = parts.get(p)
    const last = wal.lastLsn(p)
    const first = wal.firstLsn(p)
    if (first > s.first) fail(`${what}: p${p} firstLsn ${first}, but nothing below ${s.first} was purged`)
    let expect = first || last + 1
    for await (const r of wal.stream(p)) {
      if (r.lsn !== expect) fail(`${what}: p${p} yielded LSN ${r.lsn}, expected ${expect}`)
      const tag = tagOf(r.payload)
      if (rejected.has(tag)) fail(`${what}: p${p} LSN ${r.lsn} holds ${tag}, an append that was rejected`)
      if (!s.byLsn.get(r.lsn)?.equals(r.payload)) fail(`${what}: p${p} LSN ${r.lsn} holds ${tag}, not the payload last handed that LSN`)
      expect++
    }
    if (expect !== last + 1) fail(`${what}: p${p} stream ended at ${expect}, lastLsn ${last}`)
    for (const [tag, a] of resolved) {
      if (a.p === p && a.lsn > last && !a.cut) fail(`${what}: p${p} append ${tag} resolved at LSN ${a.lsn}, beyond lastLsn ${last}`)
    }
  }

  fill()
  for (let step = 0; step < ops; step++) {
    const p = ids[int(ids.length)]
    const s = parts.get(p)
    const roll = int(100)
    if (roll < 40) {
      const { tag, b } = payload()
      const last = wal.lastLsn(p)
      let lsn
      try {
        lsn = wal.write(p, b)
      } catch (e) {
        if (!isEnospc(e)) fail(`write p${p} threw ${e?.code ?? e}: ${e?.message}`)
        log.push(`write p${p} ${tag} threw ENOSPC`)
        s.mayReset = true
        continue
      }
      log.push(`write p${p} ${tag} ${b.length} B -> ${lsn}`)
      if (s.mustThrow) fail(`write p${p} returned ${lsn}, though a failure of p${p} no flush() can have reported was taken`)
      // The next LSN, or after a failure seen, the one after the last acknowledged.
      if (lsn !== s.prev + 1 && !(s.mayReset && lsn === last + 1)) {
        fail(`write p${p} returned LSN ${lsn}: expected ${s.prev + 1}${s.mayReset ? ` or ${last + 1}` : ''}`)
      }
      s.prev = lsn
      s.mayReset = false
      s.byLsn.set(lsn, b)
    } else if (roll < 62) {
      const { tag, b } = payload()
      log.push(`append p${p} ${tag} ${b.length} B`)
      const { prev } = s
      const last = wal.lastLsn(p)
      const made = [calls, rejections]
      inflight.push(
        wal.append(p, b).then(
          (r) => {
            if (r.lsn > prev + 1 || r.lsn < last + 1) fail(`append p${p} ${tag} resolved at LSN ${r.lsn}, expected ${last + 1}..${prev + 1}`)
            // Gone back to the last acknowledged LSN with no failure seen: the facade took
            // one, which write() must throw until a flush() reports it.
            if (r.lsn !== prev + 1 && !s.mayReset) s.mustThrow = true
            s.prev = r.lsn
            s.byLsn.set(r.lsn, b)
            resolved.set(tag, { p, lsn: r.lsn })
          },
          (e) => {
            if (!isEnospc(e)) fail(`append p${p} ${tag} rejected with ${e?.code ?? e}: ${e?.message}`)
            log.push(`append p${p} ${tag} rejected ENOSPC`)
            rejected.add(tag)
            s.mayReset = true
            // No flush() was called or rejected since the append was made, so none can have
            // reported its failure.
            if (calls === made[0] && rejections === made[1]) s.mustThrow = true
          },
        ),
      )
      // Its LSN is known when it settles: the model waits for that before the next step.
      await drain()
    } else if (roll < 72) {
      inflight.push(flush())
    } else if (roll < 77) {
      // A truncate once everything settled (the disk may still be full): it resolves, the
      // log ends at the cut and LSNs go on after it; or it fails with the disk's error.
      await settleAll()
      const last = wal.lastLsn(p)
      // Not below the first retained record (firstLsn() is 0 when none is: then `last`);
      // 0 restarts the partition.
      const low = wal.firstLsn(p) > 0 ? wal.firstLsn(p) - 1 : last
      const lsn = int(4) === 0 ? 0 : int(3) === 0 ? low : last - int(Math.min(last - low, 10) + 1)
      log.push(`truncateAfter p${p} ${lsn} (last ${last})`)
      const e = await withTimeout(wal.truncateAfter(p, lsn).then(() => undefined, (x) => x), SETTLE_MS, 'truncateAfter')
      if (e !== undefined) {
        if (!isEnospc(e)) fail(`truncateAfter(${p}, ${lsn}) rejected with ${e?.code ?? e}: ${e?.message}`)
        log.push(`truncateAfter p${p} rejected ENOSPC`)
        s.mayReset = true
        continue
      }
      if (wal.lastLsn(p) !== lsn) fail(`after truncateAfter(${p}, ${lsn}) lastLsn is ${wal.lastLsn(p)}`)
      for (const l of [...s.byLsn.keys()]) if (l > lsn) s.byLsn.delete(l)
      for (const a of resolved.values()) if (a.p === p && a.lsn > lsn) a.cut = true
      s.prev = lsn
      if (lsn === 0) s.first = 1
      await checkLog(p, `after truncateAfter(${p}, ${lsn})`)
    } else if (roll < 82) {
      // A purge once everything settled: whole segments below `min`, never a record at or above it.
      await settleAll()
      const min = int(s.prev + 2)
      log.push(`purgeBefore p${p} ${min}`)
      const r = await withTimeout(wal.purgeBefore(p, min).then((x) => x, (x) => x), SETTLE_MS, 'purgeBefore')
      if (r instanceof Error) {
        if (!isEnospc(r)) fail(`purgeBefore(${p}, ${min}) rejected with ${r?.code ?? r}: ${r?.message}`)
        log.push(`purgeBefore p${p} rejected ENOSPC`)
        continue
      }
      if (r.firstLsn > Math.max(min, s.first, 1)) fail(`purgeBefore(${p}, ${min}) left firstLsn ${r.firstLsn}: records at or above ${min} must stay`)
      if (r.firstLsn > 0) s.first = Math.max(s.first, r.firstLsn)
      await checkLog(p, `after purgeBefore(${p}, ${min})`)
    } else if (roll < 88) {
      log.push('room: the filler goes, every failure is reported')
      rmSync(filler, { force: true })
      await settleAll()
      for (const q of ids) await checkLog(q, 'with room again')
      fill()
    } else if (roll < 91) {
      log.push('close + reopen (with room)')
      rmSync(filler, { force: true })
      await settleAll()
      await withTimeout(wal.close(), SETTLE_MS, 'close')
      wal = await Wal.open(dir, options)
      if (wal.recovery.length !== 0) fail(`recovery after a clean close: ${JSON.stringify(wal.recovery)}`)
      for (const q of ids) await checkLog(q, 'after reopen')
      fill()
    } else {
      await drain()
    }
  }
  rmSync(filler, { force: true })
  await settleAll()
  for (const q of ids) await checkLog(q, 'at the end')
  await withTimeout(wal.close(), SETTLE_MS, 'final close')
  wal = await Wal.open(dir, options)
  for (const q of ids) await checkLog(q, 'after the final reopen')
  await wal.close()
  unmount(m.dir)
}

const probe = probeMount()
if (!probe.ok) {
  test('the disk-full model test needs mount(2)', (t) => {
    t.log(`skipping: cannot mount a tmpfs (${probe.error}); run as root`)
    t.pass()
  })
} else {
  const one = process.env.SEGWAL_DISKFULL_SEED
  const count = Number(process.env.SEGWAL_DISKFULL_SEEDS ?? 8)
  const from = Number(process.env.SEGWAL_DISKFULL_FROM ?? 1)
  const seeds = one !== undefined ? [Number(one)] : [...new Set([...REGRESSION_SEEDS, ...Array.from({ length: count }, (_, i) => from + i)])]
  for (const seed of seeds) {
    test.serial(`disk-full model seed ${seed}`, async (t) => {
      try {
        await runSeed(seed, 120)
      } catch (e) {
        t.log(`replay: SEGWAL_DISKFULL_SEED=${seed} npx ava __test__/model-diskfull.test.mjs`)
        throw e
      }
      t.pass()
    })
  }
}
