// The command line (bin/segwal.mjs): inspect, verify, dump and bench, spawned as a
// child process on WALs written through the public API. The commands are read-only:
// they run while the WAL is open (lock held) and change nothing in the directory.

import test from 'ava'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeSync, closeSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Wal } from 'segwal'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const BIN = join(root, 'bin', 'segwal.mjs')

const dirs = []
function tempDir() {
  const d = mkdtempSync(join(tmpdir(), 'segwal-cli-'))
  dirs.push(d)
  return d
}
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** Runs the CLI; resolves to { code, stdout (Buffer), out (string), err (string) }. */
function cli(...args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'buffer', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({
        code: error ? (typeof error.code === 'number' ? error.code : -1) : 0,
        stdout,
        out: stdout.toString('utf8'),
        err: stderr.toString('utf8'),
      })
    })
  })
}

const BINARY = Buffer.from([0xff, 0xfe, 0x00, 0x80])

/**
 * Partition 1: 60 text records over 4 KiB segments, then a batch (text, binary, empty);
 * partition 7: one non-ASCII text record. Returns the open WAL and what appends said.
 */
async function populate(dir) {
  const wal = await Wal.open(dir, { segmentSize: 4096 })
  const written = new Map() // lsn -> { segment, offset, payload }
  for (let i = 1; i <= 60; i++) {
    const payload = Buffer.from(`record ${String(i).padStart(2, '0')} `.padEnd(100, 'x'))
    const r = await wal.append(1, payload)
    written.set(r.lsn, { segment: r.segment, offset: r.offset, payload })
  }
  const batch = [Buffer.from('batch text'), BINARY, Buffer.alloc(0)]
  const b = await wal.appendBatch(1, batch)
  // Positions of the batch's records, from a stream.
  for await (const rec of wal.stream(1, { fromLsn: b.firstLsn })) {
    written.set(rec.lsn, { segment: rec.segment, offset: rec.offset, payload: batch[rec.lsn - b.firstLsn] })
  }
  const p7 = await wal.append(7, 'héllo wörld')
  return { wal, written, p7 }
}

function snapshot(dir) {
  return readdirSync(dir)
    .sort()
    .map((f) => [f, readFileSync(join(dir, f)).toString('base64')])
}

function flipByte(file, at) {
  const fd = openSync(file, 'r+')
  const b = Buffer.alloc(1)
  readSync(fd, b, 0, 1, at)
  b[0] ^= 0x20
  writeSync(fd, b, 0, 1, at)
  closeSync(fd)
}

function jsonLines(text) {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l))
}

test('inspect: table and --json agree with the engine, while the WAL is open', async (t) => {
  const dir = tempDir()
  const { wal } = await populate(dir)
  const segs1 = wal.segments(1)
  const segs7 = wal.segments(7)
  t.true(segs1.length >= 3, 'rotation happened')
  const before = snapshot(dir)

  const json = await cli('inspect', dir, '--json')
  t.is(json.code, 0, json.err)
  const doc = JSON.parse(json.out)
  t.deepEqual(
    doc.partitions.map((p) => p.partition),
    [1, 7],
  )
  for (const [p, engine] of [
    [doc.partitions[0], segs1],
    [doc.partitions[1], segs7],
  ]) {
    t.deepEqual(p.problems, [])
    t.is(p.pendingTruncation, false)
    const real = p.segments.filter((s) => !s.spare)
    t.deepEqual(
      real.map((s) => ({ index: s.index, file: s.file, firstLsn: s.firstLsn, lastLsn: s.lastLsn, bytes: s.bytes })),
      engine.map((s) => ({ index: s.index, file: s.file, firstLsn: s.firstLsn, lastLsn: s.lastLsn, bytes: s.bytes })),
    )
    for (const s of p.segments) t.is(s.bytes, statSync(join(dir, s.file)).size)
    t.is(p.bytes, p.segments.reduce((n, s) => n + s.bytes, 0))
    t.true(real.at(-1).newest)
  }
  t.is(doc.partitions[0].firstLsn, 1)
  t.is(doc.partitions[0].lastLsn, 63)
  t.is(doc.partitions[0].records, 63)
  t.is(doc.partitions[1].records, 1)

  const table = await cli('inspect', dir)
  t.is(table.code, 0, table.err)
  t.regex(table.out, /PARTITION\s+LSNS\s+RECORDS\s+SEGMENTS\s+BYTES/)
  t.regex(table.out, /FIRST LSN\s+LAST LSN/)
  t.regex(table.out, /\b1\s+1\.\.63\s+63\s+\d+/)
  for (const s of [...segs1, ...segs7]) {
    const line = table.out.split('\n').find((l) => l.includes(s.file))
    t.truthy(line, s.file)
    t.regex(line, new RegExp(`\\b${s.firstLsn}\\s+${s.lastLsn}\\s+${s.lastLsn - s.firstLsn + 1}\\s+${s.bytes}\\b`))
    t.regex(line, s.active ? /newest$/ : /sealed$/)
  }
  t.deepEqual(snapshot(dir), before, 'inspect changed nothing')
  // The writer is unaffected.
  t.is((await wal.append(1, 'after')).lsn, 64)
  await wal.close()
})

