// Bad input everywhere: every public method and option of API.md with wrong types,
// out-of-range values, NaN, Infinity, negatives, fractions, oversize payloads, and
// calls after close(). Each must fail with a WalError (instanceof WalError and Error)
// carrying the API.md code and, for WAL_INVALID_ARGUMENT, a message naming the
// argument; async methods reject (never throw synchronously), synchronous ones throw.
// After every failure the WAL must keep working: nothing written, no LSN consumed,
// the next append gets the next LSN and reads back.

import test from 'ava'
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Wal, WalError } from 'segwal'

const dirs = []
function tempDir() {
  const d = mkdtempSync(join(tmpdir(), 'segwal-badinput-'))
  dirs.push(d)
  return d
}
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

const show = (v) => {
  if (typeof v === 'bigint') return `${v}n`
  if (typeof v === 'symbol') return v.toString()
  if (typeof v === 'function') return 'function'
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v)
  if (v instanceof Uint8Array || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return `${v.constructor.name}(${v.byteLength})`
  if (typeof v === 'string' && v.length > 30) return `string(${v.length})`
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return String(v)
  }
}

// Values that are not a valid integer argument (partition, LSN, ...).
const NOT_INTEGERS = [
  ['undefined', undefined],
  ['null', null],
  ['string "1"', '1'],
  ['empty string', ''],
  ['true', true],
  ['object', {}],
  ['array [1]', [1]],
  ['bigint 1n', 1n],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['fraction 1.5', 1.5],
  ['fraction 0.1', 0.1],
  ['negative -1', -1],
  ['Number object', new Number(1)],
  ['symbol', Symbol('x')],
  ['function', () => 1],
]
const BAD_PARTITIONS = [
  ...NOT_INTEGERS,
  ['65536', 65536],
  ['2^32 (would wrap to 0)', 2 ** 32],
  ['2^32 + 1 (would wrap to 1)', 2 ** 32 + 1],
  ['2^53', 2 ** 53],
  ['-65535', -65535],
  ['MAX_VALUE', Number.MAX_VALUE],
]
const BAD_LSNS = [
  ...NOT_INTEGERS,
  ['2^53 (unsafe)', 2 ** 53],
  ['2^64', 2 ** 64],
  ['-2^32', -(2 ** 32)],
]
const BAD_PAYLOADS = [
  ['undefined', undefined],
  ['null', null],
  ['number', 42],
  ['true', true],
  ['object', { a: 1 }],
  ['array of bytes', [1, 2, 3]],
  ['ArrayBuffer', new ArrayBuffer(4)],
  ['DataView', new DataView(new ArrayBuffer(4))],
  ['Int32Array', new Int32Array(2)],
  ['Float64Array', new Float64Array(1)],
  ['Uint16Array', new Uint16Array(3)],
  ['String object', new String('x')],
  ['bigint', 5n],
  ['symbol', Symbol('p')],
  ['function', () => 'x'],
  ['detached Uint8Array', detached()],
]

function detached() {
  const u = new Uint8Array(8)
  structuredClone(u.buffer, { transfer: [u.buffer] })
  return u
}

function isWalError(e) {
  return e instanceof WalError && e instanceof Error
}

/**
 * Runs fn and asserts it fails with `code` (and a message matching `name`).
 * kind: 'async' (must return a rejected promise), 'sync' (must throw), 'stream'
 * (may throw at once or fail on the first next()).
 * Returns true if it failed as expected.
 */
async function expectFailure(t, label, fn, code, name, kind) {
  let thrown
  let rejected
  let value
  let threwSync = false
  try {
    value = fn()
  } catch (e) {
    thrown = e
    threwSync = true
  }
  if (!threwSync) {
    if (kind === 'sync') {
      t.fail(`${label}: returned ${show(value)} instead of throwing ${code}`)
      return false
    }
    if (kind === 'stream') {
      if (value === null || typeof value !== 'object' || typeof value[Symbol.asyncIterator] !== 'function') {
        t.fail(`${label}: stream() returned ${show(value)}`)
        return false
      }
      const it = value[Symbol.asyncIterator]()
      try {
        const r = await Promise.race([it.next(), new Promise((resolve) => setTimeout(() => resolve('timeout'), 3000))])
        if (r === 'timeout') {
          t.fail(`${label}: stream neither threw nor rejected (it waited)`)
          await it.return?.()
          return false
        }
        await it.return?.()
        t.fail(`${label}: stream yielded ${r.done ? 'nothing' : `lsn ${r.value.lsn}`} instead of failing with ${code}`)
        return false
      } catch (e) {
        rejected = e
      }
    } else {
      if (value === null || typeof value?.then !== 'function') {
        t.fail(`${label}: returned ${show(value)}, not a promise`)
        return false
      }
      try {
        const v = await value
        t.fail(`${label}: resolved ${show(v)} instead of rejecting with ${code}`)
        return false
      } catch (e) {
        rejected = e
      }
    }
  } else if (kind === 'async') {
    t.fail(`${label}: threw synchronously (${thrown?.code ?? thrown}) instead of returning a rejected promise`)
    return false
  }
  const err = thrown ?? rejected
  let ok = true
  if (!isWalError(err)) {
    t.fail(`${label}: failed with ${err?.constructor?.name} ${err?.code ?? ''} "${err?.message ?? err}", not a WalError`)
    return false
  }
  const codes = Array.isArray(code) ? code : [code]
  if (!codes.includes(err.code)) {
    t.fail(`${label}: code ${err.code} ("${err.message}"), expected ${codes.join(' or ')}`)
    ok = false
  }
  if (name !== undefined && !name.test(err.message)) {
    t.fail(`${label}: message "${err.message}" does not name ${name}`)
    ok = false
  }
  if (err.name !== 'WalError') {
    t.fail(`${label}: err.name is ${err.name}`)
    ok = false
  }
  if (ok) t.pass()
  return ok
}

