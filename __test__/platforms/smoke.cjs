// The platform smoke test: the whole life of a WAL through the package, including what
// differs between operating systems (deleting and truncating files a stream still has
// open, the directory lock from this and from another process, reopen). Plain Node, no
// test runner, so it runs under wine (Windows Node) and qemu (arm64 Node) as well.
// It prints a transcript of what it observed; scripts/test-platforms.js runs it on this
// Linux machine too and requires the same transcript everywhere ("behaves as on Linux").
//
//   node __test__/platforms/smoke.cjs           (PREBUILDS_ONLY=1 to load from prebuilds/)
//   node __test__/platforms/smoke.cjs --try-open DIR   (child: prints what opening DIR gave)
//
// SEGWAL_SMOKE_NODE (a JSON array) is the command that starts the second Node process when
// `process.execPath` alone cannot: under qemu-user an arm64 Node cannot exec another arm64
// binary (the host kernel has no binfmt for it), but it can exec qemu, which runs one.
'use strict'
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Wal, WalError } = require('../..')

const transcript = []
function note(line) {
  transcript.push(line)
  console.log(line)
}

async function codeOf(promise) {
  try {
    await promise
    return 'ok'
  } catch (e) {
    if (!(e instanceof WalError)) throw e
    return e.code
  }
}

async function take(iter, n) {
  const out = []
  while (out.length < n) {
    const { value, done } = await iter.next()
    if (done) break
    out.push(value.lsn)
  }
  return out
}

/** A second process opening `dir`: resolves with what its open gave. */
function openInChild(dir) {
  return new Promise((resolve, reject) => {
    const [node, ...args] = process.env.SEGWAL_SMOKE_NODE ? JSON.parse(process.env.SEGWAL_SMOKE_NODE) : [process.execPath]
    const child = spawn(node, [...args, __filename, '--try-open', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('exit', () => resolve(out.trim()))
  })
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segwal-smoke-'))
  try {
    note(`platform ok: ${Wal.name} loaded`)
    let wal = await Wal.open(dir, { segmentSize: 4096 })
    const payload = (i) => `record ${i} `.padEnd(100, '.')
    for (let i = 1; i <= 150; i++) assert.equal((await wal.append(1, payload(i))).lsn, i)
    const batch = await wal.appendBatch(1, ['a', 'b', Buffer.from('c')])
    note(`append+appendBatch: lastLsn ${wal.lastLsn(1)}, batch ${batch.firstLsn}..${batch.lastLsn}`)
    note(`segments: ${wal.segments(1).length} (rotation)`)

    let n = 0
    for await (const r of wal.stream(1)) {
      if (r.lsn <= 150) assert.equal(r.payload.toString(), payload(r.lsn))
      n++
    }
    note(`stream: ${n} records`)

    // A follow stream sees appends made after it started.
    const ac = new AbortController()
    const follow = wal.stream(1, { fromLsn: 153, follow: true, signal: ac.signal })[Symbol.asyncIterator]()
    const next = take(follow, 2)
    await wal.append(1, 'live 154')
    note(`follow: ${(await next).join(',')}`)

    // Purge while a stream holds the oldest segment open: the file goes (on Windows too),
    // the stream that is inside it may finish it.
    const reader = wal.stream(1)[Symbol.asyncIterator]()
    await take(reader, 1)
    const firstSeg = wal.segments(1)[0]
    const purged = await wal.purgeBefore(1, 100)
    note(`purgeBefore(100) with an open stream: ${purged.segmentsDeleted} segments deleted, firstLsn ${purged.firstLsn}`)
    note(`purged file gone: ${!fs.existsSync(path.join(dir, firstSeg.file))}`)
    const rest = await codeOf(take(reader, 100))
    note(`the open stream then: ${rest}`)
    await reader.return?.()

    // Truncate into an older segment while streams are open, then append: the new segment
    // reuses a removed segment's name while the old file may still be open.
    const lastBefore = wal.lastLsn(1)
    const open2 = wal.stream(1, { fromLsn: lastBefore })[Symbol.asyncIterator]()
    await take(open2, 1)
    const cut = wal.firstLsn(1) + 2
    // A stream inside the segment the cut shortens (set_len on a file it has open; on
    // Windows SetEndOfFile past another handle): it goes on at the cut, through the same
    // handle, with the records appended after the truncation.
    const inCut = wal.stream(1, { fromLsn: cut - 1 })[Symbol.asyncIterator]()
    await take(inCut, 1)
    await wal.truncateAfter(1, cut)
    note(`truncateAfter: lastLsn ${wal.lastLsn(1) === cut}, stream past the cut: ${await codeOf(take(open2, 1))}`)
    for (let i = 0; i < 40; i++) await wal.append(1, `after ${i} `.padEnd(100, '.'))
    note(`appends after truncate: lastLsn ${wal.lastLsn(1) === cut + 40}`)
    const inCutNext = await take(inCut, 41)
    const after0 = inCutNext.length === 41 && inCutNext.every((lsn, i) => lsn === cut + i)
    note(`stream inside the cut segment: dense from the cut on through the new records ${after0}`)
    await inCut.return?.()
    ac.abort()
    await codeOf(take(follow, 100))

    // The lock: a second open in this process and from another process.
    note(`second open (same process): ${await codeOf(Wal.open(dir))}`)
    note(`second open (other process): ${await openInChild(dir)}`)
    const last = wal.lastLsn(1)
    await wal.close()
    note(`after close: ${await codeOf(wal.append(1, 'x'))}`)

    wal = await Wal.open(dir, { segmentSize: 4096 })
    let count = 0
    let prev = 0
    for await (const r of wal.stream(1)) {
      assert.equal(r.lsn, prev ? prev + 1 : r.lsn)
      prev = r.lsn
      count++
    }
    note(`reopen: lastLsn ${wal.lastLsn(1) === last}, dense stream ${prev === last}, ${count > 0}`)
    note(`open in child while reopened: ${await openInChild(dir)}`)
    await wal.close()
    note('PASS')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function tryOpen(dir) {
  const code = await codeOf(Wal.open(dir).then((w) => w.close()))
  process.stdout.write(code)
}

if (process.argv[2] === '--try-open') {
  tryOpen(process.argv[3]).catch((e) => {
    console.error(e)
    process.exit(1)
  })
} else {
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