test('inspect: empty directory, missing directory', async (t) => {
  const dir = tempDir()
  const r = await cli('inspect', dir, '--json')
  t.is(r.code, 0, r.err)
  t.deepEqual(JSON.parse(r.out).partitions, [])
  const table = await cli('inspect', dir)
  t.is(table.code, 0)
  t.regex(table.out, /no partitions/)
  const missing = await cli('inspect', join(dir, 'nope'))
  t.is(missing.code, 1)
  t.regex(missing.err, /no such directory/)
})

test('verify: a clean log exits 0 with a summary and no progress bar when piped', async (t) => {
  const dir = tempDir()
  const { wal } = await populate(dir)
  const before = snapshot(dir)
  const r = await cli('verify', dir)
  t.is(r.code, 0, r.err)
  t.is(r.err, '', 'no progress output on a pipe')
  t.regex(r.out, /^OK: verified \d+ segments in 2 partitions: 64 records/m)
  const j = await cli('verify', dir, '--json')
  t.is(j.code, 0, j.err)
  const doc = JSON.parse(j.out)
  t.is(doc.clean, true)
  t.is(doc.records, 64)
  t.true(doc.partitions.every((p) => p.segments.every((s) => s.checked)))
  t.deepEqual(snapshot(dir), before, 'verify changed nothing')
  await wal.close()
})

test('verify: a flipped byte exits 1 naming the file and offset', async (t) => {
  const dir = tempDir()
  const { wal, written } = await populate(dir)
  await wal.close()
  // A payload byte of LSN 5 (segment 1, a sealed segment).
  const { segment, offset } = written.get(5)
  t.is(segment, 1)
  const file = 'part_1_0000000001.wal'
  flipByte(join(dir, file), offset + 24 + 3)
  const r = await cli('verify', dir)
  t.is(r.code, 1)
  t.true(r.err.includes(file), r.err)
  t.true(r.err.includes(`offset ${offset}`), r.err)
  t.regex(r.err, /checksum/)
  t.regex(r.out, /DAMAGED: partition 1\b/)
  const j = await cli('verify', dir, '--json')
  t.is(j.code, 1)
  const doc = JSON.parse(j.out)
  t.is(doc.clean, false)
  const [problem] = doc.partitions[0].problems
  t.like(problem, { kind: 'corruption', file, offset })
  t.is(doc.partitions[0].lastLsn, 4)
  t.deepEqual(doc.partitions[1].problems, [], 'other partitions are still checked')

  // dump prints what precedes the damage, then fails naming it.
  const d = await cli('dump', dir, '--partition', '1')
  t.is(d.code, 1)
  t.deepEqual(
    jsonLines(d.out).map((x) => x.lsn),
    [1, 2, 3, 4],
  )
  t.true(d.err.includes(file) && d.err.includes(`offset ${offset}`), d.err)
})

