// Every WalError code from the API table, provoked through the public API:
// wrong argument types and ranges (table-driven, the message names the
// argument), oversize records, LSNs outside the retained log, calls after
// close, corruption (file and offset set) and OS errors (errno and cause).
import test from 'ava'
import { openSync, readSync, writeSync, closeSync, writeFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Wal, WalError } from 'segwal'
import { collect, makeTempDirs, payloadOf } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-errors')
test.after.always(cleanup)

/** Asserts `err` is a WalError with `code` whose message names `name`. */
function assertWalError(t, err, code, name, label) {
  t.true(err instanceof WalError, `${label}: not a WalError: ${err}`)
  t.true(err instanceof Error, `${label}: not an Error`)
  t.is(err.code, code, `${label}: ${err.message}`)
  if (name !== undefined) t.true(err.message.includes(name), `${label}: message "${err.message}" does not name ${name}`)
}

async function rejectsWith(t, f, code, name, label) {
  let p
  try {
    p = f()
  } catch (e) {
    t.fail(`${label}: threw synchronously (${e.message}) instead of rejecting`)
    return
  }
  t.true(p instanceof Promise, `${label}: not a promise`)
  const err = await p.then(
    () => null,
    (e) => e,
  )
  if (err === null) t.fail(`${label}: resolved`)
  else assertWalError(t, err, code, name, label)
}

function throwsWith(t, f, code, name, label) {
  let err = null
  try {
    f()
  } catch (e) {
    err = e
  }
  if (err === null) t.fail(`${label}: did not throw`)
  else assertWalError(t, err, code, name, label)
}

const BAD_PARTITIONS = [-1, 1.5, NaN, Infinity, 65536, 2 ** 53, '1', null, undefined, 1n, {}]
const BAD_LSNS = [-1, 0.5, NaN, Infinity, -Infinity, 2 ** 53, '3', null, 1n, {}]

test('Wal.open rejects bad dir and options, naming them', async (t) => {
  const dir = tempDir()
  const cases = [
    [[undefined], 'dir'],
    [[5], 'dir'],
    [[''], 'dir'],
    [['a\0b'], 'dir'],
    [[dir, 5], 'options'],
    [[dir, 'x'], 'options'],
    [[dir, []], 'options'],
    ...[NaN, -1, 0, 1.5, 1023, 4 * 2 ** 30 + 1, Infinity, '4096', null, 4096n].map((v) => [[dir, { segmentSize: v }], 'segmentSize']),
    ...['sometimes', 5, null, true].map((v) => [[dir, { sync: v }], 'sync']),
    ...[-1, 0, NaN, Infinity, '5', undefined].map((v) => [[dir, { sync: { intervalMs: v } }], 'intervalMs']),
    ...['yes', 1, null].map((v) => [[dir, { preallocate: v }], 'preallocate']),
    ...['no', 0, null].map((v) => [[dir, { repair: v }], 'repair']),
  ]
  for (const [args, name] of cases) {
    await rejectsWith(t, () => Wal.open(...args), 'WAL_INVALID_ARGUMENT', name, `open(${String(args[0]).slice(0, 20)}, ${JSON.stringify(args[1], (_, v) => (typeof v === 'bigint' ? `${v}n` : v))})`)
  }
  // the limits themselves are fine
  for (const segmentSize of [1024, 4 * 2 ** 30]) {
    const wal = await Wal.open(tempDir(), { segmentSize, preallocate: false })
    await wal.close()
  }
})

