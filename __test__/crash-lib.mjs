// Shared by crash.test.mjs (ava), crash-run.mjs (CLI) and crash-writer.mjs (the child).
//
// The kill -9 harness: a child process (crash-writer.mjs) appends to a WAL with
// sync: 'always' and reports every acknowledgement on stdout *after* the promise
// resolved; the parent SIGKILLs it at a random moment, reopens the directory and
// checks that every acknowledged record is there with the right bytes, that LSNs are
// dense, that batches are whole or absent, that wal.recovery is well-formed and
// exact, and that appending continues at lastLsn + 1. State accumulates across rounds
// in one directory.
//
// Payloads are a pure function of (partition, lsn, round): `${p}:${lsn}:${round}:` +
// filler derived from the three. A reader can verify any record without knowing
// whether it was acknowledged; the round tells which writer session wrote it, so a
// stale record from an earlier session resurfacing at a reused LSN is caught too.

import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, statSync, rmSync, existsSync, readFileSync, truncateSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
export const WRITER = join(HERE, 'crash-writer.mjs')

// FORMAT.md: 64-byte segment header, frames of 32 + round_up(len, 8).
export const SEGMENT_HEADER = 64
export const frameSize = (len) => 32 + Math.ceil(len / 8) * 8

// ---------------------------------------------------------------- randomness

