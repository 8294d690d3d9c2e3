#!/usr/bin/env node
// segwal command line: inspect, verify and dump a WAL directory, and run the bundled
// benchmark.
//
//   segwal inspect <dir> [--json]
//   segwal verify <dir> [--json] [--no-progress]
//   segwal dump <dir> --partition <n> [--from <lsn>] [--limit <k>] [--raw]
//   segwal bench [benchmark options...]
//
// inspect/verify/dump never open the WAL: they take no lock, cut no torn tail and
// replay nothing (the engine's read-only `inspect` module), so they are safe next to a
// live writer. Exit codes: 0 success (verify: no damage), 1 damage found or an error
// (I/O, unreadable directory), 2 wrong usage (help printed on stderr).

import { spawn } from 'node:child_process'
import { isUtf8 } from 'node:buffer'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError, InvalidArgumentError } from 'commander'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

const EXIT_OK = 0
const EXIT_FAIL = 1
const EXIT_USAGE = 2

/** A failure to report on stderr with an exit code (no stack trace). */
class CliError extends Error {
  constructor(message, exitCode = EXIT_FAIL) {
    super(message)
    this.exitCode = exitCode
  }
}

// ---------------------------------------------------------------------------
// the native addon (loaded only by the commands that need it, so help and usage
// errors work without a build)

let nativeBinding
function native() {
  if (!nativeBinding) {
    try {
      nativeBinding = require('node-gyp-build')(root)
    } catch (e) {
      throw new CliError(`cannot load the native addon (${e.message}); build it with \`npm run build\``)
    }
    for (const f of ['inspectDir', 'verifyStart', 'verifyRun', 'verifyProgress', 'dumpOpen', 'dumpNext', 'dumpRelease']) {
      if (typeof nativeBinding[f] !== 'function') {
        throw new CliError(`the native addon is out of date (no ${f}); rebuild it with \`npm run build\``)
      }
    }
  }
  return nativeBinding
}

/** An error from the addon (a `WAL_*` code among its properties) as a CliError with a readable message. */
function engineError(e) {
  if (typeof e?.code !== 'string' || !e.code.startsWith('WAL_')) return e
  const err = new CliError(`${e.code}: ${e.message}`)
  for (const k of ['code', 'file', 'offset', 'errno']) if (e[k] != null) err[k] = e[k]
  return err
}

async function call(promise) {
  try {
    return await promise
  } catch (e) {
    throw engineError(e)
  }
}

function checkDir(dir) {
  const abs = resolve(dir)
  if (!existsSync(abs)) throw new CliError(`no such directory: ${dir}`)
  return abs
}

// ---------------------------------------------------------------------------
// output helpers

/** Writes to stdout, waiting when the pipe is full; a closed pipe (`| head`) ends quietly. */
let stdoutClosed = false
const waiting = new Set()
function write(chunk) {
  if (stdoutClosed || process.stdout.write(chunk)) return Promise.resolve()
  return new Promise((done) => {
    const finish = () => {
      process.stdout.off('drain', finish)
      waiting.delete(finish)
      done()
    }
    waiting.add(finish)
    process.stdout.on('drain', finish)
  })
}
process.stdout.on('error', (e) => {
  if (e.code !== 'EPIPE') throw e
  stdoutClosed = true
  for (const finish of [...waiting]) finish()
})

function humanBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`
}

/** Left-aligned text columns, right-aligned numbers, two spaces apart. */
function table(head, rows) {
  const all = [head, ...rows].map((r) => r.map((c) => String(c ?? '-')))
  const width = head.map((_, i) => Math.max(...all.map((r) => r[i].length)))
  const numeric = head.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] == null))
  return all
    .map((r) =>
      r
        .map((c, i) => (numeric[i] ? c.padStart(width[i]) : i === r.length - 1 ? c : c.padEnd(width[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

const orNull = (v) => (v === undefined ? null : v)

function problemJson(p) {
  if (!p) return null
  return { kind: p.kind, file: p.file, offset: p.offset, reason: p.reason, tornBytes: p.tornBytes }
}

function partitionJson(p) {
  return {
    partition: p.partition,
    firstLsn: p.firstLsn,
    lastLsn: p.lastLsn,
    records: p.records,
    bytes: p.bytes,
    pendingTruncation: p.pendingTruncation,
    problems: p.problems.map(problemJson),
    segments: p.segments.map((s) => ({
      index: s.index,
      file: s.file,
      firstLsn: orNull(s.firstLsn),
      lastLsn: orNull(s.lastLsn),
      records: s.records,
      bytes: s.bytes,
      createdMs: orNull(s.createdMs),
      newest: s.newest,
      spare: s.spare,
      checked: s.checked,
      problem: problemJson(s.problem),
    })),
  }
}

function describeProblem(p) {
  if (p.kind === 'torn-tail') {
    return `torn tail: ${p.tornBytes} bytes at offset ${p.offset} of ${p.file} (${p.reason}); the next open cuts it`
  }
  return `DAMAGE in ${p.file} at offset ${p.offset}: ${p.reason}`
}

function segmentStatus(s) {
  if (s.problem?.kind === 'corruption') return `DAMAGED at ${s.problem.offset}: ${s.problem.reason}`
  if (s.problem?.kind === 'torn-tail') return `torn tail: ${s.problem.tornBytes} bytes at ${s.problem.offset}`
  if (s.spare) return 'spare (created ahead, unused)'
  if (s.firstLsn == null) return 'not checked (after damage)'
  return s.newest ? 'newest' : 'sealed'
}

function lsnRange(first, last) {
  return last >= first && first > 0 ? `${first}..${last}` : 'empty'
}

// ---------------------------------------------------------------------------
// commands

async function inspectCommand(dir, opts) {
  const abs = checkDir(dir)
  const parts = await call(native().inspectDir(abs))
  if (opts.json) {
    await write(JSON.stringify({ dir: abs, partitions: parts.map(partitionJson) }, null, 2) + '\n')
    return EXIT_OK
  }
  if (parts.length === 0) {
    await write(`${abs}: no partitions (no segment files)\n`)
    return EXIT_OK
  }
  const out = []
  out.push(`${abs}: ${parts.length} partition${parts.length === 1 ? '' : 's'}`)
  out.push('')
  out.push(
    table(
      ['PARTITION', 'LSNS', 'RECORDS', 'SEGMENTS', 'BYTES', 'SIZE'],
      parts.map((p) => [
        p.partition,
        lsnRange(p.firstLsn, p.lastLsn),
        p.records,
        p.segments.filter((s) => !s.spare).length,
        p.bytes,
        humanBytes(p.bytes),
      ]),
    ),
  )
  out.push('')
  const rows = []
  for (const p of parts) {
    for (const s of p.segments) {
      rows.push([
        p.partition,
        s.index,
        s.file,
        orNull(s.firstLsn),
        s.firstLsn == null || s.lastLsn == null ? null : s.lastLsn,
        s.firstLsn == null ? null : s.records,
        s.bytes,
        s.createdMs == null ? null : new Date(s.createdMs).toISOString().replace('T', ' ').slice(0, 19),
        segmentStatus(s),
      ])
    }
  }
  out.push(table(['PARTITION', 'SEGMENT', 'FILE', 'FIRST LSN', 'LAST LSN', 'RECORDS', 'BYTES', 'CREATED (UTC)', 'STATUS'], rows))
  const notes = []
  for (const p of parts) {
    for (const pr of p.problems) notes.push(`partition ${p.partition}: ${describeProblem(pr)}`)
    if (p.pendingTruncation) notes.push(`partition ${p.partition}: a truncateAfter was interrupted; the next open completes it`)
  }
  if (notes.length > 0) out.push('', ...notes)
  await write(out.join('\n') + '\n')
  return EXIT_OK
}

/** A progress bar on a terminal only (cli-progress), fed by polling the native job. */
async function withProgress(enabled, job, running) {
  if (!enabled) return await running
  const { SingleBar, Presets } = require('cli-progress')
  const bar = new SingleBar(
    {
      format: 'verifying |{bar}| {percentage}% | {done} of {size} | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
    },
    Presets.shades_classic,
  )
  let started = false
  const tick = () => {
    const [done, total] = native().verifyProgress(job)
    const payload = { done: humanBytes(done), size: humanBytes(total) }
    if (!started) {
      bar.start(Math.max(total, 1), done, payload)
      started = true
    } else {
      bar.setTotal(Math.max(total, done, 1))
      bar.update(done, payload)
    }
  }
  const timer = setInterval(tick, 100)
  try {
    return await running
  } finally {
    clearInterval(timer)
    if (started) {
      tick()
      bar.stop()
    }
  }
}

async function verifyCommand(dir, opts) {
  const abs = checkDir(dir)
  const n = native()
  const job = n.verifyStart(abs)
  const progress = opts.progress && !opts.json && process.stderr.isTTY === true
  const report = await withProgress(progress, job, call(n.verifyRun(job)))
  const damage = report.partitions.flatMap((p) => p.problems.filter((x) => x.kind === 'corruption').map((x) => [p, x]))
  const torn = report.partitions.flatMap((p) => p.problems.filter((x) => x.kind === 'torn-tail').map((x) => [p, x]))
  if (opts.json) {
    await write(
      JSON.stringify(
        {
          dir: abs,
          clean: report.clean,
          segments: report.segments,
          records: report.records,
          bytes: report.bytes,
          partitions: report.partitions.map(partitionJson),
        },
        null,
        2,
      ) + '\n',
    )
    return report.clean ? EXIT_OK : EXIT_FAIL
  }
  for (const [p, x] of damage) process.stderr.write(`segwal: partition ${p.partition}: ${describeProblem(x)}\n`)
  const lines = []
  for (const [p, x] of torn) lines.push(`partition ${p.partition}: ${describeProblem(x)}`)
  for (const p of report.partitions) {
    if (p.pendingTruncation) lines.push(`partition ${p.partition}: a truncateAfter was interrupted; the next open completes it`)
  }
  const nParts = report.partitions.length
  const what = `${report.segments} segment${report.segments === 1 ? '' : 's'} in ${nParts} partition${nParts === 1 ? '' : 's'}: ${report.records} records, ${humanBytes(report.bytes)}`
  if (report.clean) {
    lines.push(`OK: verified ${what}; every checksum and the LSN chain check out`)
  } else {
    const bad = damage.map(([p]) => p.partition).join(', ')
    lines.push(`DAMAGED: partition${damage.length === 1 ? '' : 's'} ${bad}; verified ${what} (up to the first damage of each partition)`)
  }
  await write(lines.join('\n') + '\n')
  return report.clean ? EXIT_OK : EXIT_FAIL
}

const RECORD_WIDTH = 5

async function dumpCommand(dir, opts) {
  const abs = checkDir(dir)
  const { partition, from = 0, limit = Infinity, raw = false } = opts
  const n = native()
  const known = readdirSync(abs).some((f) => f.startsWith(`part_${partition}_`) && f.endsWith('.wal'))
  if (!known) process.stderr.write(`segwal: partition ${partition} has no segments in ${abs}\n`)
  if (limit === 0) return EXIT_OK
  const cursor = await call(n.dumpOpen(abs, partition, from))
  let left = limit
  try {
    while (left > 0 && !stdoutClosed) {
      const batch = await call(n.dumpNext(cursor, Math.min(left, 4096), 1 << 20))
      if (!batch.meta) break
      const { data, meta } = batch
      const count = meta.length / RECORD_WIDTH
      const chunks = []
      for (let i = 0; i < count; i++) {
        const [lsn, segment, offset, start, length] = meta.subarray(i * RECORD_WIDTH, (i + 1) * RECORD_WIDTH)
        const payload = data.subarray(start, start + length)
        if (raw) {
          chunks.push(payload)
        } else if (isUtf8(payload)) {
          chunks.push(JSON.stringify({ lsn, segment, offset, encoding: 'utf8', payload: payload.toString('utf8') }) + '\n')
        } else {
          chunks.push(JSON.stringify({ lsn, segment, offset, encoding: 'base64', payload: payload.toString('base64') }) + '\n')
        }
      }
      left -= count
      await write(raw ? Buffer.concat(chunks) : chunks.join(''))
    }
  } finally {
    n.dumpRelease(cursor)
  }
  return EXIT_OK
}

function benchCommand(args) {
  const script = join(root, 'bench', 'index.mjs')
  if (!existsSync(script)) throw new CliError('the benchmark (bench/index.mjs) is not part of this installation')
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: 'inherit', cwd: process.cwd() })
    const forward = (sig) => () => child.kill(sig)
    const handlers = ['SIGINT', 'SIGTERM'].map((sig) => [sig, forward(sig)])
    for (const [sig, h] of handlers) process.on(sig, h)
    child.on('error', fail)
    child.on('exit', (code, signal) => {
      for (const [sig, h] of handlers) process.off(sig, h)
      done(code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : EXIT_FAIL))
    })
  })
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal]
}

// ---------------------------------------------------------------------------
// argument parsing (commander)

function integer(name, min, max) {
  return (value) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`)
    const n = Number(value)
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`)
    }
    return n
  }
}

function version() {
  try {
    return JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

function buildProgram(run) {
  const program = new Command('segwal')
  program
    .description('Inspect, verify and dump segwal write-ahead logs, and run the bundled benchmark.')
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    })
    .addHelpText(
      'after',
      `
