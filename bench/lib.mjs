// Measurement helpers shared by the workloads: statistics, the event-loop gap monitor,
// time-boxed loops, temporary directories and table printing. No workload logic here.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { PerformanceObserver, constants as perfConstants, performance } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

export const now = () => performance.now()

/** `for await` over records (`payload` Buffers): `[records, payload bytes]`. */
export async function sumRecords(records) {
  let n = 0
  let b = 0
  for await (const r of records) {
    n++
    b += r.payload.length
  }
  return [n, b]
}

/** `for await` over `RecordBatch`es, lengths summed per batch: `[records, payload bytes]`. */
export async function sumBatches(batches) {
  let n = 0
  let b = 0
  for await (const batch of batches) {
    n += batch.count
    const lengths = batch.lengths
    for (let i = 0; i < batch.count; i++) b += lengths[i]
  }
  return [n, b]
}

export function median(xs) {
  const v = xs.filter((x) => x != null && !Number.isNaN(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

/** Latencies in ms, kept in a growable Float64Array (millions of samples stay cheap). */
export class Latencies {
  constructor(cap = 1 << 16) {
    this.a = new Float64Array(cap)
    this.n = 0
  }
  add(ms) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2)
      b.set(this.a)
      this.a = b
    }
    this.a[this.n++] = ms
  }
  /**
   * Sorting 100k+ samples takes the JS thread 20-35 ms: the benchmark's own work, so it is
   * left out of the loop gap of the run that calls it (it used to be that row's largest gap).
   */
  summary() {
    const paused = active?.paused
    pauseGap()
    const s = this.a.slice(0, this.n).sort()
    if (!paused) resumeGap()
    return { p50: percentile(s, 50), p99: percentile(s, 99), p999: percentile(s, 99.9), max: s.length ? s[s.length - 1] : null, n: this.n }
  }
}

/**
 * The largest gap between two ticks of a 1 ms setInterval while a workload runs: how long
 * the event loop was unable to run a timer (ideally ~1 ms; a blocking call shows up here).
 * Also how much of that gap V8's collector took (`gcMs`, `gcKind`): issue #11 target 8
 * counts the collections a library's allocations cause, and this says which gaps they are.
 */
export class LoopGap {
  start() {
    this.max = 0
    this.maxFrom = 0
    this.last = now()
    this.paused = false
    if (gapLog) this.sched = jsThreadSched()
    this.timer = setInterval(() => this.#tick(now()), 1)
    active = this
    gcWatch.observe({ entryTypes: ['gc'] })
    gcEntries.length = 0
    return this
  }
  #tick(t) {
    const gap = t - this.last
    if (gap > this.max) {
      this.max = gap
      this.maxFrom = this.last
    }
    if (gapLog) {
      const sched = jsThreadSched()
      if (gap > gapLog.overMs) {
        const ran = (sched.ran - this.sched.ran) / 1e6
        const waited = (sched.waited - this.sched.waited) / 1e6
        gapLog.log(
          `  loop gap ${gap.toFixed(1)} ms: JS thread ran ${ran.toFixed(1)}, waited for a CPU ${waited.toFixed(1)}, ` +
            `slept ${Math.max(0, gap - ran - waited).toFixed(1)}, ${sched.faults - this.sched.faults} page faults${gcText(this.last, t)}`,
        )
      }
      this.sched = sched
    }
    this.last = t
  }
  stop() {
    clearInterval(this.timer)
    if (!this.paused) this.#tick(now())
    if (active === this) active = null
    gcEntries.push(...gcWatch.takeRecords())
    gcWatch.disconnect()
    const gc = gcWithin(this.maxFrom, this.maxFrom + this.max)
    this.gcMs = gc.ms
    this.gcKind = gc.kind
    return this.max
  }
}

// V8's collections while a LoopGap runs (PerformanceObserver delivers them a turn late,
// so `stop()` takes the rest with `takeRecords()`).
const gcEntries = []
const gcWatch = new PerformanceObserver((list) => gcEntries.push(...list.getEntries()))
const GC_KINDS = {
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
}

