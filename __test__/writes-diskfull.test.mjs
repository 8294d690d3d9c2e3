// The failure rules of write()/flush() with a real ENOSPC (a small tmpfs), and issue #9
// defect 9: appends made after the facade took a failure, while it was still settling
// earlier acks, were rejected though the engine wrote them.
// Needs mount(2) (root or CAP_SYS_ADMIN); skipped with a message otherwise.

import test from 'ava'
import { existsSync, mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Wal, WalError } from 'segwal'
import { collect } from './api-helpers.mjs'
import { mountTmpfs, probeMount, unmount, unmountAll, withTimeout } from './tmpfs-helpers.mjs'

test.after.always(unmountAll)
const probe = probeMount()
const maybe = probe.ok ? test.serial : test.serial.skip
if (!probe.ok) {
  test('write/flush disk-full tests need mount(2)', (t) => {
    t.log(`skipping: cannot mount a tmpfs (${probe.error}); run as root`)
    t.pass()
  })
}

/** A WAL dir on a fresh tmpfs of `size` with only about `free` bytes left (a filler file takes the rest). */
function nearlyFull(size, free) {
  const m = mountTmpfs(size)
  if (m.error) throw new Error(`mount failed: ${m.error}`)
  const s = statfsSync(m.dir)
  const filler = join(m.dir, 'filler')
  writeFileSync(filler, Buffer.alloc(Math.max(0, s.bavail * s.bsize - free)))
  const dir = join(m.dir, 'wal')
  mkdirSync(dir)
  return { mount: m.dir, dir, filler }
}

function isEnospc(t, e, what) {
  t.true(e instanceof WalError, `${what}: a WalError (${e})`)
  t.is(e.code, 'WAL_IO_ERROR', `${what}: ${e.message}`)
  t.is(e.errno, 'ENOSPC', `${what}: ${e.message}`)
}

/** Blocks the JS thread (the engine's threads go on). */
function blockFor(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

maybe('a failed partition: write() throws until a flush() reported it; a rejected append() does not report it', async (t) => {
  const { mount, dir, filler } = nearlyFull('8m', 512 * 1024)
  const wal = await Wal.open(dir, { segmentSize: 4 << 20, preallocate: false })
  try {
    const record = Buffer.alloc(8192, 7)
    // Fill: ~100 records cannot fit in 512 KiB.
    const lsns = []
    for (let i = 0; i < 100; i++) lsns.push(wal.write(1, record))
    t.deepEqual(lsns, Array.from({ length: 100 }, (_, i) => i + 1))
    const flushed = await withTimeout(wal.flush().then(() => undefined, (e) => e), 20_000, 'flush on a full disk')
    t.truthy(flushed, 'the flush rejects')
    isEnospc(t, flushed, 'flush')
    let acked = wal.lastLsn(1)
    t.true(acked < 100, `some records failed (${acked} acknowledged)`)
    // That flush reported it: write() works again, LSNs resume after the last acknowledged.
    // The disk is still full, so these fail again: a new failure.
    t.is(wal.write(1, record), acked + 1)
    for (let i = 0; i < 99; i++) wal.write(1, record)
    const again = await withTimeout(wal.flush().then(() => undefined, (e) => e), 20_000, 'second flush')
    isEnospc(t, again, 'second flush')
    acked = wal.lastLsn(1)
    // Once the facade knows of a failure no flush has reported, write() throws it; a
    // rejected append() does not count as reporting it.
    t.is(wal.write(1, record), acked + 1)
    for (let i = 0; i < 99; i++) wal.write(1, record)
    const failed = await withTimeout(wal.append(1, record).then(() => undefined, (e) => e), 20_000, 'append on a full disk')
    isEnospc(t, failed, 'append')
    const thrown = t.throws(() => wal.write(1, 'x'))
    isEnospc(t, thrown, 'write() before a flush reported the failure')
    t.is(wal.write(3, 'elsewhere'), 1, 'other partitions are unaffected')
    const third = await wal.flush().then(() => undefined, (e) => e)
    isEnospc(t, third, 'third flush')
    // The append's own failure and partition 3's (the disk is full) may be separate
    // ones, reported in the order they happened: flushes report each once, then resolve.
    let reports = 0
    for (;;) {
      const e = await wal.flush().then(() => undefined, (x) => x)
      if (e === undefined) break
      isEnospc(t, e, 'a later flush')
      t.true(++reports <= 2, 'at most two more failures to report')
    }
    acked = wal.lastLsn(1)
    // Space back: writes work and are acknowledged.
    rmSync(filler)
    const next = wal.write(1, 'after space came back')
    t.is(next, acked + 1)
    await wal.flush()
    t.is(wal.lastLsn(1), acked + 1)
    const recs = await collect(wal.stream(1))
    t.is(recs.length, acked + 1)
    t.true(recs.slice(0, acked).every((r) => r.payload.equals(record)))
    t.is(recs[acked].payload.toString(), 'after space came back')
    t.is(wal.pendingBytes, 0)
  } finally {
    await wal.close().catch(() => {})
    unmount(mount)
  }
})

/**
 * One try of defect 9's scenario: 20,000 acks of partition 1 (more than the facade settles
 * in one turn), taken in the same call as partition 2's failure, behind them; then an
 * append to partition 2 right after the turn that took both. Returns whether that append
 * resolved, and whether its record is in the log.
 */
async function defect9Try(t) {
  const { mount, dir } = nearlyFull('16m', 2 << 20)
  const wal = await Wal.open(dir, { segmentSize: 4 << 20, preallocate: false })
  try {
    const small = Buffer.alloc(8, 1)
    const many = []
    for (let i = 0; i < 20_000; i++) many.push(wal.append(1, small))
    wal.stats() // hands the staged appends over now
    const deadline = Date.now() + 20_000
    while (wal.lastLsn(1) < 20_000 && Date.now() < deadline) blockFor(5)
    t.is(wal.lastLsn(1), 20_000)
    const big = wal.append(2, Buffer.alloc(3 << 20, 2)).then(
      () => undefined,
      (e) => e,
    )
    blockFor(1500) // partition 2's write fails meanwhile (a few ms on a tmpfs)
    let later
    const afterFirst = many[0].then(() => {
      later = wal.append(2, 'later').then(
        () => true,
        () => false,
      )
    })
    await withTimeout(Promise.all(many), 20_000, 'the 20,000 appends')
    await afterFirst
    isEnospc(t, await big, 'the 3 MiB append')
    const resolved = await withTimeout(later, 20_000, 'the later append')
    const written = (await collect(wal.stream(2))).some((r) => r.payload.toString() === 'later')
    return { resolved, written }
  } finally {
    await wal.close().catch(() => {})
    unmount(mount)
  }
}

maybe('defect 9: an append accepted after a failure was taken is not rejected while earlier acks are still being settled', async (t) => {
  // Rejected though written is the defect. Rejected and absent means the append reached
  // the engine before the failure (a slow machine): the scenario did not happen, try again.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const { resolved, written } = await defect9Try(t)
    t.is(written, resolved, `attempt ${attempt}: the append ${resolved ? 'resolved' : 'was rejected'} but its record is ${written ? '' : 'not '}in the log`)
    if (resolved) return
    t.log(`attempt ${attempt}: the append reached the engine before the failure; again`)
  }
  t.log('the scenario never happened in 3 attempts (a very slow machine): only consistency was checked')
})