/** An open WAL plus a probe that appends to PROBE and reads it back, checking the LSN. */
async function fixture(t, options = { sync: 'none', segmentSize: 4096 }) {
  const dir = tempDir()
  const wal = await Wal.open(dir, options)
  t.teardown(() => wal.close().catch(() => {}))
  const PROBE = 7
  let n = 0
  const probe = async (label) => {
    const expect = wal.lastLsn(PROBE) + 1
    const payload = `probe ${n++} after ${label}`
    const r = await wal.append(PROBE, payload)
    if (r.lsn !== expect) t.fail(`${label}: the next append got lsn ${r.lsn}, expected ${expect} (an LSN was consumed or lost)`)
    const it = wal.stream(PROBE, { fromLsn: r.lsn })
    const { value, done } = await it.next()
    await it.return()
    if (done || value.lsn !== r.lsn || value.payload.toString() !== payload) {
      t.fail(`${label}: could not read back the probe record after the failure`)
    }
  }
  return { dir, wal, probe }
}

/** Runs a table: each row [label, fn, code, nameRegex, kind]; afterwards the probe. */
async function table(t, fx, rows, guard = {}) {
  for (const [label, fn, code, name, kind] of rows) {
    const before = guard.partition === undefined ? undefined : fx.wal.lastLsn(guard.partition)
    await expectFailure(t, label, fn, code, name, kind)
    if (guard.partition !== undefined) {
      const after = fx.wal.lastLsn(guard.partition)
      if (after !== before) t.fail(`${label}: lastLsn(${guard.partition}) moved from ${before} to ${after}`)
    }
    await fx.probe(label)
  }
}

// ------------------------------------------------------------------ Wal.open

test('Wal.open: bad dir', async (t) => {
  const file = join(tempDir(), 'a-file')
  writeFileSync(file, 'not a directory')
  const rows = [
    ['undefined', undefined],
    ['null', null],
    ['number', 42],
    ['empty string', ''],
    ['object', {}],
    ['array', ['/tmp/x']],
    ['true', true],
    ['NUL byte', join(tmpdir(), 'segwal-bad\0name')],
  ]
  for (const [label, dir] of rows) {
    await expectFailure(t, `Wal.open(${label})`, () => Wal.open(dir), 'WAL_INVALID_ARGUMENT', /dir/, 'async')
  }
  // a path through a regular file: an OS error, with errno and cause
  for (const [label, dir] of [
    ['a regular file', file],
    ['below a regular file', join(file, 'sub')],
  ]) {
    let err
    try {
      const w = await Wal.open(dir)
      await w.close()
    } catch (e) {
      err = e
    }
    if (!(await expectFailure(t, `Wal.open(${label})`, () => (err ? Promise.reject(err) : Promise.resolve('opened')), 'WAL_IO_ERROR', undefined, 'async'))) continue
    t.true(typeof err.errno === 'string' && /^E[A-Z]+$/.test(err.errno), `Wal.open(${label}): errno ${err.errno}`)
    t.true(['ENOTDIR', 'EEXIST'].includes(err.errno), `Wal.open(${label}): errno ${err.errno}, expected ENOTDIR or EEXIST`)
    t.truthy(err.cause, `Wal.open(${label}): cause kept`)
  }
  t.is(readFileSync(file, 'utf8'), 'not a directory', 'the file is untouched')
})

