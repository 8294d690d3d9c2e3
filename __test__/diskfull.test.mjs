// Disk full: a WAL on a 4 MiB tmpfs. Appends reject with WalError WAL_IO_ERROR and
// errno 'ENOSPC'; nothing acknowledged is lost (read back in process and after a
// reopen); the WAL reopens on the full disk; after purgeBefore frees space, appends
// succeed again without reopening. Both with preallocation (ENOSPC at segment
// creation) and without (ENOSPC in the middle of a record or batch).
// Needs mount(2) (root or CAP_SYS_ADMIN); skipped with a message otherwise.

import test from 'ava'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Wal, WalError } from 'segwal'
import { mountTmpfs as mountSized, probeMount, unmount, unmountAll, withTimeout } from './tmpfs-helpers.mjs'

const SIZE = '4m'
const SEGMENT = 256 * 1024
const PAYLOAD = 8 * 1024

const mountTmpfs = () => mountSized(SIZE)
test.after.always(unmountAll)

// Probe once whether we may mount at all.
const probe = probeMount()
const canMount = probe.ok
const maybe = canMount ? test.serial : test.serial.skip
if (!canMount) {
  test('disk full tests need mount(2)', (t) => {
    t.log(`skipping disk-full tests: cannot mount a tmpfs (${probe.error}); run as root`)
    t.pass()
  })
}

// Payload of id on partition p: verifiable without knowing whether it was acknowledged.
function payload(p, id) {
  const head = Buffer.from(`p${p}-id${id}-`)
  const body = Buffer.alloc(PAYLOAD - head.length)
  let x = (id * 2654435761 + p * 40503) >>> 0
  for (let i = 0; i < body.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    body[i] = 97 + ((x >>> 16) % 26)
  }
  return Buffer.concat([head, body])
}
function idOf(p, buf) {
  const m = /^p(\d+)-id(\d+)-/.exec(buf.subarray(0, 40).toString('latin1'))
  if (!m || Number(m[1]) !== p) return undefined
  const id = Number(m[2])
  return payload(p, id).equals(buf) ? id : undefined
}

function checkEnospc(t, err, what) {
  t.true(err instanceof WalError && err instanceof Error, `${what}: not a WalError: ${err?.constructor?.name} ${err}`)
  t.is(err.code, 'WAL_IO_ERROR', `${what}: code ${err.code} (${err.message})`)
  t.is(err.errno, 'ENOSPC', `${what}: errno ${err.errno} (${err.message})`)
  t.truthy(err.cause, `${what}: cause kept`)
}

/**
 * Reads every partition and checks: LSNs dense from firstLsn to lastLsn, every record a
 * valid payload, every acknowledged record at its LSN with its bytes.
 */
async function verifyAll(t, wal, acked, what) {
  for (const [p, m] of acked) {
    const first = wal.firstLsn(p)
    const last = wal.lastLsn(p)
    let expect = first
    for await (const r of wal.stream(p)) {
      if (r.lsn !== expect) {
        t.fail(`${what}: partition ${p} read lsn ${r.lsn}, expected ${expect}`)
        return
      }
      const id = idOf(p, r.payload)
      if (id === undefined) {
        t.fail(`${what}: partition ${p} lsn ${r.lsn} holds a damaged payload (${r.payload.length} bytes)`)
        return
      }
      const want = m.get(r.lsn)
      if (want !== undefined && want !== id) {
        t.fail(`${what}: partition ${p} lsn ${r.lsn} holds id ${id}, acknowledged id ${want}`)
        return
      }
      expect++
    }
    t.is(expect, last + 1, `${what}: partition ${p} stream ended at ${expect - 1}, lastLsn ${last}`)
    for (const lsn of m.keys()) {
      if (lsn < first || lsn > last) {
        t.fail(`${what}: partition ${p} acknowledged lsn ${lsn} is missing (log ${first}..${last})`)
        return
      }
    }
  }
  t.pass()
}

