#!/usr/bin/env node
'use strict'
// Cross-compiles the addon for every supported platform on this Linux x64 machine and
// places each binary where node-gyp-build looks for it:
//
//   prebuilds/linux-x64/node.napi.glibc.node     glibc >= 2.17
//   prebuilds/linux-x64/node.napi.musl.node      Alpine (musl)
//   prebuilds/linux-arm64/node.napi.glibc.node   glibc >= 2.17
//   prebuilds/linux-arm64/node.napi.musl.node
//   prebuilds/darwin-x64/node.napi.node
//   prebuilds/darwin-arm64/node.napi.node
//   prebuilds/win32-x64/node.napi.node
//
//   npm run prebuild:all                 all seven (installs the toolchains first if missing)
//   npm run prebuild:all -- linux-arm64-gnu win32-x64    just these
//
// How: Debian's Rust 1.96 builds std from source for each target (`-Zbuild-std`; rustup
// cannot download other targets' std here), and zig links against the target's libc
// through cargo-zigbuild (glibc pinned to 2.17, musl, macOS, mingw). Everything lives in
// .toolchains/ (scripts/toolchains.sh); nothing is installed system-wide.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { TARGETS, toolchainEnv, crossEnv, log } = require('./platforms')
const { binaryInfo } = require('./binary-info')

const root = path.join(__dirname, '..')

function run(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env })
  if (r.error) throw r.error
  if (r.status !== 0) {
    log(`${path.basename(cmd)} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
    process.exit(r.status || 1)
  }
}

/**
 * napi-build links windows-gnu addons against `-lnode`: an import library naming node.exe
 * as the DLL that exports the N-API functions, made from the Windows Node's own exports.
 */
function windowsImportLib(tc) {
  const dir = path.join(tc.SEGWAL_TOOLCHAINS, 'win-node-lib')
  const lib = path.join(dir, 'libnode.a')
  if (fs.existsSync(lib)) return dir
  fs.mkdirSync(dir, { recursive: true })
  const names = binaryInfo(tc.SEGWAL_NODE_WIN64).exports.filter((n) => /^(napi|node_api)_/.test(n))
  if (names.length < 100) {
    log(`found only ${names.length} N-API exports in node.exe`)
    process.exit(1)
  }
  const def = path.join(dir, 'node.def')
  fs.writeFileSync(def, `LIBRARY node.exe\nEXPORTS\n${names.join('\n')}\n`)
  run(tc.SEGWAL_ZIG, ['dlltool', '-d', def, '-l', lib, '-D', 'node.exe', '-m', 'i386:x86-64'], process.env)
  // napi-build only checks that a file of this name exists in LIBNODE_PATH.
  fs.writeFileSync(path.join(dir, 'libnode.dll'), '')
  // Rust's windows-gnu std asks for mingw's libssp_nonshared, which zig does not ship
  // (zig's own stack protector needs nothing from it): an empty archive satisfies -l.
  fs.writeFileSync(path.join(dir, 'libssp_nonshared.a'), '!<arch>\n')
  return dir
}

function build(target, tc) {
  const started = Date.now()
  const env = {
    ...crossEnv(tc),
    // zig strips while linking; smaller tarball, the exported symbols stay.
    [`CARGO_TARGET_${target.rust.toUpperCase().replace(/-/g, '_')}_RUSTFLAGS`]: ['-C', 'link-arg=-s', ...target.rustflags].join(
      ' ',
    ),
  }
  if (target.rust.endsWith('windows-gnu')) env.LIBNODE_PATH = windowsImportLib(tc)
  if (target.format === 'macho') {
    // Cargo's release default (strip debuginfo) makes rustc run rust-objcopy for Apple
    // targets, which Debian's Rust does not ship; release builds carry no debuginfo anyway.
    env.CARGO_PROFILE_RELEASE_STRIP = 'none'
    // rustc and cargo-zigbuild (zig's -target ...-macos.X) both take it from here.
    env.MACOSX_DEPLOYMENT_TARGET = target.minOs
  }
  log(`${target.id}: cargo zigbuild --target ${target.zig}`)
  run(
    tc.SEGWAL_CARGO,
    ['zigbuild', '--release', '-p', 'segwal-node', '-Zbuild-std=std,panic_abort', '--target', target.zig],
    env,
  )
  const built = path.join(env.CARGO_TARGET_DIR, target.rust, 'release', target.artifact)
  const dest = path.join(root, 'prebuilds', target.dir, target.file)
  fs.mkdirSync(path.dirname(dest), { recursive: true })
  fs.copyFileSync(built, dest)
  const kib = Math.round(fs.statSync(dest).size / 1024)
  log(`${target.id}: ${path.relative(root, dest)} (${kib} KiB, ${((Date.now() - started) / 1000).toFixed(0)} s)`)
}

function main() {
  const wanted = process.argv.slice(2)
  const unknown = wanted.filter((id) => !TARGETS.some((t) => t.id === id))
  if (unknown.length) {
    log(`unknown target ${unknown.join(', ')}; known: ${TARGETS.map((t) => t.id).join(', ')}`)
    process.exit(2)
  }
  const tc = toolchainEnv({ install: true })
  const started = Date.now()
  for (const target of TARGETS) if (!wanted.length || wanted.includes(target.id)) build(target, tc)
  log(`prebuild:all done in ${((Date.now() - started) / 1000).toFixed(0)} s`)
}

main()