test('Wal.open: bad options', async (t) => {
  const opt = (name, values, re = new RegExp(name)) => values.map(([label, v]) => [`${name}: ${label}`, { [name]: v }, re])
  const rows = [
    ['options: number', 42, /options/],
    ['options: string', 'always', /options/],
    ['options: array', [], /options/],
    ['options: true', true, /options/],
    ...opt('segmentSize', [
      ...NOT_INTEGERS.filter(([l]) => l !== 'undefined'),
      ['0', 0],
      ['1023 (below 1 KiB)', 1023],
      ['1', 1],
      ['4 GiB + 1', 4 * 1024 ** 3 + 1],
      ['8 GiB', 8 * 1024 ** 3],
      ['2^53', 2 ** 53],
      ['-4096', -4096],
      ['1024.5', 1024.5],
    ]),
    ...opt('sync', [
      ['null', null],
      ['"ALWAYS"', 'ALWAYS'],
      ['"sometimes"', 'sometimes'],
      ['empty string', ''],
      ['number', 1],
      ['true', true],
      ['array', ['always']],
      ['function', () => 'always'],
    ]),
    ...[
      ['{}', {}],
      ['intervalMs 0', { intervalMs: 0 }],
      ['intervalMs -5', { intervalMs: -5 }],
      ['intervalMs NaN', { intervalMs: NaN }],
      ['intervalMs Infinity', { intervalMs: Infinity }],
      ['intervalMs "10"', { intervalMs: '10' }],
      ['intervalMs null', { intervalMs: null }],
      ['intervalMs 10n', { intervalMs: 10n }],
      ['intervalMs 1e300 (would overflow a Duration)', { intervalMs: 1e300 }],
      ['intervalMs 2**31 (past setTimeout\'s limit)', { intervalMs: 2 ** 31 }],
    ].map(([label, v]) => [`sync: ${label}`, { sync: v }, /intervalMs|sync/]),
    ...opt('preallocate', [
      ['null', null],
      ['"yes"', 'yes'],
      ['1', 1],
      ['0', 0],
      ['object', {}],
    ]),
    ...opt('repair', [
      ['null', null],
      ['"true"', 'true'],
      ['1', 1],
      ['object', {}],
    ]),
  ]
  const dir = tempDir()
  for (const [label, options, re] of rows) {
    const fresh = join(dir, `never-created-${label.replace(/[^a-z0-9]+/gi, '_')}`)
    await expectFailure(t, `Wal.open(dir, ${label})`, () => Wal.open(fresh, options), 'WAL_INVALID_ARGUMENT', re, 'async')
    t.false(existsSync(fresh), `Wal.open(dir, ${label}) created the directory although its options were rejected`)
  }
  // A rejected open leaves no lock behind; the edges of the ranges are accepted.
  const d = join(dir, 'edges')
  await expectFailure(t, 'Wal.open(segmentSize 1023)', () => Wal.open(d, { segmentSize: 1023 }), 'WAL_INVALID_ARGUMENT', /segmentSize/, 'async')
  for (const options of [
    { segmentSize: 1024 },
    { segmentSize: 4 * 1024 ** 3, preallocate: false },
    { sync: 'none', preallocate: true, repair: true },
    { sync: { intervalMs: 5 }, repair: false },
    {},
    undefined,
  ]) {
    const w = await Wal.open(d, options)
    const last = w.lastLsn(0)
    const r = await w.append(0, 'edge')
    t.is(r.lsn, last + 1, `append with options ${show(options)}`)
    await w.close()
  }
})

// ------------------------------------------------------------------ append

test('append: bad partition', async (t) => {
  const fx = await fixture(t)
  await table(
    t,
    fx,
    BAD_PARTITIONS.map(([label, p]) => [`append(partition ${label})`, () => fx.wal.append(p, 'x'), 'WAL_INVALID_ARGUMENT', /partition/, 'async']),
  )
  // Nothing may have landed in a wrapped-around partition.
  t.deepEqual(fx.wal.partitions(), [7], `partitions after bad appends: ${fx.wal.partitions()}`)
  t.is(fx.wal.lastLsn(0), 0)
  t.is(fx.wal.lastLsn(1), 0)
  // -0 is the integer 0, and the edges work
  t.is((await fx.wal.append(-0, 'minus zero')).lsn, 1)
  t.is((await fx.wal.append(0, 'zero')).lsn, 2)
  t.is((await fx.wal.append(65535, 'max')).lsn, 1)
  t.deepEqual(fx.wal.partitions(), [0, 7, 65535])
})

test('append: bad payload', async (t) => {
  const fx = await fixture(t)
  await fx.wal.append(1, 'first')
  await table(
    t,
    fx,
    BAD_PAYLOADS.map(([label, v]) => [`append(1, payload ${label})`, () => fx.wal.append(1, v), 'WAL_INVALID_ARGUMENT', /payload/, 'async']),
    { partition: 1 },
  )
  await expectFailure(t, 'append(1) with no payload', () => fx.wal.append(1), 'WAL_INVALID_ARGUMENT', /payload/, 'async')
  await expectFailure(t, 'append() with no arguments', () => fx.wal.append(), 'WAL_INVALID_ARGUMENT', /partition/, 'async')
  t.is(fx.wal.lastLsn(1), 1)
  // valid odd payloads: empty of every kind, a view at an offset, a string with astral characters
  const big = Buffer.from('xxhello worldxx')
  const good = [
    ['empty string', '', Buffer.alloc(0)],
    ['empty Buffer', Buffer.alloc(0), Buffer.alloc(0)],
    ['empty Uint8Array', new Uint8Array(0), Buffer.alloc(0)],
    ['subarray view', big.subarray(2, 13), Buffer.from('hello world')],
    ['Uint8Array view', new Uint8Array(big.buffer, big.byteOffset + 2, 5), Buffer.from('hello')],
    ['astral string', 'a𝄞€é', Buffer.from('a𝄞€é', 'utf8')],
    ['lone surrogate', '\ud800x', Buffer.from('\ud800x', 'utf8')],
  ]
  for (const [label, payload, bytes] of good) {
    const r = await fx.wal.append(1, payload)
    const it = fx.wal.stream(1, { fromLsn: r.lsn })
    const { value } = await it.next()
    await it.return()
    t.true(Buffer.from(value.payload).equals(bytes), `${label}: read back ${value.payload.toString('hex')}`)
  }
})

