#!/usr/bin/env node
'use strict'
// The checks of the prebuilt binaries that this Linux x64 machine can make, as far as
// each platform allows (README.md, "Platforms"):
//
//   binaries       every prebuilds/ binary: format, arch, libc, GLIBC_ <= 2.17, N-API
//                  export, system libraries only (scripts/check-binaries.js)
//   select         node-gyp-build picks node.napi.musl.node on musl, .glibc. on glibc
//   linux-x64      the smoke test (__test__/platforms/smoke.cjs) on this machine's Node,
//                  loading the glibc-2.17 prebuild: the reference transcript
//   win32-x64      the smoke test under wine with the Windows Node: same transcript
//   linux-arm64    the smoke test (its second process started through qemu as well) and
//                  the ava suite minus the files that spawn Node processes (they exec
//                  process.execPath, an arm64 binary the host cannot start without binfmt)
//                  with the arm64 Node under qemu
//   musl           the engine's whole `cargo test` (segwal-core, and segwal-sim which holds
//                  the engine's integration tests) for x86_64-unknown-linux-musl, natively
//
//   npm run test:platforms                  all of them (needs `npm run prebuild:all` first)
//   npm run test:platforms -- win32-x64 musl   just these
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { toolchainEnv, haveTools, crossEnv, log, root } = require('./platforms')

const smoke = path.join(root, '__test__', 'platforms', 'smoke.cjs')
const results = []

function run(cmd, args, options = {}) {
  const started = Date.now()
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20, ...options })
  return { ...r, seconds: ((Date.now() - started) / 1000).toFixed(0) }
}