test('append, appendBatch, purgeBefore, truncateAfter reject bad arguments, naming them', async (t) => {
  const wal = await Wal.open(tempDir())
  for (const p of BAD_PARTITIONS) {
    const l = `partition ${String(p)}`
    await rejectsWith(t, () => wal.append(p, 'x'), 'WAL_INVALID_ARGUMENT', 'partition', `append(${l})`)
    await rejectsWith(t, () => wal.appendBatch(p, ['x']), 'WAL_INVALID_ARGUMENT', 'partition', `appendBatch(${l})`)
    await rejectsWith(t, () => wal.purgeBefore(p, 1), 'WAL_INVALID_ARGUMENT', 'partition', `purgeBefore(${l})`)
    await rejectsWith(t, () => wal.truncateAfter(p, 1), 'WAL_INVALID_ARGUMENT', 'partition', `truncateAfter(${l})`)
  }
  for (const payload of [undefined, null, 5, {}, [1, 2], new ArrayBuffer(4), new Uint16Array(2), Symbol('s')]) {
    await rejectsWith(t, () => wal.append(1, payload), 'WAL_INVALID_ARGUMENT', 'payload', `append(payload ${typeof payload})`)
  }
  for (const payloads of [undefined, 'abc', Buffer.from('x'), [], {}]) {
    await rejectsWith(t, () => wal.appendBatch(1, payloads), 'WAL_INVALID_ARGUMENT', 'payloads', `appendBatch(${typeof payloads})`)
  }
  await rejectsWith(t, () => wal.appendBatch(1, ['ok', 5]), 'WAL_INVALID_ARGUMENT', 'payloads[1]', 'appendBatch([ok, 5])')
  for (const v of BAD_LSNS) {
    await rejectsWith(t, () => wal.purgeBefore(1, v), 'WAL_INVALID_ARGUMENT', 'minLsn', `purgeBefore(1, ${String(v)})`)
    await rejectsWith(t, () => wal.truncateAfter(1, v), 'WAL_INVALID_ARGUMENT', 'lsn', `truncateAfter(1, ${String(v)})`)
  }
  // nothing was written, no LSN consumed
  t.deepEqual(wal.partitions(), [])
  t.is((await wal.append(1, 'first')).lsn, 1)
  await wal.close()
})

test('synchronous methods and stream() throw on bad arguments, naming them', async (t) => {
  const wal = await Wal.open(tempDir())
  for (const p of BAD_PARTITIONS) {
    for (const [m, f] of [
      ['firstLsn', () => wal.firstLsn(p)],
      ['lastLsn', () => wal.lastLsn(p)],
      ['segments', () => wal.segments(p)],
      ['stream', () => wal.stream(p)],
    ]) {
      throwsWith(t, f, 'WAL_INVALID_ARGUMENT', 'partition', `${m}(${String(p)})`)
    }
  }
  for (const v of BAD_LSNS.filter((x) => x !== undefined)) {
    throwsWith(t, () => wal.stream(1, { fromLsn: v }), 'WAL_INVALID_ARGUMENT', 'fromLsn', `stream fromLsn ${String(v)}`)
  }
  const badFrom = [5, 'x', null, { segment: 1 }, { offset: 0 }, { segment: -1, offset: 0 }, { segment: 1, offset: 1.5 }, { segment: NaN, offset: 0 }]
  for (const from of badFrom) {
    throwsWith(t, () => wal.stream(1, { from }), 'WAL_INVALID_ARGUMENT', 'from', `stream from ${JSON.stringify(from)}`)
  }
  throwsWith(t, () => wal.stream(1, 5), 'WAL_INVALID_ARGUMENT', 'options', 'stream options 5')
  throwsWith(t, () => wal.stream(1, { follow: 'yes' }), 'WAL_INVALID_ARGUMENT', 'follow', 'stream follow')
  throwsWith(t, () => wal.stream(1, { signal: {} }), 'WAL_INVALID_ARGUMENT', 'signal', 'stream signal')
  await wal.close()
})

test('WAL_RECORD_TOO_LARGE: nothing written, the next append gets the next LSN', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { segmentSize: 1024 })
  t.is((await wal.append(1, 'small')).lsn, 1)
  await rejectsWith(t, () => wal.append(1, Buffer.alloc(1024)), 'WAL_RECORD_TOO_LARGE', undefined, 'append 1024 B into 1 KiB segments')
  await rejectsWith(t, () => wal.append(1, 'x'.repeat(5000)), 'WAL_RECORD_TOO_LARGE', undefined, 'append 5000-char string')
  await rejectsWith(t, () => wal.append(1, Buffer.alloc(200_000)), 'WAL_RECORD_TOO_LARGE', undefined, 'append 200 kB (direct path)')
  await rejectsWith(t, () => wal.appendBatch(1, Array.from({ length: 10 }, () => Buffer.alloc(200))), 'WAL_RECORD_TOO_LARGE', undefined, 'batch of 2000 B')
  const r = await wal.append(1, 'next')
  t.is(r.lsn, 2)
  t.deepEqual(
    (await collect(wal.stream(1))).map((x) => x.payload.toString()),
    ['small', 'next'],
  )
  await wal.close()
})