test('append/appendBatch: oversize records and batches → WAL_RECORD_TOO_LARGE, nothing written', async (t) => {
  // segmentSize 4096: header 64, frame 32 + round8(len) (docs/FORMAT.md) → 4000 bytes fit, 4001 do not
  const fx = await fixture(t)
  await fx.wal.append(2, 'first')
  const rows = [
    ['payload of segmentSize', () => fx.wal.append(2, Buffer.alloc(4096, 1))],
    ['payload 4001 bytes', () => fx.wal.append(2, Buffer.alloc(4001, 1))],
    ['string of 2000 "€" (6000 bytes)', () => fx.wal.append(2, '€'.repeat(2000))],
    ['string of 4001 ASCII', () => fx.wal.append(2, 'a'.repeat(4001))],
    ['1 MiB', () => fx.wal.append(2, Buffer.alloc(1 << 20))],
    ['batch with one oversize payload', () => fx.wal.appendBatch(2, ['ok', Buffer.alloc(5000), 'ok'])],
    ['batch that does not fit in total', () => fx.wal.appendBatch(2, [Buffer.alloc(2000), Buffer.alloc(2000)])],
    ['batch of 200 records of 20 bytes', () => fx.wal.appendBatch(2, Array.from({ length: 200 }, () => 'x'.repeat(20)))],
  ].map(([label, fn]) => [label, fn, 'WAL_RECORD_TOO_LARGE', undefined, 'async'])
  await table(t, fx, rows, { partition: 2 })
  t.is(fx.wal.lastLsn(2), 1)
  // what exactly fits an empty segment is accepted (goes to a fresh segment if needed)
  const r = await fx.wal.append(2, Buffer.alloc(4000, 2))
  t.is(r.lsn, 2)
  const b = await fx.wal.appendBatch(2, [Buffer.alloc(1984, 3), Buffer.alloc(1984, 4)]) // 2 × 2016 = 4032
  t.deepEqual(b, { firstLsn: 3, lastLsn: 4, count: 2 })
  const got = []
  for await (const rec of fx.wal.stream(2)) got.push([rec.lsn, rec.payload.length])
  t.deepEqual(got, [
    [1, 5],
    [2, 4000],
    [3, 1984],
    [4, 1984],
  ])
})

test('append: oversize for the default 64 MiB segment', async (t) => {
  const fx = await fixture(t, { sync: 'none' })
  await expectFailure(t, 'append(65 MiB)', () => fx.wal.append(3, Buffer.alloc(65 * 1024 * 1024)), 'WAL_RECORD_TOO_LARGE', undefined, 'async')
  await expectFailure(
    t,
    'appendBatch(2 × 33 MiB)',
    () => fx.wal.appendBatch(3, [Buffer.alloc(33 * 1024 * 1024), Buffer.alloc(33 * 1024 * 1024)]),
    'WAL_RECORD_TOO_LARGE',
    undefined,
    'async',
  )
  t.is(fx.wal.lastLsn(3), 0)
  await fx.probe('oversize on 64 MiB')
})

// ------------------------------------------------------------------ appendBatch

test('appendBatch: bad partition and payloads', async (t) => {
  const fx = await fixture(t)
  await fx.wal.append(4, 'first')
  const rows = [
    ...BAD_PARTITIONS.map(([label, p]) => [`appendBatch(partition ${label})`, () => fx.wal.appendBatch(p, ['x']), 'WAL_INVALID_ARGUMENT', /partition/, 'async']),
    ...[
      ['undefined', undefined],
      ['null', null],
      ['a string', 'abc'],
      ['a Buffer', Buffer.from('abc')],
      ['a Uint8Array', new Uint8Array(3)],
      ['an object', { 0: 'a', length: 1 }],
      ['a Set', new Set(['a'])],
      ['a number', 3],
      ['a generator', (function* () {
        yield 'a'
      })()],
    ].map(([label, v]) => [`appendBatch(4, ${label})`, () => fx.wal.appendBatch(4, v), 'WAL_INVALID_ARGUMENT', /payload/, 'async']),
    ...BAD_PAYLOADS.flatMap(([label, v]) => [
      [`appendBatch(4, [${label}])`, () => fx.wal.appendBatch(4, [v]), 'WAL_INVALID_ARGUMENT', /payload/, 'async'],
      [`appendBatch(4, ['ok', 'ok', ${label}])`, () => fx.wal.appendBatch(4, ['ok', Buffer.from('ok'), v]), 'WAL_INVALID_ARGUMENT', /payload/, 'async'],
    ]),
    // eslint-disable-next-line no-sparse-arrays
    ['appendBatch(4, sparse array)', () => fx.wal.appendBatch(4, ['a', , 'c']), 'WAL_INVALID_ARGUMENT', /payload/, 'async'],
  ]
  await table(t, fx, rows, { partition: 4 })
  t.is(fx.wal.lastLsn(4), 1, 'no part of a rejected batch was written')
  const recs = []
  for await (const r of fx.wal.stream(4)) recs.push(r.payload.toString())
  t.deepEqual(recs, ['first'])

  // Empty batch: the contract does not settle it; either a WAL_INVALID_ARGUMENT or a no-op.
  let res
  let err
  try {
    res = await fx.wal.appendBatch(4, [])
  } catch (e) {
    err = e
  }
  if (err !== undefined) {
    t.true(isWalError(err) && err.code === 'WAL_INVALID_ARGUMENT' && /payload/.test(err.message), `empty batch: ${err.code} ${err.message}`)
  } else {
    t.is(res.count, 0, `empty batch resolved ${show(res)}`)
  }
  t.is((await fx.wal.append(4, 'after')).lsn, 2, 'an empty batch consumes no LSN')
})