/**
 * A WAL on a nearly full tmpfs whose partition 1 failed in the engine (100 written records
 * of 8 KiB do not fit in 512 KiB) while the facade has not taken the failure yet.
 */
async function failedUntaken() {
  const { mount, dir, filler } = nearlyFull('8m', 512 * 1024)
  const wal = await Wal.open(dir, { segmentSize: 4 << 20, preallocate: false })
  const record = Buffer.alloc(8192, 7)
  for (let i = 0; i < 100; i++) wal.write(1, record)
  wal.stats() // hands them over now
  blockFor(1500) // the engine fails them meanwhile; the JS side has not taken it
  return { mount, filler, wal }
}

maybe('records written after a failure the facade has not taken yet are refused and count as that failure', async (t) => {
  const { mount, filler, wal } = await failedUntaken()
  try {
    const acked = wal.lastLsn(1)
    t.true(acked < 100, `some records failed (${acked} acknowledged)`)
    // Still counted from the old LSNs: the engine refuses these (it resumes after `acked`).
    const refused = []
    for (let i = 0; i < 5; i++) refused.push(wal.write(1, `refused ${i}`))
    t.deepEqual(refused, [101, 102, 103, 104, 105])
    const appended = wal.append(1, 'refused append').then(
      () => undefined,
      (e) => e,
    )
    wal.stats() // the crossing: refused
    // The facade has still not taken the failure: the count goes on past the append's 106
    // (a refusal must not send it back to the engine, which would hand out an LSN of a
    // failed record again).
    t.is(wal.write(1, 'refused 5'), 107, 'no LSN handed out twice before the failure is reported')
    wal.stats()
    const e = await withTimeout(wal.flush().then(() => undefined, (x) => x), 20_000, 'flush')
    isEnospc(t, e, 'flush')
    isEnospc(t, await appended, 'the refused append')
    // One failure: reported once; nothing else to report.
    await wal.flush()
    t.is(wal.pendingBytes, 0)
    rmSync(filler)
    t.is(wal.write(1, 'after'), acked + 1, 'LSNs resume after the last acknowledged record')
    await wal.flush()
    const recs = await collect(wal.stream(1))
    t.is(recs.length, acked + 1)
    t.is(recs.at(-1).payload.toString(), 'after')
    t.false(recs.some((r) => r.payload.toString().startsWith('refused')))
  } finally {
    await wal.close().catch(() => {})
    unmount(mount)
  }
})

maybe('a large append refused before the facade took the failure: write() throws it until a flush() reported it', async (t) => {
  const { mount, filler, wal } = await failedUntaken()
  try {
    // Larger than the staging takes: it crosses on its own, and the engine refuses it.
    // Awaiting it takes microtasks only, so the facade has still not taken the failure.
    const refused = await wal.append(1, Buffer.alloc(1 << 20, 3)).then(
      () => undefined,
      (e) => e,
    )
    isEnospc(t, refused, 'the large append')
    // The caller was told of the failure: write() throws it (a rejected append does not
    // report it), where it used to hand out the next LSN of the failed run.
    isEnospc(t, t.throws(() => wal.write(1, 'x')), 'write() after the rejected append')
    isEnospc(t, t.throws(() => wal.write(1, Buffer.alloc(1 << 20))), 'a large write() after it')
    const e = await withTimeout(wal.flush().then(() => undefined, (x) => x), 20_000, 'flush')
    isEnospc(t, e, 'flush')
    await wal.flush()
    rmSync(filler)
    const acked = wal.lastLsn(1)
    t.is(wal.write(1, 'after'), acked + 1, 'reported: write() goes on after the last acknowledged record')
    await wal.flush()
    t.is(wal.pendingBytes, 0)
  } finally {
    await wal.close().catch(() => {})
    unmount(mount)
  }
})