/** Milliseconds of collection inside [from, to], and the longest one's kind. */
function gcWithin(from, to) {
  let ms = 0
  let longest = null
  for (const e of gcEntries) {
    const overlap = Math.min(to, e.startTime + e.duration) - Math.max(from, e.startTime)
    if (overlap <= 0) continue
    ms += overlap
    if (!longest || e.duration > longest.duration) longest = e
  }
  return { ms, kind: longest ? (GC_KINDS[longest.detail?.kind ?? longest.kind] ?? 'gc') : null }
}

function gcText(from, to) {
  const gc = gcWithin(from, to)
  return gc.ms > 0 ? ` (${gc.ms.toFixed(1)} ms of it V8's ${gc.kind})` : ''
}

/**
 * The JS thread's time on a CPU and waiting in a run queue so far (ns, Linux schedstat):
 * a gap the thread spent running is work on the loop; one spent waiting is the machine's
 * (other threads, the VM); the rest it slept (a lock, a blocking call).
 */
function jsThreadSched() {
  try {
    const [ran, waited] = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number)
    // minflt and majflt: a gap full of faults is the kernel's (fresh pages, reclaim), not JS.
    const stat = fs.readFileSync('/proc/thread-self/stat', 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { ran, waited, faults: Number(f[7]) + Number(f[9]) }
  } catch {
    return { ran: NaN, waited: NaN, faults: NaN }
  }
}

/** `--gaps`: log every loop gap longer than `overMs` as it happens (with the GC inside). */
let gapLog = null
export function logGaps(overMs, log) {
  gapLog = { overMs, log }
}

let active = null
/**
 * Around a synchronous loop of the benchmark's own (firing 100k appends in one turn), so the
 * gap reported is what the library blocks, not the caller's loop. Only used where a table says so.
 */
export function pauseGap() {
  if (active) active.paused = true
}
export function resumeGap() {
  if (active) {
    active.paused = false
    active.last = now()
  }
}

setFlagsFromString('--expose-gc')
const fullGc = runInNewContext('gc')

/**
 * Between runs, so one run's tail does not leak into the next: collects the garbage
 * the previous system left (interleaved runs otherwise pay for each other's: a 1 GiB
 * lmdb getRange leaves 262k dead ArrayBuffers that V8 sweeps during the next run),
 * then lets pending timers, I/O callbacks and V8's concurrent sweeping finish.
 */
export const settle = () => {
  for (const p of doomed.splice(0)) rmNow(p)
  // The second collection first completes the sweeping of the first (V8 sweeps
  // ArrayBuffers concurrently, which would otherwise run during the next system's run).
  fullGc()
  fullGc()
  return new Promise((r) => setTimeout(r, 20))
}

/**
 * `concurrency` async loops, each awaiting `op(loopId)` until `seconds` have passed.
 * Returns ops done, the elapsed seconds and (if `latency`) per-op latency percentiles.
 */
export async function timedLoops(concurrency, seconds, op, { latency = true } = {}) {
  const lat = latency ? new Latencies() : null
  let ops = 0
  const t0 = now()
  const deadline = t0 + seconds * 1000
  const loop = async (id) => {
    while (now() < deadline) {
      const s = now()
      await op(id)
      if (lat) lat.add(now() - s)
      ops++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)))
  return { ops, seconds: (now() - t0) / 1000, lat: lat?.summary() }
}

/** A synchronous tight loop (the 'raw' baselines), time-boxed like `timedLoops`. */
export function timedSyncLoop(seconds, op) {
  const lat = new Latencies()
  let ops = 0
  const t0 = now()
  const deadline = t0 + seconds * 1000
  while (now() < deadline) {
    const s = now()
    op()
    lat.add(now() - s)
    ops++
  }
  return { ops, seconds: (now() - t0) / 1000, lat: lat.summary() }
}