// ------------------------------------------------------------------ stream

test('stream: bad partition and options', async (t) => {
  const fx = await fixture(t)
  const recs = []
  for (let i = 0; i < 40; i++) recs.push(await fx.wal.append(5, `record ${i} ${'y'.repeat(i * 7)}`))
  const last = fx.wal.lastLsn(5)
  t.is(last, 40)
  const s = (p, o) => () => fx.wal.stream(p, o)
  const inv = 'WAL_INVALID_ARGUMENT'
  const rows = [
    ...BAD_PARTITIONS.map(([label, p]) => [`stream(partition ${label})`, s(p), inv, /partition/, 'stream']),
    ['stream(5, 42)', s(5, 42), inv, /options/, 'stream'],
    ['stream(5, "follow")', s(5, 'follow'), inv, /options/, 'stream'],
    ['stream(5, [])', s(5, []), inv, /options/, 'stream'],
    ['stream(5, true)', s(5, true), inv, /options/, 'stream'],
    ...BAD_LSNS.filter(([l]) => l !== 'undefined').map(([label, v]) => [`stream(5, { fromLsn: ${label} })`, s(5, { fromLsn: v }), inv, /fromLsn/, 'stream']),
    ['fromLsn lastLsn + 2', s(5, { fromLsn: last + 2 }), 'WAL_LSN_OUT_OF_RANGE', undefined, 'stream'],
    ['fromLsn 2^40', s(5, { fromLsn: 2 ** 40 }), 'WAL_LSN_OUT_OF_RANGE', undefined, 'stream'],
    ['fromLsn 2 on an empty partition', s(6, { fromLsn: 2 }), 'WAL_LSN_OUT_OF_RANGE', undefined, 'stream'],
    ...[
      ['null', null],
      ['number', 64],
      ['string', '1:64'],
      ['array', [1, 64]],
      ['{}', {}],
      ['no offset', { segment: 1 }],
      ['no segment', { offset: 64 }],
      ['segment -1', { segment: -1, offset: 64 }],
      ['segment 1.5', { segment: 1.5, offset: 64 }],
      ['segment "1"', { segment: '1', offset: 64 }],
      ['segment NaN', { segment: NaN, offset: 64 }],
      ['offset NaN', { segment: 1, offset: NaN }],
      ['offset Infinity', { segment: 1, offset: Infinity }],
      ['offset -64', { segment: 1, offset: -64 }],
      ['offset 64.5', { segment: 1, offset: 64.5 }],
      ['offset null', { segment: 1, offset: null }],
    ].map(([label, v]) => [`stream(5, { from: ${label} })`, s(5, { from: v }), inv, /from|segment|offset/, 'stream']),
    ...[
      ['offset 0 (the header)', { segment: 1, offset: 0 }],
      ['offset 8 (inside the header)', { segment: 1, offset: 8 }],
      ['offset + 1', { segment: recs[3].segment, offset: recs[3].offset + 1 }],
      ['offset + 8', { segment: recs[3].segment, offset: recs[3].offset + 8 }],
      ['offset + 24 (payload start)', { segment: recs[10].segment, offset: recs[10].offset + 24 }],
      ['offset - 8', { segment: recs[10].segment, offset: recs[10].offset - 8 }],
      ['offset far beyond the end', { segment: recs[0].segment, offset: 1 << 20 }],
    ].map(([label, v]) => [`stream(5, { from: ${label} })`, s(5, { from: v }), inv, undefined, 'stream']),
    ['from a segment that does not exist yet', s(5, { from: { segment: recs.at(-1).segment + 5, offset: 64 } }), [inv, 'WAL_LSN_OUT_OF_RANGE'], undefined, 'stream'],
    ['from segment 0', s(5, { from: { segment: 0, offset: 64 } }), [inv, 'WAL_LSN_PURGED'], undefined, 'stream'],
    ...[
      ['"yes"', 'yes'],
      ['1', 1],
      ['null', null],
      ['object', {}],
    ].map(([label, v]) => [`stream(5, { follow: ${label} })`, s(5, { follow: v }), inv, /follow/, 'stream']),
    ...[
      ['object', {}],
      ['string', 'abort'],
      ['null', null],
      ['AbortController', new AbortController()],
    ].map(([label, v]) => [`stream(5, { signal: ${label} })`, s(5, { signal: v }), inv, /signal/, 'stream']),
  ]
  await table(t, fx, rows, { partition: 5 })

  // the valid edges still work
  const collect = async (o) => {
    const out = []
    for await (const r of fx.wal.stream(5, o)) out.push(r.lsn)
    return out
  }
  t.deepEqual(await collect({ fromLsn: last + 1 }), [], 'fromLsn lastLsn + 1 yields nothing')
  t.is((await collect({ fromLsn: 0 })).length, fx.wal.lastLsn(5), 'fromLsn 0 is the start')
  t.deepEqual(await collect({ from: { segment: recs[3].segment, offset: recs[3].offset }, fromLsn: undefined }).then((a) => a[0]), 4)
  t.deepEqual(await collect({ fromLsn: 1, follow: false, signal: undefined }).then((a) => a.length), fx.wal.lastLsn(5))
  t.deepEqual(await collect({ fromLsn: 1, signal: AbortSignal.abort() }), [], 'an already aborted signal ends the stream at once, without throwing')
  const ac = new AbortController()
  ac.abort()
  t.deepEqual(await collect({ follow: true, signal: ac.signal }), [], 'an aborted follow stream ends cleanly')
  t.deepEqual(await collect({}), Array.from({ length: fx.wal.lastLsn(5) }, (_, i) => i + 1))
  t.deepEqual(await (async () => {
    const out = []
    for await (const r of fx.wal.stream(999)) out.push(r)
    return out
  })(), [], 'a partition without records yields nothing')
})