test('verify: a torn tail is reported, is not damage, and is not cut', async (t) => {
  const dir = tempDir()
  const { wal } = await populate(dir)
  const newest = wal.segments(1).at(-1)
  await wal.close()
  appendFileSync(join(dir, newest.file), Buffer.alloc(40, 0x11))
  // As if the writer had died before close(): after a clean close nothing can be torn.
  rmSync(join(dir, 'segwal.clean'))
  const before = snapshot(dir)
  const r = await cli('verify', dir)
  t.is(r.code, 0, r.err)
  t.regex(r.out, new RegExp(`torn tail: 40 bytes at offset ${newest.bytes} of ${newest.file}`))
  t.regex(r.out, /^OK/m)
  const d = await cli('dump', dir, '-p', '1', '--from', '60')
  t.is(d.code, 0, d.err)
  t.deepEqual(
    jsonLines(d.out).map((x) => x.lsn),
    [60, 61, 62, 63],
  )
  t.deepEqual(snapshot(dir), before, 'nothing was cut')
  // Open agrees.
  const w2 = await Wal.open(dir)
  t.deepEqual(w2.recovery, [{ partition: 1, segment: newest.index, truncatedBytes: 40 }])
  await w2.close()
})

test('dump: JSON lines with positions, utf8 or base64 payloads, --from and --limit, --raw', async (t) => {
  const dir = tempDir()
  const { wal, written, p7 } = await populate(dir)
  const all = await cli('dump', dir, '--partition', '1')
  t.is(all.code, 0, all.err)
  const lines = jsonLines(all.out)
  t.is(lines.length, 63)
  for (const line of lines) {
    const w = written.get(line.lsn)
    t.deepEqual(Object.keys(line), ['lsn', 'segment', 'offset', 'encoding', 'payload'])
    t.is(line.segment, w.segment)
    t.is(line.offset, w.offset)
    const bytes = Buffer.from(line.payload, line.encoding === 'base64' ? 'base64' : 'utf8')
    t.true(bytes.equals(w.payload), `payload of ${line.lsn}`)
  }
  t.is(lines[0].encoding, 'utf8')
  t.is(lines[0].payload, written.get(1).payload.toString())
  t.like(lines[61], { lsn: 62, encoding: 'base64', payload: BINARY.toString('base64') })
  t.like(lines[62], { lsn: 63, encoding: 'utf8', payload: '' })

  const some = await cli('dump', dir, '-p', '1', '--from', '30', '--limit', '5')
  t.is(some.code, 0, some.err)
  t.deepEqual(
    jsonLines(some.out).map((x) => x.lsn),
    [30, 31, 32, 33, 34],
  )
  const none = await cli('dump', dir, '-p', '1', '--limit', '0')
  t.is(none.code, 0)
  t.is(none.out, '')
  const atEnd = await cli('dump', dir, '-p', '1', '--from', '64')
  t.is(atEnd.code, 0, atEnd.err)
  t.is(atEnd.out, '')
  const beyond = await cli('dump', dir, '-p', '1', '--from', '65')
  t.is(beyond.code, 1)
  t.regex(beyond.err, /WAL_LSN_OUT_OF_RANGE/)

  const p7lines = jsonLines((await cli('dump', dir, '-p', '7')).out)
  t.deepEqual(p7lines, [{ lsn: 1, segment: p7.segment, offset: p7.offset, encoding: 'utf8', payload: 'héllo wörld' }])

  const raw = await cli('dump', dir, '-p', '1', '--from', '62', '--limit', '1', '--raw')
  t.is(raw.code, 0, raw.err)
  t.true(raw.stdout.equals(BINARY))
  const raw2 = await cli('dump', dir, '-p', '1', '--from', '60', '--raw')
  t.true(raw2.stdout.equals(Buffer.concat([60, 61, 62, 63].map((l) => written.get(l).payload))))

  const unknown = await cli('dump', dir, '-p', '3')
  t.is(unknown.code, 0)
  t.is(unknown.out, '')
  t.regex(unknown.err, /partition 3 has no segments/)

  // After a purge, an LSN below the first retained one is refused.
  const purged = await wal.purgeBefore(1, 40)
  t.true(purged.segmentsDeleted > 0)
  const gone = await cli('dump', dir, '-p', '1', '--from', '1')
  t.is(gone.code, 1)
  t.regex(gone.err, /WAL_LSN_PURGED/)
  const rest = jsonLines((await cli('dump', dir, '-p', '1')).out)
  t.is(rest[0].lsn, purged.firstLsn)
  t.is(rest.at(-1).lsn, 63)
  await wal.close()
})