export function mulberry32(seed) {
  let a = seed >>> 0
  return function rnd() {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function hash3(a, b, c) {
  // b (an lsn) can exceed 2^32 in theory; fold both halves in.
  let h = 0x811c9dc5
  for (const v of [a, b % 4294967296, Math.floor(b / 4294967296), c]) {
    h = Math.imul(h ^ (v >>> 0), 0x01000193)
    h ^= h >>> 13
    h = Math.imul(h, 0x5bd1e995)
    h ^= h >>> 15
  }
  return h >>> 0
}

// ---------------------------------------------------------------- payloads

// Mostly ASCII, plus 2-, 3- and 4-byte UTF-8 characters.
const ALPHABET = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,;éß€漢𝄞']
/** Upper bound of payloadFor(...) in bytes (prefix <= 40 bytes, filler <= 500 chars of <= 4 bytes). */
export const MAX_PAYLOAD_BYTES = 40 + 500 * 4

/** The payload of record (p, lsn) as written by session `round`, as a string. */
export function payloadFor(p, lsn, round) {
  const rnd = mulberry32(hash3(p, lsn, round))
  const r = rnd()
  let len
  if (r < 0.05) len = 0
  else if (r < 0.9) len = Math.floor(rnd() * 120)
  else len = 120 + Math.floor(rnd() * 381)
  let f = ''
  for (let i = 0; i < len; i++) f += ALPHABET[Math.floor(rnd() * ALPHABET.length)]
  return `${p}:${lsn}:${round}:${f}`
}

/**
 * Checks that `buf` is a valid payload for (p, lsn) written by some session.
 * Returns the session (round) number; throws with a description otherwise.
 */
export function checkPayload(p, lsn, buf) {
  const head = buf.subarray(0, 48).toString('latin1')
  const prefix = `${p}:${lsn}:`
  if (!head.startsWith(prefix)) {
    throw new Error(`partition ${p} lsn ${lsn}: payload does not start with "${prefix}": ${JSON.stringify(head)}`)
  }
  const end = head.indexOf(':', prefix.length)
  const round = end > prefix.length ? Number(head.slice(prefix.length, end)) : NaN
  if (!Number.isSafeInteger(round) || round < 0) {
    throw new Error(`partition ${p} lsn ${lsn}: payload has no valid round: ${JSON.stringify(head)}`)
  }
  const expected = Buffer.from(payloadFor(p, lsn, round), 'utf8')
  if (!expected.equals(buf)) {
    throw new Error(
      `partition ${p} lsn ${lsn} round ${round}: payload bytes differ (got ${buf.length} bytes, expected ${expected.length})`,
    )
  }
  return round
}

// ---------------------------------------------------------------- helpers

function listSegments(dir) {
  const sizes = new Map()
  if (!existsSync(dir)) return sizes
  for (const name of readdirSync(dir)) {
    if (/^part_\d+_\d{10}\.wal$/.test(name)) sizes.set(name, statSync(join(dir, name)).size)
  }
  return sizes
}

const segName = (p, index) => `part_${p}_${String(index).padStart(10, '0')}.wal`

class CrashCheckError extends Error {}

function check(cond, msg) {
  if (!cond) throw new CrashCheckError(typeof msg === 'function' ? msg() : msg)
}

const isInt = (v) => typeof v === 'number' && Number.isSafeInteger(v)

// ---------------------------------------------------------------- the harness

const PARTITIONS = [0, 1, 2, 65535]
const SEGMENT_SIZES = [4096, 6000, 8192, 12345, 16384, 65536]
const KILL_MODES = ['spawn', 'early', 'acks', 'timed', 'timed', 'timed', 'rotation', 'stop']

/**
 * Runs `rounds` writer sessions in `dir` (a fresh temp dir if absent).
 * Options: seed, log(line), progressEvery, wal (the segwal module: { Wal, WalError }),
 * timeBudgetMs (stop early, after at least minRounds, when exceeded), minRounds,
 * minKills (keep going past `rounds` and the time budget until that many SIGKILLs),
 * powerLossRate (share of kills followed by a simulated power loss, default 0.35),
 * frameBoundaryCuts (false: power-loss cuts never fall exactly between two frames).
 * Resolves with a summary object; rejects on the first violated invariant (the
 * error message includes the seed and round).
 */
export async function runCrashRounds(opts) {
  const { Wal, WalError } = opts.wal ?? (await import('segwal'))
  const seed = opts.seed ?? (Math.random() * 2 ** 31) >>> 0
  const rnd = mulberry32(seed)
  const pick = (arr) => arr[Math.floor(rnd() * arr.length)]
  const log = opts.log ?? (() => {})
  const rounds = opts.rounds ?? 25
  const progressEvery = opts.progressEvery ?? 0
  const ownDir = opts.dir === undefined
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'segwal-crash-'))
  const t0 = Date.now()

  // What must be in the log: per partition, lsn -> session that wrote it. Filled from
  // acknowledgements and from what a verified reopen saw (after a kill -9 without power
  // loss, everything seen once must stay).
  const known = new Map(PARTITIONS.map((p) => [p, new Map()]))
  // Positions given by AppendResults since the last verification: `${p}:${lsn}` -> [seg, off].
  let ackPos = new Map()
  // Records below floor[p] may have been purged (a purge was at least started).
  const floor = new Map(PARTITIONS.map((p) => [p, 0]))
  const maxAcked = new Map(PARTITIONS.map((p) => [p, 0]))
  // Batches started (maybe not acknowledged) since the last look at lastLsn.
  let pendingBatches = []
  // Exact lastLsn per partition the next writer must see (after a clean close), or null.
  let expectedLast = new Map(PARTITIONS.map((p) => [p, 0]))
  let cleanBefore = true
  let session = 0

  const summary = {
    seed,
    dir,
    rounds: 0,
    kills: 0,
    cleanStops: 0,
    killModes: {},
    verifications: 0,
    chained: 0,
    acked: 0,
    ackedBatches: 0,
    recordsChecked: 0,
    unackedSurvivors: 0,
    recoveries: 0,
    truncatedBytes: 0,
    removedSegments: 0,
    purgesByWriter: 0,
    purgesByVerifier: 0,
    powerLosses: 0,
    powerLossBytes: 0,
    maxOpenMs: 0,
    maxRecords: 0,
    elapsedMs: 0,
  }

  let round = 0
  try {
    const minKills = opts.minKills ?? 0
    let lastChained = false
    for (round = 1; ; round++) {
      const killsOk = summary.kills >= minKills
      if (round > rounds && killsOk) break
      if (opts.timeBudgetMs !== undefined && killsOk && round > (opts.minRounds ?? 1) && Date.now() - t0 > opts.timeBudgetMs) break
      const mode = pick(KILL_MODES)
      const chain = mode !== 'stop' && rnd() < 0.25
      const segmentSize = pick(SEGMENT_SIZES)
      const parts = PARTITIONS.filter(() => rnd() < 0.6)
      if (parts.length === 0) parts.push(pick(PARTITIONS))
      session++
      const cfg = {
        dir,
        round: session,
        seed: (rnd() * 2 ** 31) >>> 0,
        segmentSize,
        preallocate: rnd() < 0.8,
        partitions: parts,
        concurrency: 1 + Math.floor(rnd() * 32),
        batchProb: rnd() * 0.5,
        purgeProb: rnd() < 0.3 ? 0.01 : 0,
        writeProb: rnd() * 0.4,
        maxMs: 15000,
      }
      const res = await runWriter(cfg, mode, rnd)
      summary.rounds++
      summary.killModes[mode] = (summary.killModes[mode] ?? 0) + 1
      if (res.killed) summary.kills++
      else summary.cleanStops++

      // ---- what the writer told us
      const lastSeen = res.opened?.last
      if (res.opened !== undefined) {
        // Its open saw lastLsn per partition: after a clean close, exactly what we
        // expect; after a crash, at least everything acknowledged.
        for (const p of parts) {
          const l = lastSeen[p]
          if (expectedLast !== null) {
            check(l === expectedLast.get(p), () => `writer session ${session} opened partition ${p} at lastLsn ${l}, expected ${expectedLast.get(p)} after a clean close`)
          } else {
            check(l >= maxAcked.get(p), () => `writer session ${session} opened partition ${p} at lastLsn ${l} < acknowledged ${maxAcked.get(p)}`)
          }
        }
        if (cleanBefore) {
          check(Array.isArray(res.opened.recovery) && res.opened.recovery.length === 0, () => `recovery after a clean close is ${JSON.stringify(res.opened.recovery)}, expected []`)
        }
        checkRecoveryShape(res.opened.recovery)
        // Batches of earlier sessions: whole or absent, judged by the lastLsn this open saw.
        for (const b of pendingBatches) {
          if (lastSeen[b.p] === undefined) continue
          checkBatchVsLast(b, lastSeen[b.p], 0, `writer session ${session}'s open`)
        }
        pendingBatches = pendingBatches.filter((b) => lastSeen[b.p] === undefined)
      }
      for (const e of res.errors) throw new CrashCheckError(`writer session ${session} reported: ${e}`)
      for (const [p, lsn, rd, seg, off] of res.acks) {
        check(rd === session, 'internal: ack round')
        const k = known.get(p)
        const prev = k.get(lsn)
        check(prev === undefined, () => `writer session ${session} acknowledged partition ${p} lsn ${lsn}, already written by session ${prev}`)
        k.set(lsn, rd)
        if (seg !== undefined) ackPos.set(`${p}:${lsn}`, [seg, off])
        if (lsn > maxAcked.get(p)) maxAcked.set(p, lsn)
        summary.acked++
      }
      summary.ackedBatches += res.batchAcks
      for (const b of res.batchIntents) pendingBatches.push(b)
      for (const [p, m] of res.purgeIntents) {
        if (m > floor.get(p)) floor.set(p, m)
        summary.purgesByWriter++
      }

      expectedLast = null
      cleanBefore = !res.killed
      if (res.killed && rnd() < (opts.powerLossRate ?? 0.35)) simulatePowerLoss()
      lastChained = chain && res.killed
      if (lastChained) {
        summary.chained++
      } else {
        await verify()
        summary.verifications++
      }
      if (progressEvery > 0 && round % progressEvery === 0) {
        log(
          `round ${round}/${rounds}: ${summary.kills} kills, ${summary.acked} acked, ${summary.recoveries} recoveries ` +
            `(${summary.truncatedBytes} B cut), ${((Date.now() - t0) / 1000).toFixed(1)} s`,
        )
      }
    }
    // the last writer's crash is always checked
    if (lastChained) {
      await verify()
      summary.verifications++
    }
  } catch (e) {
    e.message = `crash round ${round} (seed ${seed}, dir ${dir}): ${e.message}`
    e.crashDir = dir
    throw e
  }
  summary.elapsedMs = Date.now() - t0
  if (ownDir && !opts.keep) rmSync(dir, { recursive: true, force: true })
  return summary

  // ------------------------------------------------------------ power loss

  // After a kill -9 the page cache keeps every write, so torn tails never happen. To
  // exercise tail recovery (exact truncatedBytes, torn batches, appends resuming at the
  // cut) this drops part of what was never acknowledged, as a power loss could: in each
  // partition's newest segment, everything after the last record known to be durable is
  // cut at a random point (a byte, or a frame boundary, maybe inside a batch), and
  // sometimes a few bytes of junk from a torn sector are left after the cut.
  function simulatePowerLoss() {
    let touched = false
    for (const p of PARTITIONS) {
      const files = [...listSegments(dir).keys()].filter((n) => n.startsWith(`part_${p}_`)).sort()
      if (files.length === 0) continue
      const file = join(dir, files.at(-1))
      const buf = readFileSync(file)
      if (buf.length <= SEGMENT_HEADER) continue
      let durable = 0
      for (const lsn of known.get(p).keys()) if (lsn > durable) durable = lsn
      // walk the frames (docs/FORMAT.md): find where the last durable record ends
      let at = SEGMENT_HEADER
      let keep = SEGMENT_HEADER
      const bounds = []
      while (at + 32 <= buf.length) {
        const len = buf.readUInt32LE(at + 4)
        const lsn = Number(buf.readBigUInt64LE(at + 8))
        const end = at + frameSize(len)
        if (end > buf.length || len > buf.length) break
        if (lsn <= durable) keep = end
        else bounds.push(end)
        at = end
      }
      if (keep >= buf.length) continue
      let cut
      if (bounds.length > 0 && opts.frameBoundaryCuts !== false && rnd() < 0.5) cut = bounds[Math.floor(rnd() * bounds.length)]
      else cut = keep + Math.floor(rnd() * (buf.length - keep + 1))
      if (cut > buf.length) cut = buf.length
      truncateSync(file, cut)
      let junk = 0
      if (rnd() < 0.3) {
        junk = 1 + Math.floor(rnd() * 600)
        const bytes = Buffer.alloc(junk)
        if (rnd() < 0.5) for (let i = 0; i < junk; i++) bytes[i] = Math.floor(rnd() * 256)
        appendFileSync(file, bytes)
      }
      if (cut < buf.length || junk > 0) {
        touched = true
        summary.powerLossBytes += buf.length - cut
      }
    }
    if (touched) {
      summary.powerLosses++
      cleanBefore = false
    }
  }

  // ------------------------------------------------------------ verification

  function checkRecoveryShape(rec) {
    check(Array.isArray(rec), () => `wal.recovery is not an array: ${JSON.stringify(rec)}`)
    for (const r of rec) {
      check(r !== null && typeof r === 'object', () => `recovery entry is not an object: ${JSON.stringify(r)}`)
      const keys = Object.keys(r).sort().join(',')
      check(keys === 'partition,segment,truncatedBytes', () => `recovery entry has keys ${keys}: ${JSON.stringify(r)}`)
      check(isInt(r.partition) && r.partition >= 0 && r.partition <= 65535, () => `bad recovery partition ${JSON.stringify(r)}`)
      check(isInt(r.segment) && r.segment >= 1, () => `bad recovery segment ${JSON.stringify(r)}`)
      // 0 is legitimate only for an empty file removed (crash while creating a segment)
      check(isInt(r.truncatedBytes) && r.truncatedBytes >= 0, () => `bad recovery truncatedBytes ${JSON.stringify(r)}`)
    }
  }

  function checkBatchVsLast(b, last, first, where) {
    // Present records are [first, last] (dense). A batch [a, b] must not be split by
    // lastLsn, nor (purge deletes whole segments, a batch lives in one) by firstLsn.
    check(!(b.a <= last && last < b.b), () => `${where}: batch ${b.a}..${b.b} of partition ${b.p} (session ${b.round}) is torn: lastLsn ${last}`)
    if (first > 0 && last >= b.b) {
      check(!(b.a < first && first <= b.b), () => `${where}: batch ${b.a}..${b.b} of partition ${b.p} is split by firstLsn ${first}`)
    }
  }

  async function verify() {
    session++
    const me = session
    const before = listSegments(dir)
    const t1 = Date.now()
    const wal = await Wal.open(dir, { segmentSize: pick(SEGMENT_SIZES), sync: 'always' })
    const openMs = Date.now() - t1
    if (openMs > summary.maxOpenMs) summary.maxOpenMs = openMs
    let closed = false
    try {
      // ---- recovery: well-formed and exact
      const rec = wal.recovery
      checkRecoveryShape(rec)
      if (cleanBefore) check(rec.length === 0, () => `recovery after a clean close is ${JSON.stringify(rec)}`)
      const after = listSegments(dir)
      const cut = new Map()
      for (const r of rec) {
        const name = segName(r.partition, r.segment)
        check(before.has(name), () => `recovery names ${name}, which did not exist before open`)
        cut.set(name, (cut.get(name) ?? 0) + r.truncatedBytes)
        summary.recoveries++
        summary.truncatedBytes += r.truncatedBytes
        if (!after.has(name)) summary.removedSegments++
        else check(r.truncatedBytes > 0, () => `recovery reports 0 bytes cut from ${name}, which is still there: ${JSON.stringify(rec)}`)
      }
      for (const [name, size] of before) {
        const now = after.get(name) ?? 0
        const c = cut.get(name) ?? 0
        check(size - now === c, () => `${name}: ${size} bytes before open, ${now} after, but recovery reports ${c} bytes cut (recovery ${JSON.stringify(rec)})`)
      }
      for (const name of after.keys()) check(before.has(name), () => `open created ${name}`)

      // ---- partitions
      const partitions = wal.partitions()
      check(Array.isArray(partitions) && partitions.every((x, i) => isInt(x) && (i === 0 || partitions[i - 1] < x)), () => `partitions() not ascending: ${partitions}`)
      for (const p of PARTITIONS) {
        if (known.get(p).size > 0) check(partitions.includes(p), () => `partition ${p} has acknowledged records but is not in partitions() ${partitions}`)
      }

      const segsOf = new Map()
      for (const p of partitions) {
        check(PARTITIONS.includes(p), () => `unexpected partition ${p}`)
        const first = wal.firstLsn(p)
        const last = wal.lastLsn(p)
        check(isInt(first) && isInt(last) && first >= 0 && first <= last + 1, () => `partition ${p}: firstLsn ${first}, lastLsn ${last}`)
        if (last === 0) check(first === 0, () => `partition ${p}: empty but firstLsn ${first}`)
        else check(first >= 1, () => `partition ${p}: lastLsn ${last} but firstLsn 0`)

        // segments: consecutive indexes, last one active, sizes as on disk, LSN ranges chained
        const segs = wal.segments(p)
        segsOf.set(p, segs)
        check(segs.length > 0, () => `partition ${p}: no segments`)
        let expectFirst = first
        for (let i = 0; i < segs.length; i++) {
          const s = segs[i]
          check(s.file === segName(p, s.index), () => `partition ${p}: segment ${JSON.stringify(s)} file name`)
          if (i > 0) check(s.index === segs[i - 1].index + 1, () => `partition ${p}: segment indexes not consecutive: ${segs.map((x) => x.index)}`)
          check(s.active === (i === segs.length - 1), () => `partition ${p}: active flags ${segs.map((x) => x.active)}`)
          check(after.get(s.file) === s.bytes, () => `partition ${p}: ${s.file} bytes ${s.bytes} but on disk ${after.get(s.file)}`)
          // An empty segment (header only) reports either 0/0 or firstLsn = next LSN,
          // lastLsn = firstLsn - 1 (the facade's doc says 0; the engine gives the latter).
          const empty = s.bytes === SEGMENT_HEADER
          if (empty) {
            check(i === segs.length - 1, () => `partition ${p}: sealed segment ${s.file} is empty`)
            check((s.firstLsn === 0 && s.lastLsn === 0) || (s.lastLsn === s.firstLsn - 1 && s.lastLsn === last), () => `partition ${p}: empty segment ${JSON.stringify(s)}, lastLsn ${last}`)
          } else {
            if (expectFirst !== 0) check(s.firstLsn === expectFirst, () => `partition ${p}: ${s.file} firstLsn ${s.firstLsn}, expected ${expectFirst}`)
            check(s.lastLsn >= s.firstLsn && s.firstLsn >= 1, () => `partition ${p}: ${JSON.stringify(s)}`)
            expectFirst = s.lastLsn + 1
          }
        }
        const nonEmpty = segs.filter((s) => s.bytes !== SEGMENT_HEADER)
        if (last > 0 && nonEmpty.length > 0) check(nonEmpty.at(-1).lastLsn === last, () => `partition ${p}: segments end at ${nonEmpty.at(-1).lastLsn}, lastLsn ${last}`)
        if (first > 0) check(nonEmpty.length > 0 && nonEmpty[0].firstLsn === first, () => `partition ${p}: firstLsn ${first} but segments ${JSON.stringify(segs)}`)
        const fileNames = [...after.keys()].filter((n) => n.startsWith(`part_${p}_`))
        check(fileNames.length === segs.length, () => `partition ${p}: ${fileNames.length} files on disk, ${segs.length} in segments()`)

        // ---- every record: dense, valid payload, positions match the acks
        const k = known.get(p)
        const segByIndex = new Map(nonEmpty.map((s) => [s.index, s]))
        let expect = first
        let prevPos = [0, 0]
        const sample = []
        for await (const r of wal.stream(p)) {
          check(r.lsn === expect, () => `partition ${p}: stream gave lsn ${r.lsn}, expected ${expect} (firstLsn ${first}, lastLsn ${last})`)
          const rd = checkPayload(p, r.lsn, r.payload)
          const want = k.get(r.lsn)
          if (want !== undefined) {
            check(rd === want, () => `partition ${p} lsn ${r.lsn}: payload written by session ${rd}, but session ${want} wrote the surviving one`)
          } else {
            check(rd < me, () => `partition ${p} lsn ${r.lsn}: round ${rd} from the future`)
            summary.unackedSurvivors++
            k.set(r.lsn, rd)
          }
          const pos = ackPos.get(`${p}:${r.lsn}`)
          if (pos !== undefined) {
            check(pos[0] === r.segment && pos[1] === r.offset, () => `partition ${p} lsn ${r.lsn}: acked at ${pos}, read at ${r.segment},${r.offset}`)
          }
          const s = segByIndex.get(r.segment)
          check(s !== undefined && s.firstLsn <= r.lsn && r.lsn <= s.lastLsn, () => `partition ${p} lsn ${r.lsn}: segment ${r.segment} does not hold it ${JSON.stringify(s)}`)
          check(r.segment > prevPos[0] || (r.segment === prevPos[0] && r.offset > prevPos[1]), () => `partition ${p} lsn ${r.lsn}: position ${r.segment},${r.offset} not after ${prevPos}`)
          check(r.offset >= SEGMENT_HEADER && r.offset % 8 === 0 && r.offset + frameSize(r.payload.length) <= s.bytes, () => `partition ${p} lsn ${r.lsn}: offset ${r.offset} (payload ${r.payload.length} B) outside ${JSON.stringify(s)}`)
          prevPos = [r.segment, r.offset]
          if (sample.length < 3 || rnd() < 3 / (r.lsn - first + 1)) {
            if (sample.length >= 3) sample.splice(Math.floor(rnd() * 3), 1)
            sample.push({ lsn: r.lsn, segment: r.segment, offset: r.offset })
          }
          expect++
          summary.recordsChecked++
        }
        check(expect === last + 1 || (last === 0 && expect === first), () => `partition ${p}: stream ended before lsn ${expect}, lastLsn ${last}`)
        if (last - first + 1 > summary.maxRecords) summary.maxRecords = last - first + 1

        // acknowledged / previously seen records above the purge floor are all there
        const fl = floor.get(p)
        for (const [lsn, rd] of k) {
          if (lsn < fl) continue
          check(lsn >= first && lsn <= last, () => `partition ${p}: lsn ${lsn} (session ${rd}) lost: log is ${first}..${last}, purge floor ${fl}`)
        }
        // start positions from streamed records are valid `from` positions
        for (const s of sample) {
          const it = wal.stream(p, { from: { segment: s.segment, offset: s.offset } })
          const { value, done } = await it.next()
          await it.return()
          check(!done && value.lsn === s.lsn, () => `partition ${p}: stream from ${s.segment},${s.offset} starts at ${done ? 'end' : value.lsn}, expected ${s.lsn}`)
        }
        if (last > 0) {
          const x = first + Math.floor(rnd() * (last - first + 1))
          const it = wal.stream(p, { fromLsn: x })
          const { value, done } = await it.next()
          await it.return()
          check(!done && value.lsn === x, () => `partition ${p}: stream fromLsn ${x} starts at ${done ? 'end' : value.lsn}`)
        }
      }

      // ---- batches: whole or absent
      for (const b of pendingBatches) {
        const last = partitions.includes(b.p) ? wal.lastLsn(b.p) : 0
        const first = partitions.includes(b.p) ? wal.firstLsn(b.p) : 0
        checkBatchVsLast(b, last, first, 'reopen')
      }
      pendingBatches = []

      // ---- appending continues at lastLsn + 1, where the log ends
      const verifyParts = PARTITIONS.filter((p) => partitions.includes(p) || rnd() < 0.2)
      for (const p of verifyParts) {
        const last = wal.lastLsn(p)
        const segs = segsOf.get(p)
        const active = segs?.at(-1)
        const lsn = last + 1
        const payload = payloadFor(p, lsn, me)
        const r = await wal.append(p, rnd() < 0.5 ? payload : Buffer.from(payload))
        check(r.lsn === lsn, () => `partition ${p}: append after reopen got lsn ${r.lsn}, expected ${lsn}`)
        if (active !== undefined) {
          if (r.segment === active.index) {
            check(r.offset === active.bytes, () => `partition ${p}: append after reopen at ${r.segment},${r.offset}, but the log ends at ${active.index},${active.bytes}`)
          } else {
            check(r.segment === active.index + 1 && r.offset === SEGMENT_HEADER, () => `partition ${p}: append after reopen at ${r.segment},${r.offset}; active was ${JSON.stringify(active)}`)
            // every payload here fits an empty segment of any size we use
            check(active.bytes > SEGMENT_HEADER, () => `partition ${p}: rotated away from an empty active segment ${JSON.stringify(active)}`)
          }
        }
        known.get(p).set(lsn, me)
        check(wal.lastLsn(p) === lsn, () => `partition ${p}: lastLsn ${wal.lastLsn(p)} after acked append ${lsn}`)
        if (rnd() < 0.3) {
          const n = 1 + Math.floor(rnd() * 5)
          const payloads = []
          for (let i = 0; i < n; i++) payloads.push(payloadFor(p, lsn + 1 + i, me))
          const br = await wal.appendBatch(p, payloads)
          check(br.firstLsn === lsn + 1 && br.lastLsn === lsn + n && br.count === n, () => `partition ${p}: batch after reopen ${JSON.stringify(br)}`)
          for (let i = 0; i < n; i++) known.get(p).set(lsn + 1 + i, me)
        }
      }

      // ---- keep the directory bounded: purge old segments now and then
      const stats = wal.stats()
      for (const ps of stats.partitions) {
        const p = ps.partition
        if (ps.bytes > 1 << 20 || (rnd() < 0.05 && ps.segments > 2)) {
          const minLsn = Math.max(1, ps.lastLsn - Math.floor(rnd() * 400))
          const firstBefore = wal.firstLsn(p)
          const bytesBefore = wal.segments(p).reduce((a, s) => a + s.bytes, 0)
          const pr = await wal.purgeBefore(p, minLsn)
          const bytesAfter = wal.segments(p).reduce((a, s) => a + s.bytes, 0)
          check(
            isInt(pr.segmentsDeleted) && isInt(pr.bytesFreed) && pr.firstLsn === wal.firstLsn(p) && pr.firstLsn <= Math.max(minLsn, firstBefore) && pr.firstLsn >= firstBefore && bytesBefore - bytesAfter === pr.bytesFreed,
            () => `partition ${p}: purgeBefore(${minLsn}) gave ${JSON.stringify(pr)}, firstLsn ${firstBefore} -> ${wal.firstLsn(p)}, bytes ${bytesBefore} -> ${bytesAfter}`,
          )
          summary.purgesByVerifier++
        }
      }
      // forget what is purged; the rest must stay forever
      for (const p of PARTITIONS) {
        const first = partitions.includes(p) || known.get(p).size > 0 ? wal.firstLsn(p) : 0
        const k = known.get(p)
        for (const lsn of k.keys()) if (lsn < first) k.delete(lsn)
        floor.set(p, first)
      }
      ackPos = new Map()
      expectedLast = new Map(PARTITIONS.map((p) => [p, wal.lastLsn(p)]))
      for (const p of PARTITIONS) if (expectedLast.get(p) > maxAcked.get(p)) maxAcked.set(p, expectedLast.get(p))
      await wal.close()
      closed = true
      cleanBefore = true
    } finally {
      if (!closed) await wal.close().catch(() => {})
    }
  }
}