test('stream: a forged frame inside a payload is not a record start', async (t) => {
  // Copy a real frame (valid salted CRC) into a later payload, then ask to start at the
  // copy: it is not the start of a record, so WAL_INVALID_ARGUMENT (never a replay of lsn 1).
  const fx = await fixture(t)
  const r1 = await fx.wal.append(8, 'the original record')
  const seg = fx.wal.segments(8)[0]
  await fx.wal.sync()
  const bytes = readFileSync(join(fx.dir, seg.file))
  const frame = bytes.subarray(r1.offset, r1.offset + 32 + 24) // 32 + round8(19) = 56
  const r2 = await fx.wal.append(8, Buffer.concat([frame, Buffer.from('tail')]))
  t.is(r2.segment, r1.segment)
  await expectFailure(
    t,
    'stream(8, { from: forged frame })',
    () => fx.wal.stream(8, { from: { segment: r2.segment, offset: r2.offset + 24 } }),
    'WAL_INVALID_ARGUMENT',
    undefined,
    'stream',
  )
  const all = []
  for await (const r of fx.wal.stream(8)) all.push(r.lsn)
  t.deepEqual(all, [1, 2])
  await fx.probe('forged frame')
})

test('stream: fromLsn and from inside purged segments → WAL_LSN_PURGED', async (t) => {
  const fx = await fixture(t, { sync: 'none', segmentSize: 1024 })
  const recs = []
  for (let i = 0; i < 60; i++) recs.push(await fx.wal.append(9, `purge me ${i} ${'z'.repeat(60)}`))
  t.true(fx.wal.segments(9).length > 4)
  const pr = await fx.wal.purgeBefore(9, 30)
  t.true(pr.segmentsDeleted > 0)
  const first = fx.wal.firstLsn(9)
  t.is(pr.firstLsn, first)
  t.true(first > 1 && first <= 30)
  await table(
    t,
    fx,
    [
      ['fromLsn 1 (purged)', () => fx.wal.stream(9, { fromLsn: 1 }), 'WAL_LSN_PURGED', undefined, 'stream'],
      ['fromLsn firstLsn - 1', () => fx.wal.stream(9, { fromLsn: first - 1 }), 'WAL_LSN_PURGED', undefined, 'stream'],
      ['from a purged segment', () => fx.wal.stream(9, { from: { segment: recs[0].segment, offset: recs[0].offset } }), 'WAL_LSN_PURGED', undefined, 'stream'],
      ['from record 2 of a purged segment', () => fx.wal.stream(9, { from: { segment: recs[1].segment, offset: recs[1].offset } }), 'WAL_LSN_PURGED', undefined, 'stream'],
    ],
    { partition: 9 },
  )
  const it = fx.wal.stream(9, { fromLsn: first })
  t.is((await it.next()).value.lsn, first)
  await it.return()
})

// ------------------------------------------------------------------ purgeBefore / truncateAfter