// ------------------------------------------------------------------ temporary directories

let root = null

/** The run's scratch root under os.tmpdir() (same disk as /tmp); removed by `cleanup`. */
export function scratchRoot() {
  if (!root) root = fs.mkdtempSync(path.join(os.tmpdir(), 'segwal-bench-'))
  return root
}

let seq = 0
export function tmpDir(name) {
  const d = path.join(scratchRoot(), `${name}-${++seq}`)
  fs.mkdirSync(d, { recursive: true })
  return d
}

/** Scratch paths to delete at the next settle() (see rm). */
const doomed = []

/**
 * Deletes a scratch path at the next settle(), outside any timed run: deleting a
 * just-written GiB waits for its writeback and blocked the loop for up to a second
 * inside the loop-gap window of the run that wrote it.
 */
export function rm(p) {
  doomed.push(p)
}

function rmNow(p) {
  fs.rmSync(p, { recursive: true, force: true })
}

export function cleanup() {
  for (const p of doomed.splice(0)) rmNow(p)
  if (root) rmNow(root)
  root = null
}

export function dirBytes(d) {
  let n = 0
  for (const f of fs.readdirSync(d)) {
    const st = fs.statSync(path.join(d, f))
    if (st.isFile()) n += st.size
  }
  return n
}

export function freeBytes(p) {
  const s = fs.statfsSync(p)
  return s.bavail * s.bsize
}

// ------------------------------------------------------------------ interleaving

let selected = null
/** `--systems`: run only the systems whose name contains one of these (a diagnosis: rows go missing). */
export function onlySystems(words) {
  selected = words
}

/**
 * Runs every system `runs` times, interleaved (A B C A B C ...), each run under a fresh
 * event-loop gap monitor. `system.run(runIndex)` resolves to
 * `{ ops, bytes, seconds, lat?, extra? }`; rows aggregate medians over the runs.
 */
export async function interleave(systems, runs, log) {
  const results = systems.map(() => [])
  if (selected) for (const s of systems) if (!selected.some((w) => s.name.includes(w))) s.skip ??= 'not selected (--systems)'
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < systems.length; i++) {
      const s = systems[i]
      if (s.skip) continue
      await settle()
      gapLog?.log(`  ${s.name}, run ${r + 1}:`)
      const gap = new LoopGap().start()
      let res
      try {
        res = await s.run(r)
      } catch (e) {
        gap.stop()
        log?.(`  ${s.name}: failed: ${e?.stack || e}`)
        s.skip = `failed: ${e?.code || ''} ${e?.message || e}`.trim()
        continue
      }
      res.gap = gap.stop()
      res.gapGc = { ms: gap.gcMs, kind: gap.gcKind }
      results[i].push(res)
    }
  }
  return systems.map((s, i) => aggregate(s, results[i]))
}

export function aggregate(s, rs) {
  if (rs.length === 0) return { system: s.name, note: s.skip || 'no runs', runs: 0 }
  const pick = (f) => median(rs.map(f))
  return {
    system: s.name,
    runs: rs.length,
    opsPerSec: pick((r) => (r.ops != null ? r.ops / r.seconds : null)),
    mbPerSec: pick((r) => (r.bytes != null ? r.bytes / MiB / r.seconds : null)),
    p50: pick((r) => r.lat?.p50),
    p99: pick((r) => r.lat?.p99),
    maxGapMs: Math.max(...rs.map((r) => r.gap)),
    // V8's collection inside that largest gap (see LoopGap).
    maxGapGc: rs.reduce((a, b) => (b.gap > a.gap ? b : a)).gapGc,
    medianGapMs: median(rs.map((r) => r.gap)),
    seconds: pick((r) => r.seconds),
    extra: rs[Math.floor(rs.length / 2)].extra,
    runsOps: rs.map((r) => (r.ops != null ? Math.round(r.ops / r.seconds) : null)),
    note: s.note,
  }
}