These commands only read the directory: they take no lock and change nothing, so
they can run next to a live writer (whose in-flight appends may show as a torn tail).

Exit codes: 0 ok, 1 damage found or an error, 2 wrong usage.

Examples:
  $ segwal inspect ./wal
  $ segwal verify ./wal && echo intact
  $ segwal dump ./wal --partition 1 --from 100 --limit 10
  $ segwal bench --quick`,
    )

  program
    .command('inspect')
    .description('list partitions and segments: LSN ranges, records, sizes (header and last record of each segment)')
    .argument('<dir>', 'the WAL directory')
    .option('--json', 'print JSON instead of tables')
    .addHelpText(
      'after',
      `
The last record of each segment is checked; use \`segwal verify\` to check them all.
Statuses: sealed, newest, spare (a file created ahead for the next segment),
torn tail (what the next open cuts), DAMAGED at <offset>.`,
    )
    .action((dir, opts) => run(inspectCommand(dir, opts)))

  program
    .command('verify')
    .description("check every record's checksum and the LSN chain across segments")
    .argument('<dir>', 'the WAL directory')
    .option('--json', 'print the report as JSON')
    .option('--no-progress', 'no progress bar (there is none anyway when stderr is not a terminal)')
    .addHelpText(
      'after',
      `
Exit 0 when nothing is damaged (a torn tail left by a crash, which the next open cuts,
is reported but is not damage); exit 1 naming the file and byte offset of the first
damage of each partition.`,
    )
    .action((dir, opts) => run(verifyCommand(dir, opts)))

  program
    .command('dump')
    .description('print the records of a partition as JSON lines')
    .argument('<dir>', 'the WAL directory')
    .requiredOption('-p, --partition <n>', 'partition, 0..65535', integer('--partition', 0, 65535))
    .option('-f, --from <lsn>', 'first LSN to print (default: the first retained)', integer('--from', 0, Number.MAX_SAFE_INTEGER))
    .option('-n, --limit <k>', 'print at most k records', integer('--limit', 0, Number.MAX_SAFE_INTEGER))
    .option('--raw', 'write the raw payload bytes, back to back, instead of JSON lines')
    .addHelpText(
      'after',
      `
Each line: {"lsn":1,"segment":1,"offset":64,"encoding":"utf8","payload":"..."}
"encoding" is "utf8" when the payload is valid UTF-8 (payload is that text) and
"base64" otherwise. --raw has no separators between records: use it with --limit 1,
or with records of a known size. Records are checked as they are read; damage stops
the dump with exit 1, naming the file and offset.`,
    )
    .action((dir, opts) => run(dumpCommand(dir, opts)))

  program
    .command('bench')
    .description('run the bundled benchmark (`segwal bench --help` for its options)')
    .argument('[args...]', 'passed to the benchmark')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .passThroughOptions()
    .action((args) => run(benchCommand(args)))

  return program
}

async function main(argv) {
  let pending
  const program = buildProgram((p) => {
    pending = p
  })
  try {
    program.parse(argv)
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version print and exit 0; a missing command prints help, like
      // every other wrong usage (exit 2).
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT_OK
      if (e.code === 'commander.help' && e.exitCode === 0) return EXIT_OK
      return EXIT_USAGE
    }
    throw e
  }
  return pending === undefined ? EXIT_OK : await pending
}

main(process.argv).then(
  (code) => {
    process.exitCode = code
  },
  (e) => {
    const err = e instanceof CliError ? e : engineError(e)
    if (err instanceof CliError) {
      process.stderr.write(`segwal: ${err.message}\n`)
      process.exitCode = err.exitCode
    } else {
      process.stderr.write(`segwal: ${err?.stack ?? err}\n`)
      process.exitCode = EXIT_FAIL
    }
  },
)