test('purgeBefore and truncateAfter: bad arguments', async (t) => {
  const fx = await fixture(t)
  for (let i = 0; i < 5; i++) await fx.wal.append(10, `r${i}`)
  const rows = [
    ...BAD_PARTITIONS.map(([label, p]) => [`purgeBefore(partition ${label})`, () => fx.wal.purgeBefore(p, 1), 'WAL_INVALID_ARGUMENT', /partition/, 'async']),
    ...BAD_LSNS.map(([label, v]) => [`purgeBefore(10, minLsn ${label})`, () => fx.wal.purgeBefore(10, v), 'WAL_INVALID_ARGUMENT', /minLsn/, 'async']),
    ...BAD_PARTITIONS.map(([label, p]) => [`truncateAfter(partition ${label})`, () => fx.wal.truncateAfter(p, 1), 'WAL_INVALID_ARGUMENT', /partition/, 'async']),
    ...BAD_LSNS.map(([label, v]) => [`truncateAfter(10, lsn ${label})`, () => fx.wal.truncateAfter(10, v), 'WAL_INVALID_ARGUMENT', /lsn/i, 'async']),
    ['purgeBefore() without minLsn', () => fx.wal.purgeBefore(10), 'WAL_INVALID_ARGUMENT', /minLsn/, 'async'],
    ['truncateAfter() without lsn', () => fx.wal.truncateAfter(10), 'WAL_INVALID_ARGUMENT', /lsn/i, 'async'],
  ]
  await table(t, fx, rows, { partition: 10 })
  t.is(fx.wal.lastLsn(10), 5)
  t.is(fx.wal.firstLsn(10), 1)

  // valid no-ops
  t.like(await fx.wal.purgeBefore(10, 0), { segmentsDeleted: 0, bytesFreed: 0, firstLsn: 1 })
  t.like(await fx.wal.purgeBefore(11, 5), { segmentsDeleted: 0, bytesFreed: 0 }, 'purging an unknown partition is a no-op')
  await fx.wal.truncateAfter(10, 5)
  t.is(fx.wal.lastLsn(10), 5, 'truncateAfter(lastLsn) is a no-op')

  // truncateAfter above lastLsn must never leave a gap in the LSNs
  let err
  try {
    await fx.wal.truncateAfter(10, 9)
  } catch (e) {
    err = e
  }
  if (err !== undefined) {
    t.true(isWalError(err) && ['WAL_INVALID_ARGUMENT', 'WAL_LSN_OUT_OF_RANGE'].includes(err.code), `truncateAfter(10, 9) with lastLsn 5: ${err.code} ${err.message}`)
  }
  t.is((await fx.wal.append(10, 'r5')).lsn, 6, 'truncateAfter above lastLsn must not create a gap')
  t.deepEqual(await lsnsOf(fx.wal, 10), [1, 2, 3, 4, 5, 6])
  await fx.probe('truncateAfter above lastLsn')
})

test('truncateAfter below the purged prefix keeps the log consistent', async (t) => {
  const fx = await fixture(t, { sync: 'none', segmentSize: 1024 })
  for (let i = 0; i < 60; i++) await fx.wal.append(12, `t ${i} ${'q'.repeat(50)}`)
  await fx.wal.purgeBefore(12, 40)
  const first = fx.wal.firstLsn(12)
  t.true(first > 2)
  let err
  try {
    await fx.wal.truncateAfter(12, first - 2)
  } catch (e) {
    err = e
  }
  if (err !== undefined) {
    t.true(isWalError(err), `truncateAfter into the purged prefix: ${err}`)
    t.true(['WAL_LSN_PURGED', 'WAL_INVALID_ARGUMENT', 'WAL_LSN_OUT_OF_RANGE'].includes(err.code), err.code)
    t.is(fx.wal.lastLsn(12), 60, 'a rejected truncateAfter removed nothing')
  }
  // Whatever it did: the log is dense, the next append follows lastLsn, reads work.
  const last = fx.wal.lastLsn(12)
  const r = await fx.wal.append(12, 'after')
  t.is(r.lsn, last + 1)
  const lsns = await lsnsOf(fx.wal, 12)
  const f = fx.wal.firstLsn(12)
  t.deepEqual(lsns, Array.from({ length: r.lsn - f + 1 }, (_, i) => f + i), `log after truncateAfter into the purged prefix: firstLsn ${f}`)
})

async function lsnsOf(wal, p) {
  const out = []
  for await (const r of wal.stream(p)) out.push(r.lsn)
  return out
}

// ------------------------------------------------------------------ synchronous getters

test('firstLsn / lastLsn / segments: bad partition throws synchronously', async (t) => {
  const fx = await fixture(t)
  await fx.wal.append(13, 'x')
  const rows = []
  for (const m of ['firstLsn', 'lastLsn', 'segments']) {
    for (const [label, p] of BAD_PARTITIONS) rows.push([`${m}(${label})`, () => fx.wal[m](p), 'WAL_INVALID_ARGUMENT', /partition/, 'sync'])
    rows.push([`${m}()`, () => fx.wal[m](), 'WAL_INVALID_ARGUMENT', /partition/, 'sync'])
  }
  await table(t, fx, rows)
  // unknown but valid partitions are not errors
  t.is(fx.wal.firstLsn(14), 0)
  t.is(fx.wal.lastLsn(14), 0)
  t.deepEqual(fx.wal.segments(14), [])
  t.is(fx.wal.firstLsn(65535), 0)
  t.deepEqual(fx.wal.partitions(), [7, 13])
})