// ------------------------------------------------------------------ formatting

export function fmtNum(x, digits = 0) {
  if (x == null || Number.isNaN(x)) return '-'
  if (Math.abs(x) >= 1e6 && digits === 0) return (x / 1e6).toFixed(2) + 'M'
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

export function fmtMs(x) {
  if (x == null || Number.isNaN(x)) return '-'
  if (x < 1) return (x * 1000).toFixed(0) + ' µs'
  if (x < 100) return x.toFixed(2) + ' ms'
  return x.toFixed(0) + ' ms'
}

export function fmtBytes(n) {
  if (n == null) return '-'
  if (n >= GiB) return (n / GiB).toFixed(2) + ' GiB'
  if (n >= MiB) return (n / MiB).toFixed(1) + ' MiB'
  if (n >= KiB) return (n / KiB).toFixed(1) + ' KiB'
  return n + ' B'
}

/** Plain text table; `cols` are [header, (row) => string, align]. */
export function table(title, rows, cols) {
  const cells = rows.map((r) => cols.map((c) => String(c[1](r) ?? '-')))
  const w = cols.map((c, i) => Math.max(c[0].length, ...cells.map((r) => r[i].length)))
  const line = (vals) => vals.map((v, i) => (cols[i][2] === 'l' ? v.padEnd(w[i]) : v.padStart(w[i]))).join('  ')
  const out = [`\n## ${title}`, line(cols.map((c) => c[0])), w.map((n) => '-'.repeat(n)).join('  '), ...cells.map(line)]
  return out.map((l) => l.trimEnd()).join('\n')
}

/** The standard columns: system, ops/s, MB/s, p50/p99, max loop gap, segwal ratio. */
export function throughputTable(title, rows, { ratioOf = 'segwal', latency = true, mb = true } = {}) {
  const ref = rows.find((r) => r.system.startsWith(ratioOf) && r.opsPerSec)
  const cols = [
    ['system', (r) => r.system, 'l'],
    ['ops/s', (r) => fmtNum(r.opsPerSec)],
  ]
  if (mb) cols.push(['MiB/s', (r) => fmtNum(r.mbPerSec, 1)])
  if (latency) {
    cols.push(['p50', (r) => fmtMs(r.p50)])
    cols.push(['p99', (r) => fmtMs(r.p99)])
  }
  cols.push(['max loop gap', (r) => fmtMs(r.maxGapMs)])
  cols.push([
    'segwal ×',
    (r) => (ref && r.opsPerSec ? (r === ref ? '1.00' : (ref.opsPerSec / r.opsPerSec).toFixed(2)) : '-'),
  ])
  cols.push(['notes', (r) => [r.note, r.extra?.text].filter(Boolean).join('; '), 'l'])
  return table(title, rows, cols)
}

/** Opens a store in a fresh scratch directory, runs `use` on it, then closes it and deletes the directory. */
export async function inScratch(tag, open, use) {
  const dir = tmpDir(tag)
  const store = await open(dir)
  try {
    return await use(store)
  } finally {
    await store.close()
    rm(dir)
  }
}

/**
 * Rounds of `R` operations until `seconds` are over: `fire()` is the synchronous turn that
 * issues them (left out of the loop-gap figure and reported apart), its promise what the
 * round waits for. `bytes` counts `recBytes` per operation.
 */
export async function firedRounds(seconds, R, recBytes, fire) {
  let ops = 0
  let fireMax = 0
  const t0 = now()
  const deadline = t0 + seconds * 1000
  do {
    pauseGap()
    const f0 = now()
    const done = fire()
    fireMax = Math.max(fireMax, now() - f0)
    resumeGap()
    await done
    ops += R
  } while (now() < deadline)
  return { ops, bytes: ops * recBytes, seconds: (now() - t0) / 1000, extra: { fireMs: fireMax, text: `firing turn ${fmtMs(fireMax)}` } }
}