function record(name, ok, detail) {
  results.push({ name, ok, detail })
  log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`)
}

/** The smoke test's transcript lines (stdout), or null with the failure logged. */
function transcript(name, r) {
  if (r.status === 0 && /^PASS$/m.test(r.stdout)) return r.stdout.trim().split('\n')
  process.stderr.write(`${r.stdout || ''}\n${r.stderr || ''}\n`)
  record(name, false, `smoke test failed (exit ${r.status ?? r.signal}${r.error ? `, ${r.error.message}` : ''})`)
  return null
}

function compare(name, got, reference, seconds) {
  if (!got) return
  const diff = got.filter((line, i) => line !== reference[i])
  if (got.length !== reference.length || diff.length) {
    record(name, false, `differs from Linux x64:\n  ${got.join('\n  ')}\nvs\n  ${reference.join('\n  ')}`)
  } else {
    record(name, true, `same transcript as Linux x64 (${got.length} lines, ${seconds} s)`)
  }
}

const checks = {
  binaries() {
    const r = run(process.execPath, [path.join(__dirname, 'check-binaries.js'), '--all'])
    process.stdout.write(r.stdout)
    record('binaries', r.status === 0, 'format, arch, libc, GLIBC_ versions, exports, links')
  },

  select() {
    const pick = (libc) =>
      run(process.execPath, ['-p', `require('node-gyp-build').path(${JSON.stringify(root)})`], {
        env: { ...process.env, PREBUILDS_ONLY: '1', LIBC: libc },
      }).stdout.trim()
    const musl = pick('musl')
    const glibc = pick('glibc')
    const ok = musl.endsWith(path.join('linux-x64', 'node.napi.musl.node')) && glibc.endsWith('node.napi.glibc.node')
    record('select', ok, `musl -> ${path.relative(root, musl)}, glibc -> ${path.relative(root, glibc)}`)
  },

  'linux-x64'(ctx) {
    const r = run(process.execPath, [smoke], { env: { ...process.env, PREBUILDS_ONLY: '1' } })
    ctx.reference = transcript('linux-x64', r)
    if (ctx.reference) record('linux-x64', true, `smoke test on the glibc 2.17 prebuild (${r.seconds} s)`)
  },

  'win32-x64'(ctx, tc) {
    if (!need('win32-x64', tc, ['SEGWAL_WINE', 'SEGWAL_NODE_WIN64'])) return
    const env = wineEnv(tc)
    // Wine writes through files more reliably than through pipes for a console program.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segwal-wine-'))
    const out = path.join(dir, 'out')
    const r = run('bash', ['-c', `"$0" "$1" "$2" >"$3" 2>&1`, tc.SEGWAL_WINE, tc.SEGWAL_NODE_WIN64, smoke, out], {
      env,
      timeout: 600_000,
    })
    const stdout = fs.readFileSync(out, 'utf8')
    fs.rmSync(dir, { recursive: true, force: true })
    const got = transcript('win32-x64', { ...r, stdout, stderr: '' })
    compare('win32-x64 (wine)', got, ctx.reference, r.seconds)
  },

  'linux-arm64'(ctx, tc) {
    if (!need('linux-arm64', tc, ['SEGWAL_QEMU_AARCH64', 'SEGWAL_NODE_ARM64'])) return
    const qemu = [tc.SEGWAL_QEMU_AARCH64, '-L', tc.SEGWAL_AARCH64_SYSROOT, tc.SEGWAL_NODE_ARM64]
    const env = { ...process.env, PREBUILDS_ONLY: '1' }
    // The smoke test's second process: the arm64 Node cannot exec an arm64 binary itself
    // (no binfmt handler here), but it can exec qemu (an x64 binary), which runs one.
    const r = run(qemu[0], [...qemu.slice(1), smoke], { env: { ...env, SEGWAL_SMOKE_NODE: JSON.stringify(qemu) }, timeout: 600_000 })
    compare('linux-arm64 smoke (qemu)', transcript('linux-arm64', r), ctx.reference, r.seconds)
    const files = avaSubset()
    const ava = run(
      qemu[0],
      [
        ...qemu.slice(1),
        path.join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs'),
        '--config',
        'ava.platforms.config.mjs',
        ...QEMU_TIMING_TESTS.map((title) => `--match=!${title}`),
        ...files,
      ],
      { env: { ...env, SEGWAL_AVA_FILES: files.join(',') }, timeout: 1_800_000 },
    )
    // The whole run is kept; the failures (and ava's summary) are printed.
    const logFile = path.join(root, 'target', 'test-platforms-arm64-ava.log')
    fs.mkdirSync(path.dirname(logFile), { recursive: true })
    fs.writeFileSync(logFile, `${ava.stdout}\n${ava.stderr}`)
    const failures = ava.stdout.split('\n').filter((l) => /✘|tests? failed|passed/.test(l))
    process.stdout.write(`${failures.join('\n')}\n(full output: ${path.relative(root, logFile)})\n`)
    record(
      'linux-arm64 ava (qemu)',
      ava.status === 0,
      `${files.length} test files: ${files.map((f) => path.basename(f)).join(', ')}; without the tests that assume native speed: ${QEMU_TIMING_TESTS.join('; ')} (${ava.seconds} s)`,
    )
  },

  musl(_ctx, tc) {
    if (!need('musl', tc, ['SEGWAL_CARGO', 'SEGWAL_ZIGBUILD'])) return
    // musl's default static linking makes test binaries that run on this glibc machine.
    // Rust's self-contained start files (rcrt1.o, crt1.o) come with rustup's musl std,
    // not with -Zbuild-std; rustc then names them bare and the link fails. Without
    // self-contained linking, zig supplies musl's own start files.
    const env = {
      ...crossEnv(tc),
      CARGO: tc.SEGWAL_CARGO,
      CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS: '-C link-self-contained=no',
      // Its own directory: these flags are not the addon's (prebuild:all), which would
      // otherwise be rebuilt after every test run and the other way round.
      CARGO_TARGET_DIR: `${crossEnv(tc).CARGO_TARGET_DIR}-musltest`,
    }
    const crates = ['segwal-core', 'segwal-sim']
    const r = run(
      tc.SEGWAL_ZIGBUILD,
      ['test', '--release', ...crates.flatMap((c) => ['-p', c]), '-Zbuild-std', '--target', 'x86_64-unknown-linux-musl'],
      { env, stdio: ['ignore', 'inherit', 'inherit'] },
    )
    record(
      `musl: cargo test -p ${crates.join(' -p ')}`,
      r.status === 0,
      `the engine's unit and integration tests, x86_64-unknown-linux-musl, static, run natively (${r.seconds} s)`,
    )
  },
}