// ------------------------------------------------------------------ after close

test('every method after close(): async ones reject, sync ones throw WAL_CLOSED', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { sync: 'always', segmentSize: 4096 })
  await wal.append(1, 'before')
  // appends in flight when close() is called complete and are durable
  const inflight = []
  for (let i = 0; i < 20; i++) inflight.push(i % 4 === 0 ? wal.appendBatch(1, [`b${i}a`, `b${i}b`]) : wal.append(1, `a${i}`))
  const follow = wal.stream(1, { follow: true })
  const followDone = (async () => {
    let n = 0
    for await (const r of follow) n = r.lsn
    return n
  })()
  const closing = wal.close()
  const settled = await Promise.allSettled(inflight)
  t.deepEqual(
    settled.map((s) => s.status),
    settled.map(() => 'fulfilled'),
    `appends made before close(): ${settled.filter((s) => s.status === 'rejected').map((s) => s.reason?.code)}`,
  )
  await closing
  const followLast = await Promise.race([followDone, new Promise((resolve) => setTimeout(() => resolve('hung'), 5000))])
  t.not(followLast, 'hung', 'close() ends a follow stream')

  const C = 'WAL_CLOSED'
  const rows = [
    ['append', () => wal.append(1, 'x'), 'async'],
    ['append to a new partition', () => wal.append(99, Buffer.from('x')), 'async'],
    ['append with a bad partition', () => wal.append(-1, 'x'), 'async', [C, 'WAL_INVALID_ARGUMENT']],
    ['appendBatch', () => wal.appendBatch(1, ['x']), 'async'],
    ['sync', () => wal.sync(), 'async'],
    ['purgeBefore', () => wal.purgeBefore(1, 1), 'async'],
    ['truncateAfter', () => wal.truncateAfter(1, 1), 'async'],
    ['stream', () => wal.stream(1), 'sync'],
    ['stream with options', () => wal.stream(1, { fromLsn: 1, follow: true }), 'sync'],
    ['firstLsn', () => wal.firstLsn(1), 'sync'],
    ['lastLsn', () => wal.lastLsn(1), 'sync'],
    ['partitions', () => wal.partitions(), 'sync'],
    ['segments', () => wal.segments(1), 'sync'],
    ['stats', () => wal.stats(), 'sync'],
  ]
  for (const [label, fn, kind, code = C] of rows) await expectFailure(t, `${label} after close()`, fn, code, undefined, kind)
  await t.notThrowsAsync(() => wal.close(), 'closing twice is fine')
  await t.notThrowsAsync(() => wal[Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')](), 'dispose after close is fine')
  // the same handle stays closed; a new open sees every acknowledged record
  const again = await Wal.open(dir)
  t.deepEqual(again.recovery, [])
  t.is(again.lastLsn(1), 1 + 20 + 5)
  const lsns = await lsnsOf(again, 1)
  t.is(lsns.length, 26)
  t.is((await again.append(1, 'next')).lsn, 27)
  await again.close()
  await expectFailure(t, 'append on the old handle after a reopen', () => wal.append(1, 'x'), C, undefined, 'async')
})

test('stream iterators created before close() end cleanly; next() after close does not hang', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { sync: 'none' })
  for (let i = 0; i < 100; i++) await wal.append(2, `x${i}`)
  const it = wal.stream(2)
  t.is((await it.next()).value.lsn, 1)
  await wal.close()
  const r = await Promise.race([it.next().then(
    (v) => v,
    (e) => e,
  ), new Promise((resolve) => setTimeout(() => resolve('hung'), 3000))])
  t.not(r, 'hung')
  if (r instanceof Error) t.true(isWalError(r) && r.code === 'WAL_CLOSED', `next() after close: ${r.code} ${r.message}`)
  else t.true(r.done === true || typeof r.value?.lsn === 'number', `next() after close: ${show(r)}`)
})

test('payload buffers reused right after the call: the record keeps the bytes of the call', async (t) => {
  const fx = await fixture(t)
  const scratch = Buffer.alloc(5)
  const ps = []
  for (const word of ['first', 'secnd', 'third']) {
    scratch.write(word)
    ps.push(fx.wal.append(15, scratch))
  }
  scratch.write('XXXXX')
  const parts = [Buffer.from('b1'), new Uint8Array([98, 50])]
  ps.push(fx.wal.appendBatch(15, parts))
  parts[0].write('ZZ')
  parts[1][0] = 0
  parts.push(Buffer.from('not part of the batch'))
  await Promise.all(ps)
  const got = []
  for await (const r of fx.wal.stream(15)) got.push(r.payload.toString())
  t.deepEqual(got, ['first', 'secnd', 'third', 'b1', 'b2'])
})