test('wrong usage exits 2 with help; --help and --version exit 0', async (t) => {
  const dir = tempDir()
  const cases = [
    [],
    ['nope'],
    ['inspect'],
    ['verify'],
    ['inspect', dir, '--bogus'],
    ['inspect', dir, 'extra'],
    ['dump', dir],
    ['dump', dir, '--partition'],
    ['dump', dir, '--partition', '70000'],
    ['dump', dir, '--partition', '-1'],
    ['dump', dir, '--partition', '1.5'],
    ['dump', dir, '-p', '1', '--from', 'x'],
    ['dump', dir, '-p', '1', '--limit', '-3'],
    ['dump', '-p', '1'],
  ]
  for (const args of cases) {
    const r = await cli(...args)
    t.is(r.code, 2, `segwal ${args.join(' ')}: ${r.err}`)
    t.regex(r.err, /Usage: segwal/, `segwal ${args.join(' ')}`)
    t.is(r.out, '')
  }
  for (const args of [['--help'], ['help'], ['inspect', '--help'], ['help', 'dump'], ['verify', '-h']]) {
    const r = await cli(...args)
    t.is(r.code, 0, args.join(' '))
    t.regex(r.out, /Usage: segwal/)
  }
  const dumpHelp = await cli('dump', '--help')
  t.regex(dumpHelp.out, /--partition/)
  t.regex(dumpHelp.out, /base64/)
  const v = await cli('--version')
  t.is(v.code, 0)
  t.is(v.out.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version)
})

test('bench passes its arguments through', async (t) => {
  if (!existsSync(join(root, 'bench', 'index.mjs'))) return t.pass('no bundled benchmark here')
  const r = await cli('bench', '--help')
  t.is(r.code, 0, r.err)
  t.true(r.out.length > 0)
  t.notRegex(r.out, /Usage: segwal/, "the benchmark's own help, not the CLI's")
})

test('a live writer: a segment created ahead is a spare, not damage', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir, { segmentSize: 4096 })
  // Past half of the first segment, where the writer may create the next file ahead.
  for (let i = 1; i <= 20; i++) await wal.append(2, Buffer.alloc(100, i))
  const engineFiles = new Set(wal.segments(2).map((s) => s.file))
  const extra = readdirSync(dir).filter((f) => f.endsWith('.wal') && !engineFiles.has(f))
  const doc = JSON.parse((await cli('inspect', dir, '--json')).out)
  const [p] = doc.partitions
  t.deepEqual(p.problems, [])
  t.is(p.lastLsn, 20)
  t.deepEqual(
    p.segments.filter((s) => s.spare).map((s) => s.file),
    extra,
  )
  const table = await cli('inspect', dir)
  for (const f of extra) t.regex(table.out.split('\n').find((l) => l.includes(f)), /spare/)
  const v = await cli('verify', dir)
  t.is(v.code, 0, v.err)
  t.notRegex(v.out, /torn/)
  t.is(jsonLines((await cli('dump', dir, '-p', '2')).out).length, 20)
  await wal.close()
})
