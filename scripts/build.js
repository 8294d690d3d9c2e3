#!/usr/bin/env node
'use strict'
// Builds segwal: the Rust addon (cargo, release) into build/Release/segwal.node
// and the TypeScript facade into dist/.
//
//   node scripts/build.js            addon + TypeScript        (npm run build)
//   node scripts/build.js --native   addon only
//   node scripts/build.js --install  the package's `install` script: in a source
//                                    checkout (Cargo.toml present) build like the
//                                    default; in an installed tarball only check
//                                    that the shipped prebuild loads (no toolchain)
//   node scripts/build.js --prebuild `prepack`: with prebuilds/ filled by `npm run
//                                    prebuild:all`, check those (complete, right
//                                    format/arch/libc, newer than the sources) and pack
//                                    them; with prebuilds/ empty, build this platform's
//                                    addon into prebuilds/<platform>-<arch>/ and check
//                                    that node-gyp-build loads it from there alone
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const args = new Set(process.argv.slice(2))

function log(msg) {
  process.stderr.write(`segwal: ${msg}\n`)
}

function run(cmd, cmdArgs, options = {}) {
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32', ...options })
  if (r.error) throw r.error
  if (r.status !== 0) {
    log(`${cmd} ${cmdArgs.join(' ')} failed (exit ${r.status ?? r.signal})`)
    process.exit(r.status || 1)
  }
}

function isSourceCheckout() {
  return fs.existsSync(path.join(root, 'Cargo.toml')) && fs.existsSync(path.join(root, 'src', 'lib.rs'))
}

function libFileName() {
  if (process.platform === 'win32') return 'segwal_node.dll'
  if (process.platform === 'darwin') return 'libsegwal_node.dylib'
  return 'libsegwal_node.so'
}

function buildNative() {
  const probe = spawnSync('cargo', ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' })
  if (probe.error || probe.status !== 0) {
    log('cargo (the Rust toolchain) is needed to build the native addon from source: https://rustup.rs')
    process.exit(1)
  }
  log('building the native addon (cargo build --release)')
  run('cargo', ['build', '--release', '-p', 'segwal-node'])
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target')
  const built = path.join(targetDir, 'release', libFileName())
  const dest = path.join(root, 'build', 'Release', 'segwal.node')
  fs.mkdirSync(path.dirname(dest), { recursive: true })
  // Copy to a temp name and rename: a running process may have the old file mapped.
  const tmp = `${dest}.${process.pid}.tmp`
  fs.copyFileSync(built, tmp)
  fs.renameSync(tmp, dest)
  log(`native addon: ${path.relative(root, dest)}`)
  return dest
}

function buildTs() {
  log('compiling TypeScript (tsc -p tsconfig.json)')
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  if (!fs.existsSync(tsc)) {
    log('typescript is not installed: run `npm install` (with dev dependencies) first')
    process.exit(1)
  }
  run(process.execPath, [tsc, '-p', 'tsconfig.json'])
  run(process.execPath, [path.join(__dirname, 'esm-wrapper.js')])
}

function prebuildName() {
  if (process.platform !== 'linux') return 'node.napi.node'
  const musl = fs.existsSync('/etc/alpine-release')
  return musl ? 'node.napi.musl.node' : 'node.napi.glibc.node'
}

/** Resolves (and loads) the addon the way the package does, in a child process. */
function checkLoads(extraEnv) {
  const script = [
    "const ngb = require('node-gyp-build')",
    `const file = ngb.path(${JSON.stringify(root)})`,
    'require(file)',
    'process.stdout.write(file)',
  ].join(';')
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...extraEnv },
  })
  return r.status === 0 ? r.stdout : null
}

function prebuild(built) {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const dest = path.join(dir, prebuildName())
  fs.copyFileSync(built, dest)
  // Smaller tarball; optional (the exported symbols stay either way).
  if (process.platform === 'linux') spawnSync('strip', ['--strip-unneeded', dest], { stdio: 'ignore' })
  const loaded = checkLoads({ PREBUILDS_ONLY: '1' })
  if (loaded !== dest) {
    log(`the prebuild does not load on its own (got ${loaded})`)
    process.exit(1)
  }
  log(`prebuild: ${path.relative(root, dest)} (loads with PREBUILDS_ONLY=1)`)
}

/** Every prebuilt binary under prebuilds/ (`npm run prebuild:all` makes all seven). */
function existingPrebuilds() {
  const dir = path.join(root, 'prebuilds')
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir).flatMap((sub) => fs.readdirSync(path.join(dir, sub)).map((f) => path.join(dir, sub, f)))
}

/** The newest modification time of anything the addon is compiled from. */
function newestSource() {
  let newest = 0
  const visit = (p) => {
    const st = fs.statSync(p)
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) visit(path.join(p, e))
    else if (/\.rs$|Cargo\.(toml|lock)$/.test(p)) newest = Math.max(newest, st.mtimeMs)
  }
  for (const p of ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src', path.join('crates', 'segwal-core')]) {
    if (fs.existsSync(path.join(root, p))) visit(path.join(root, p))
  }
  return newest
}

/**
 * `prepack` with the cross-built set present: pack exactly those, once they are checked
 * complete (all seven, each what its place says) and newer than the sources.
 */
function usePrebuilds(files) {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'check-binaries.js'), '--all'], { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) {
    log('prebuilds/ is incomplete or wrong: run `npm run prebuild:all` (or delete prebuilds/ to pack this platform only)')
    process.exit(1)
  }
  const stale = files.filter((f) => fs.statSync(f).mtimeMs < newestSource())
  if (stale.length) {
    log(`older than the Rust sources: ${stale.map((f) => path.relative(root, f)).join(', ')}; run \`npm run prebuild:all\``)
    process.exit(1)
  }
  log(`packing the ${files.length} prebuilt binaries of prebuilds/`)
}

function main() {
  if (args.has('--install') && !isSourceCheckout()) {
    // An installed package: it ships dist/ and prebuilds/, nothing to build. Load it the
    // way the package does, so a failure reads as it would at run time (dist/binding.js
    // names the platform and says how to build from source).
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(root, 'dist', 'binding.js'))})`], {
      cwd: root,
      encoding: 'utf8',
    })
    if (r.status !== 0) {
      const m = /^Error: (segwal.*)$/m.exec(r.stderr)
      log(m ? m[1] : r.stderr.trim())
      process.exit(1)
    }
    return
  }
  if (args.has('--native')) {
    buildNative()
    return
  }
  const cross = args.has('--prebuild') ? existingPrebuilds() : []
  if (cross.length) {
    buildTs()
    usePrebuilds(cross)
    return
  }
  const built = buildNative()
  buildTs()
  if (args.has('--prebuild')) {
    log('prebuilds/ is empty: the package will carry this platform only (`npm run prebuild:all` builds all seven)')
    prebuild(built)
  }
}

main()