// ---------------------------------------------------------------- the child

/**
 * Spawns the writer and ends it per `mode`:
 *  spawn    SIGKILL 0..80 ms after spawn (maybe before or during open)
 *  early    SIGKILL 0..10 ms after the writer opened
 *  acks     SIGKILL when the n-th acknowledgement arrives (n random up to 600)
 *  timed    SIGKILL 5..700 ms after the writer opened
 *  rotation SIGKILL right after an acknowledgement from a new segment
 *  stop     ask it to stop; it completes its appends, closes and exits 0
 */
function runWriter(cfg, mode, rnd) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] })
    const res = { killed: false, opened: undefined, acks: [], batchAcks: 0, batchIntents: [], purgeIntents: [], errors: [], closed: false }
    let buf = ''
    let stderr = ''
    let timer
    let killed = false
    const ackTarget = 1 + Math.floor(rnd() * 600)
    const rotationAfter = Math.floor(rnd() * 4)
    let rotations = 0
    const lastSeg = new Map()
    const kill = () => {
      if (killed) return
      killed = true
      res.killed = true
      clearTimeout(timer)
      child.kill('SIGKILL')
    }
    const watchdog = setTimeout(() => {
      res.errors.push(`writer did not finish (mode ${mode}); stderr: ${stderr}`)
      kill()
    }, 30000)
    if (mode === 'spawn') timer = setTimeout(kill, Math.floor(rnd() * 80))
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.stdin.on('error', () => {})
    const onLine = (line) => {
      const [tag, ...f] = line.split(' ')
      switch (tag) {
        case 'O': {
          res.opened = JSON.parse(line.slice(2))
          if (mode === 'early') timer = setTimeout(kill, Math.floor(rnd() * 10))
          else if (mode === 'timed') timer = setTimeout(kill, 5 + Math.floor(rnd() * 700))
          else if (mode === 'stop') timer = setTimeout(() => child.stdin.write('stop\n'), 20 + Math.floor(rnd() * 300))
          else if (mode === 'acks' || mode === 'rotation') timer = setTimeout(kill, 3000) // backstop
          break
        }
        case 'A': {
          const [p, lsn, seg, off] = f.map(Number)
          res.acks.push([p, lsn, cfg.round, seg, off])
          if (mode === 'acks' && res.acks.length >= ackTarget) kill()
          if (mode === 'rotation') {
            const prev = lastSeg.get(p)
            lastSeg.set(p, seg)
            if (prev !== undefined && seg !== prev && rotations++ >= rotationAfter) kill()
          }
          break
        }
        case 'B': {
          const [p, a, b] = f.map(Number)
          for (let lsn = a; lsn <= b; lsn++) res.acks.push([p, lsn, cfg.round])
          res.batchAcks++
          if (mode === 'acks' && res.acks.length >= ackTarget) kill()
          break
        }
        case 'I': {
          const [p, a, b] = f.map(Number)
          res.batchIntents.push({ p, a, b, round: cfg.round })
          break
        }
        case 'P': {
          const [p, m] = f.map(Number)
          res.purgeIntents.push([p, m])
          break
        }
        case 'Q':
          break
        case 'C':
          res.closed = true
          break
        case 'E':
          res.errors.push(f.join(' '))
          break
        default:
          res.errors.push(`unexpected line from writer: ${JSON.stringify(line)}`)
      }
    }
    child.stdout.on('data', (d) => {
      buf += d
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        onLine(line)
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      clearTimeout(watchdog)
      // A partial last line is a report that did not fully arrive: not counted.
      if (killed) {
        if (signal !== 'SIGKILL' && code !== 0) res.errors.push(`writer exited with ${code}/${signal} before the kill; stderr: ${stderr}`)
      } else if (code !== 0 || !res.closed) {
        res.errors.push(`writer exited with code ${code}, signal ${signal}, closed ${res.closed} (mode ${mode}); stderr: ${stderr}`)
      }
      resolve(res)
    })
  })
}
