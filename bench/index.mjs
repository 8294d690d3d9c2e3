#!/usr/bin/env node
// `npm run bench [-- options]`: segwal and its peers (lmdb-js, classic-level, node:fs, raw
// blocking writes) measured in the same run, interleaved, medians of several runs.
// See `npm run bench -- --help`. Timings never go in tests; this is the only place.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { MiB, cleanup, fmtNum, logGaps, onlySystems, scratchRoot, settle, table } from './lib.mjs'
import { loadLevel, loadLmdb, loadSegwal } from './peers.mjs'
import { WORKLOADS, params, runChild } from './workloads.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.join(HERE, '..')

function usage() {
  const names = Object.entries(WORKLOADS)
    .map(([k, v]) => `    ${k.padEnd(10)} ${v.about}`)
    .join('\n')
  return `segwal benchmark: segwal vs lmdb-js, classic-level, node:fs and raw blocking writes

usage: npm run bench -- [options]        (or: node bench/index.mjs [options])

  --quick             small sizes and short time boxes (whole run under about 60 s)
                      full mode (the default) takes several minutes and ~12 GiB of disk
  --json              print one JSON document on stdout (tables go to stderr)
  --only a,b,...      run only these workloads (names below)
  --systems a,b,...   run only the systems (rows) whose name contains one of these; a
                      diagnosis: a target that needs a missing row shows NaN
  --runs N            runs per system (default 5 full, 3 quick; interleaved A B C A B C)
  --gaps              log every event-loop gap over 5 ms as it happens, with its run and
                      the V8 collection inside it (issue #11 target 8)
  --open-gib N        size of the big WAL of the open workload (default 10 in full mode,
                      0.125 in quick mode; scaled down if the disk lacks space)
  --engine-json FILE  results of 'cargo bench -p segwal-core --bench wal_throughput'
                      (default target/bench-results/wal_throughput.json)
  --help              this text

workloads (in run order; every row also reports the largest event-loop gap seen by a 1 ms
setInterval during that run):
${names}

Scratch files go to a directory under ${os.tmpdir()} that is removed at the end.
`
}

function parse(argv) {
  const o = { quick: false, json: false, only: null, runs: null, openGiB: null, engineJson: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--help' || a === '-h') o.help = true
    else if (a === '--quick') o.quick = true
    else if (a === '--full') o.quick = false
    else if (a === '--json') o.json = true
    else if (a === '--only') o.only = val().split(',').map((s) => s.trim()).filter(Boolean)
    else if (a === '--runs') o.runs = Math.max(1, parseInt(val(), 10))
    else if (a === '--gaps') o.gaps = true
    else if (a === '--systems') onlySystems(val().split(',').map((s) => s.trim()).filter(Boolean))
    else if (a === '--open-gib') o.openGiB = parseFloat(val())
    else if (a === '--engine-json') o.engineJson = val()
    else throw new Error(`unknown option ${a} (see --help)`)
  }
  if (o.only) {
    const bad = o.only.filter((n) => !WORKLOADS[n])
    if (bad.length) throw new Error(`unknown workload(s) ${bad.join(', ')}; known: ${Object.keys(WORKLOADS).join(', ')}`)
  }
  return o
}

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return null
  }
}