test('WAL_LSN_PURGED and WAL_LSN_OUT_OF_RANGE reject the first next(); lastLsn + 1 yields nothing', async (t) => {
  const wal = await Wal.open(tempDir(), { segmentSize: 2048 })
  for (let i = 1; i <= 40; i++) await wal.append(1, payloadOf(i, 200))
  const segs = wal.segments(1)
  t.true(segs.length >= 3)
  const purged = await wal.purgeBefore(1, segs[1].lastLsn + 1)
  t.is(purged.segmentsDeleted, 2)
  const first = wal.firstLsn(1)
  t.is(first, segs[2].firstLsn)

  const rejectsNext = async (opts, code, label) => {
    const it = wal.stream(1, opts)
    const err = await it.next().then(
      () => null,
      (e) => e,
    )
    if (err === null) t.fail(`${label}: did not reject`)
    else assertWalError(t, err, code, undefined, label)
  }
  await rejectsNext({ fromLsn: 1 }, 'WAL_LSN_PURGED', 'fromLsn 1')
  await rejectsNext({ fromLsn: first - 1 }, 'WAL_LSN_PURGED', 'fromLsn first-1')
  await rejectsNext({ from: { segment: segs[0].index, offset: 64 } }, 'WAL_LSN_PURGED', 'from purged segment')
  await rejectsNext({ fromLsn: 42 }, 'WAL_LSN_OUT_OF_RANGE', 'fromLsn last+2')
  await rejectsNext({ fromLsn: 2 ** 40 }, 'WAL_LSN_OUT_OF_RANGE', 'fromLsn huge')
  t.deepEqual(await collect(wal.stream(1, { fromLsn: 41 })), [])
  t.deepEqual(
    (await collect(wal.stream(1, { fromLsn: 0 }))).map((r) => r.lsn)[0],
    first,
  )
  // a position that is not the start of a record
  const rec = (await collect(wal.stream(1, { fromLsn: 40 })))[0]
  await rejectsNext({ from: { segment: rec.segment, offset: rec.offset + 1 } }, 'WAL_INVALID_ARGUMENT', 'from inside a record')
  await rejectsNext({ from: { segment: rec.segment, offset: 10 ** 9 } }, 'WAL_INVALID_ARGUMENT', 'from beyond the segment')
  await wal.close()
})

test('WAL_CORRUPTION names the file and byte offset', async (t) => {
  const dir = tempDir()
  let wal = await Wal.open(dir, { segmentSize: 2048 })
  for (let i = 1; i <= 30; i++) await wal.append(1, payloadOf(i, 200))
  const segs = wal.segments(1)
  t.true(segs.length >= 2)
  await wal.close()
  // flip a payload byte of the second record of the first (sealed) segment
  const file = join(dir, segs[0].file)
  const fd = openSync(file, 'r+')
  const size = statSync(file).size
  const buf = Buffer.alloc(size)
  readSync(fd, buf, 0, size, 0)
  const at = buf.indexOf('rec-2')
  t.true(at > 0)
  writeSync(fd, Buffer.from('X'), 0, 1, at)
  closeSync(fd)

  let err = null
  try {
    wal = await Wal.open(dir, { segmentSize: 2048 })
    try {
      await collect(wal.stream(1))
    } finally {
      await wal.close()
    }
  } catch (e) {
    err = e
  }
  t.not(err, null, 'damage was silently skipped')
  assertWalError(t, err, 'WAL_CORRUPTION', undefined, 'flipped payload byte')
  t.true(err.file.endsWith(segs[0].file), `file: ${err.file}`)
  t.true(Number.isInteger(err.offset) && err.offset < at && err.offset > 0, `offset ${err.offset} should be the damaged record's (< ${at})`)
  t.true(err.message.includes(segs[0].file))
})

test('WAL_IO_ERROR carries errno and the cause', async (t) => {
  const file = join(tempDir(), 'not-a-dir')
  writeFileSync(file, 'x')
  const err = await Wal.open(join(file, 'sub')).then(
    () => null,
    (e) => e,
  )
  t.not(err, null)
  assertWalError(t, err, 'WAL_IO_ERROR', undefined, 'open under a regular file')
  t.is(err.errno, 'ENOTDIR')
  t.true(err.cause instanceof Error)
  t.is(err.cause.code, 'ENOTDIR')
})

test('WAL_LOCKED and WAL_CLOSED', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir)
  await rejectsWith(t, () => Wal.open(dir), 'WAL_LOCKED', undefined, 'second open')
  await wal.close()
  await rejectsWith(t, () => wal.append(1, 'x'), 'WAL_CLOSED', undefined, 'append after close')
  throwsWith(t, () => wal.stats(), 'WAL_CLOSED', undefined, 'stats after close')
})