function need(name, tc, keys) {
  if (haveTools(tc, keys)) return true
  record(name, false, `toolchain missing (${keys.join(', ')}): run bash scripts/toolchains.sh`)
  return false
}

/** Wine with its own prefix in .toolchains/, set to Windows 10 (Node 20 needs 8.1+). */
function wineEnv(tc) {
  const prefix = path.join(tc.SEGWAL_TOOLCHAINS, 'wine-prefix')
  const shims = path.join(tc.SEGWAL_TOOLCHAINS, 'wine-shims')
  const env = {
    ...process.env,
    WINEPREFIX: prefix,
    WINEDEBUG: '-all',
    PREBUILDS_ONLY: '1',
    // mingw's zlib1.dll (wine's own DLLs need it) and the ProcessPrng shim.
    WINEPATH: [path.join(tc.SEGWAL_TOOLCHAINS, 'debian', 'usr', 'x86_64-w64-mingw32', 'lib'), shims].map((p) => `Z:${p}`).join(';'),
  }
  if (!fs.existsSync(path.join(prefix, 'system.reg'))) {
    run(tc.SEGWAL_WINE, ['winecfg', '-v', 'win10'], { env, timeout: 300_000 })
  }
  const shim = path.join(shims, 'bcryptprimitives.dll')
  if (!fs.existsSync(shim)) {
    fs.mkdirSync(shims, { recursive: true })
    const src = path.join(root, '__test__', 'platforms', 'bcryptprimitives-shim.c')
    run(tc.SEGWAL_ZIG, ['cc', '-target', 'x86_64-windows-gnu', '-shared', '-O2', '-o', shim, src, '-ladvapi32'])
  }
  return env
}

/**
 * Tests whose assertions hold only at native speed, left out under qemu (where JS runs
 * tens of times slower than the engine's own system calls): what each assumes.
 */
const QEMU_TIMING_TESTS = [
  // Asserts lastLsn is still 0 on the line after append(): that the writer thread has
  // not yet synced what append() handed it. Under qemu it has (lastLsn 5), which API.md
  // allows; natively the JS line always comes first.
  'write() returns LSNs at once, in one sequence with append() and appendBatch(), in call order',
  // A latency test over a fixed window: under qemu the busy partitions finish one round
  // in it, and the test's own precondition ("the busy partitions were busy") fails.
  "defect 4: a quiet partition's appends settle while busy partitions' huge ack groups are settled",
]

/** The ava files that spawn no Node process (qemu-user cannot run a spawned arm64 Node). */
function avaSubset() {
  const dir = path.join(root, '__test__')
  const spawns = (file, seen = new Set()) => {
    if (seen.has(file) || !fs.existsSync(file)) return false
    seen.add(file)
    const src = fs.readFileSync(file, 'utf8')
    if (/child_process/.test(src)) return true
    return [...src.matchAll(/from\s+'(\.{1,2}\/[^']+)'/g)].some((m) => spawns(path.resolve(path.dirname(file), m[1]), seen))
  }
  const files = []
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.test.mjs') && !spawns(p)) files.push(path.relative(root, p))
    }
  }
  walk(dir)
  return files.sort()
}

function main() {
  const wanted = process.argv.slice(2)
  const unknown = wanted.filter((w) => !(w in checks))
  if (unknown.length) {
    log(`unknown check ${unknown.join(', ')}; known: ${Object.keys(checks).join(', ')}`)
    process.exit(2)
  }
  const tc = toolchainEnv({ install: false })
  const ctx = {}
  for (const name of Object.keys(checks)) {
    // The Linux transcript is what the others are compared with.
    if (wanted.length && !wanted.includes(name) && !(name === 'linux-x64' && wanted.some((w) => /win32|arm64/.test(w)))) continue
    checks[name](ctx, tc)
  }
  const failed = results.filter((r) => !r.ok)
  log(`${results.length - failed.length} passed, ${failed.length} failed`)
  process.exit(failed.length ? 1 : 0)
}

main()