function version(pkg) {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

function machine() {
  const cpu = (() => {
    try {
      const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m)
      if (m) return m[1]
    } catch {}
    return os.cpus()[0]?.model
  })()
  const df = sh('df', ['-T', '-h', scratchRoot()])?.split('\n')[1]?.split(/\s+/)
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    kernel: `${os.type()} ${os.release()}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    tmpdir: os.tmpdir(),
    filesystem: df ? `${df[1]} on ${df[0]} (${df[2]}, ${df[4]} free)` : 'unknown',
    node: process.version,
    segwal: version('..') ?? JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
    git: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    lmdb: version('lmdb'),
    classicLevel: version('classic-level'),
  }
}

async function main() {
  const argv = process.argv.slice(2)
  if (argv[0] === '--child') {
    const res = await runChild(argv[1], JSON.parse(argv[2]))
    cleanup()
    process.stdout.write(JSON.stringify(res) + '\n')
    return
  }
  let o
  try {
    o = parse(argv)
  } catch (e) {
    console.error(e.message)
    process.exitCode = 2
    return
  }
  if (o.help) {
    process.stdout.write(usage())
    return
  }
  const out = o.json ? (s) => process.stderr.write(s + '\n') : (s) => process.stdout.write(s + '\n')
  const log = (s) => process.stderr.write(s + '\n')
  if (!loadSegwal()) {
    log(`segwal could not be loaded (${loadSegwal.error?.message}); build it first: npm run build`)
    process.exitCode = 1
    return
  }
  const lmdb = await loadLmdb()
  const level = await loadLevel()
  if (!lmdb) log(`lmdb is not installed (${loadLmdb.error?.message}); its rows are skipped (npm install)`)
  if (!level) log(`classic-level is not installed (${loadLevel.error?.message}); its rows are skipped (npm install)`)

  if (o.gaps) logGaps(5, log)
  // The first toLocaleString loads ICU's number formatting: 19-30 ms of the JS thread here,
  // which landed in the loop-gap window of whichever run formatted a number first (durable1's
  // first segwal run, when run alone). Paid once now, outside every window; not in the
  // memory workloads' child processes, whose RSS it would raise by ~7 MiB.
  fmtNum(1234.5, 1)
  const P = params(o.quick, o)
  P.quick = o.quick
  const ctx = {
    P,
    log,
    targets: [],
    shared: {},
    engineJson: o.engineJson ?? path.join(ROOT, 'target', 'bench-results', 'wal_throughput.json'),
  }
  const info = machine()
  out(`# segwal benchmark (${o.quick ? 'quick' : 'full'} mode, ${P.runs} interleaved runs per system, medians)`)
  out(
    `${info.date}  ${info.nproc} CPUs (${info.cpu}), ${info.memory} RAM, ${info.kernel}\n` +
      `scratch: ${info.tmpdir}: ${info.filesystem}\nnode ${info.node}, segwal ${info.segwal} (${info.git}), lmdb ${info.lmdb}, classic-level ${info.classicLevel}`,
  )
  // A workload marked `fullOnly` would break quick mode's time box: named with --only, it runs.
  const names = o.only ?? Object.keys(WORKLOADS).filter((k) => !(o.quick && WORKLOADS[k].fullOnly))
  const results = {}
  const t0 = Date.now()
  const onSignal = () => {
    cleanup()
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    for (const name of names) {
      const ts = Date.now()
      log(`[${((ts - t0) / 1000).toFixed(0)} s] ${name}: ${WORKLOADS[name].about}`)
      if (o.gaps) {
        // What earlier workloads left live: a bigger heap makes every later full collection longer.
        await settle()
        const m = process.memoryUsage()
        log(`  live JS heap ${(m.heapUsed / MiB).toFixed(1)} MiB, external ${(m.external / MiB).toFixed(1)} MiB${reclaimText()}`)
      }
      try {
        const r = await WORKLOADS[name].run(ctx)
        results[name] = { rows: r.rows, seconds: (Date.now() - ts) / 1000, ...(r.engine ? { engine: r.engine } : {}) }
        out(r.text)
      } catch (e) {
        log(`${name} failed: ${e?.stack || e}`)
        results[name] = { error: String(e?.message || e) }
        out(`\n## ${name}: FAILED: ${e?.message || e}`)
      }
    }
  } finally {
    cleanup()
  }
  const fmtV = (t) => (t.value == null ? '-' : t.unit === 'ms' ? t.value.toFixed(2) + ' ms' : t.unit === 'x' ? t.value.toFixed(2) + 'x' : t.unit === 'MiB' ? t.value.toFixed(0) + ' MiB' : t.unit === 'GB/s' ? t.value.toFixed(2) + ' GB/s' : fmtNum(t.value))
  out(
    table('Targets (issue #3)', ctx.targets, [
      ['workload', (t) => t.workload, 'l'],
      ['metric', (t) => t.metric, 'l'],
      ['measured', fmtV],
      ['target', (t) => t.goal],
      ['', (t) => (t.pass == null ? '?' : t.pass ? 'ok' : 'MISS'), 'l'],
    ]),
  )
  const secs = (Date.now() - t0) / 1000
  out(`\ntotal ${secs.toFixed(1)} s`)
  if (o.json) {
    process.stdout.write(
      JSON.stringify({ mode: o.quick ? 'quick' : 'full', machine: info, params: P, seconds: secs, workloads: results, targets: ctx.targets }, null, 1) + '\n',
    )
  }
}

main().catch((e) => {
  cleanup()
  console.error(e?.stack || e)
  process.exit(1)
})

/** Direct reclaim and compaction stalls so far (Linux, `--gaps`): allocations that waited for the kernel. */
function reclaimText() {
  try {
    const v = Object.fromEntries(
      fs
        .readFileSync('/proc/vmstat', 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' ')),
    )
    const stalls = Object.keys(v).filter((k) => k.startsWith('allocstall_')).reduce((a, k) => a + Number(v[k]), 0)
    return `; machine: ${stalls} direct-reclaim stalls, ${v.compact_stall} compaction stalls, ${Math.round(Number(v.nr_free_pages) / 256)} MiB free`
  } catch {
    return ''
  }
}