async function diskFull(t, preallocate) {
  const m = mountTmpfs()
  if (m.error) throw new Error(`mount failed: ${m.error}`)
  const dir = join(m.dir, 'wal')
  mkdirSync(dir)
  const options = { segmentSize: SEGMENT, sync: 'always', preallocate }
  const parts = [1, 2, 3]
  const acked = new Map(parts.map((p) => [p, new Map()]))
  let nextId = 1
  const submit = (wal, p, batch) => {
    if (batch) {
      const ids = [nextId++, nextId++, nextId++]
      return wal.appendBatch(p, ids.map((id) => payload(p, id))).then((r) => {
        t.is(r.count, 3)
        for (let i = 0; i < 3; i++) acked.get(p).set(r.firstLsn + i, ids[i])
        return r
      })
    }
    const id = nextId++
    return wal.append(p, payload(p, id)).then((r) => {
      acked.get(p).set(r.lsn, id)
      return r
    })
  }

  let wal = await Wal.open(dir, options)
  try {
    // ---- fill the disk: rounds of concurrent appends and batches until ENOSPC
    const errors = []
    let rounds = 0
    while (errors.length === 0 && rounds < 2000) {
      rounds++
      const ops = parts.flatMap((p) => [submit(wal, p, false), submit(wal, p, rounds % 3 === 0), submit(wal, p, false)])
      const res = await withTimeout(Promise.allSettled(ops), 20000, 'appends on a filling disk')
      for (const r of res) if (r.status === 'rejected') errors.push(r.reason)
    }
    t.true(errors.length > 0, `no append failed after ${rounds} rounds on a ${SIZE} tmpfs`)
    t.log(`preallocate ${preallocate}: first ENOSPC after ${rounds} rounds, ${[...acked.values()].reduce((a, x) => a + x.size, 0)} records acknowledged`)
    for (const [i, e] of errors.entries()) checkEnospc(t, e, `failed append #${i}`)

    // ---- lastLsn is the last acknowledged LSN; everything acknowledged reads back
    for (const p of parts) {
      const max = Math.max(0, ...acked.get(p).keys())
      t.is(wal.lastLsn(p), max, `partition ${p}: lastLsn after failures`)
    }
    await verifyAll(t, wal, acked, 'in process after ENOSPC')

    // ---- retries after the failure was delivered behave normally: each either
    // succeeds at lastLsn + 1 or fails with ENOSPC again; none hangs
    for (let i = 0; i < 6; i++) {
      const p = parts[i % parts.length]
      const before = wal.lastLsn(p)
      try {
        const r = await withTimeout(submit(wal, p, i % 2 === 1), 20000, 'a retry on a full disk')
        t.is(r.lsn ?? r.firstLsn, before + 1, `retry ${i}: LSN`)
      } catch (e) {
        if (/did not settle/.test(e.message)) throw e
        checkEnospc(t, e, `retry ${i}`)
        t.is(wal.lastLsn(p), before, `retry ${i}: a failed append moved lastLsn`)
      }
    }
    await verifyAll(t, wal, acked, 'in process after retries')
    // a sync on the full disk settles (either way)
    await withTimeout(wal.sync().catch((e) => checkEnospc(t, e, 'sync')), 20000, 'sync on a full disk')

    // ---- close and reopen on the full disk
    await withTimeout(wal.close(), 20000, 'close on a full disk')
    wal = await withTimeout(Wal.open(dir, options), 20000, 'reopen on a full disk')
    t.true(Array.isArray(wal.recovery), 'recovery is an array')
    // close() resolved, so this was a clean shutdown: API.md says recovery is [] then
    // (a segment whose creation failed with ENOSPC must not be left for recovery to remove)
    t.deepEqual(wal.recovery, [], `recovery after a clean close on the full disk: ${JSON.stringify(wal.recovery)}`)
    for (const r of wal.recovery) {
      t.true(parts.includes(r.partition) && r.segment >= 1 && r.truncatedBytes >= 0, `recovery entry ${JSON.stringify(r)}`)
    }
    await verifyAll(t, wal, acked, 'after reopen on the full disk')
    for (const p of parts) {
      const max = Math.max(0, ...acked.get(p).keys())
      t.true(wal.lastLsn(p) >= max, `partition ${p}: lastLsn ${wal.lastLsn(p)} < acknowledged ${max} after reopen`)
      // an append that failed may be wholly present after reopen: make it acknowledged-equivalent
    }

    // ---- still full: fill what is left until ENOSPC again
    let fullAgain
    for (let i = 0; i < 2000 && fullAgain === undefined; i++) {
      try {
        await withTimeout(submit(wal, parts[i % parts.length], false), 20000, 'append after reopen')
      } catch (e) {
        if (/did not settle/.test(e.message)) throw e
        fullAgain = e
      }
    }
    t.truthy(fullAgain, 'the disk never filled up again')
    checkEnospc(t, fullAgain, 'append after reopen on the full disk')

    // ---- purge frees space: appends work again, without reopening
    const biggest = parts.map((p) => [p, wal.segments(p).length]).sort((a, b) => b[1] - a[1])[0][0]
    const pr = await wal.purgeBefore(biggest, wal.lastLsn(biggest))
    t.true(pr.segmentsDeleted >= 2, `purge deleted ${pr.segmentsDeleted} segments`)
    t.true(pr.bytesFreed > 0)
    t.is(pr.firstLsn, wal.firstLsn(biggest))
    for (const lsn of acked.get(biggest).keys()) if (lsn < pr.firstLsn) acked.get(biggest).delete(lsn)
    for (let i = 0; i < 12; i++) {
      const p = i < 6 ? biggest : parts[i % parts.length]
      const before = wal.lastLsn(p)
      const r = await withTimeout(submit(wal, p, i % 4 === 3), 20000, 'append after purge')
      t.is(r.lsn ?? r.firstLsn, before + 1, `append ${i} after purge: LSN`)
    }
    await verifyAll(t, wal, acked, 'after purge freed space')
    await wal.close()
    wal = await Wal.open(dir, options)
    t.deepEqual(wal.recovery, [], 'clean close after the disk-full episode')
    await verifyAll(t, wal, acked, 'final reopen')
  } finally {
    await wal.close().catch(() => {})
    unmount(m.dir)
  }
}

maybe('disk full, preallocated segments: ENOSPC at rotation, nothing acknowledged lost, purge makes room', async (t) => {
  t.timeout(90_000)
  await diskFull(t, true)
})

maybe('disk full, no preallocation: ENOSPC mid-record, nothing acknowledged lost, purge makes room', async (t) => {
  t.timeout(90_000)
  await diskFull(t, false)
})
