'use strict'
// The platforms segwal ships prebuilt binaries for, and where the cross toolchains are.
// Shared by scripts/prebuild-all.js, scripts/test-platforms.js and scripts/check-binaries.js.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')

/**
 * id: what `npm run prebuild:all -- <id>` takes; rust: the Rust target; zig: what
 * cargo-zigbuild gets (a `.2.17` suffix pins the glibc version linked against); dir/file:
 * where node-gyp-build finds it; format/arch/libc: what scripts/check-binaries.js
 * verifies; maxGlibc: the newest GLIBC_ symbol version the binary may need; signed: it
 * must carry a valid (ad hoc) code signature; minOs: the macOS it is built for (the
 * oldest Node 20 supports), which it must not exceed.
 */
const TARGETS = [
  {
    id: 'linux-x64-gnu',
    rust: 'x86_64-unknown-linux-gnu',
    zig: 'x86_64-unknown-linux-gnu.2.17',
    dir: 'linux-x64',
    file: 'node.napi.glibc.node',
    format: 'elf',
    arch: 'x64',
    libc: 'glibc',
    maxGlibc: '2.17',
  },
  {
    id: 'linux-x64-musl',
    rust: 'x86_64-unknown-linux-musl',
    zig: 'x86_64-unknown-linux-musl',
    dir: 'linux-x64',
    file: 'node.napi.musl.node',
    format: 'elf',
    arch: 'x64',
    libc: 'musl',
    // Link musl dynamically: the addon shares the libc of the Node that loads it.
    rustflags: ['-C', 'target-feature=-crt-static'],
  },
  {
    id: 'linux-arm64-gnu',
    rust: 'aarch64-unknown-linux-gnu',
    zig: 'aarch64-unknown-linux-gnu.2.17',
    dir: 'linux-arm64',
    file: 'node.napi.glibc.node',
    format: 'elf',
    arch: 'arm64',
    libc: 'glibc',
    maxGlibc: '2.17',
  },
  {
    id: 'linux-arm64-musl',
    rust: 'aarch64-unknown-linux-musl',
    zig: 'aarch64-unknown-linux-musl',
    dir: 'linux-arm64',
    file: 'node.napi.musl.node',
    format: 'elf',
    arch: 'arm64',
    libc: 'musl',
    rustflags: ['-C', 'target-feature=-crt-static'],
  },
  {
    id: 'darwin-x64',
    rust: 'x86_64-apple-darwin',
    zig: 'x86_64-apple-darwin',
    dir: 'darwin-x64',
    file: 'node.napi.node',
    format: 'macho',
    arch: 'x64',
    // The oldest macOS Node 20 runs on (zig's default would be the newest SDK's).
    minOs: '10.15',
  },
  {
    id: 'darwin-arm64',
    rust: 'aarch64-apple-darwin',
    zig: 'aarch64-apple-darwin',
    dir: 'darwin-arm64',
    file: 'node.napi.node',
    format: 'macho',
    arch: 'arm64',
    minOs: '11.0',
    // arm64 macOS maps only signed code; zig signs ad hoc when it links.
    signed: true,
  },
  {
    id: 'win32-x64',
    rust: 'x86_64-pc-windows-gnu',
    zig: 'x86_64-pc-windows-gnu',
    dir: 'win32-x64',
    file: 'node.napi.node',
    format: 'pe',
    arch: 'x64',
  },
]

for (const t of TARGETS) {
  t.rustflags = t.rustflags || []
  t.artifact = t.format === 'pe' ? 'segwal_node.dll' : t.format === 'macho' ? 'libsegwal_node.dylib' : 'libsegwal_node.so'
}

function log(msg) {
  process.stderr.write(`segwal: ${msg}\n`)
}

/**
 * The toolchain paths (scripts/toolchains.sh env); with `install`, runs
 * scripts/toolchains.sh first, which installs only what is missing.
 */
function toolchainEnv({ install }) {
  const script = path.join(__dirname, 'toolchains.sh')
  if (install) {
    const r = spawnSync('bash', [script], { cwd: root, stdio: 'inherit' })
    if (r.status !== 0) {
      log('installing the cross toolchains failed (scripts/toolchains.sh)')
      process.exit(1)
    }
  }
  const r = spawnSync('bash', [script, 'env'], { cwd: root, encoding: 'utf8' })
  const env = {}
  for (const m of r.stdout.matchAll(/^export (\w+)="(.*)"$/gm)) env[m[1]] = m[2]
  return env
}

/** True when every tool in `keys` of the toolchain env exists. */
function haveTools(tc, keys) {
  return keys.every((k) => tc[k] && fs.existsSync(tc[k]))
}

/**
 * The environment cargo-zigbuild runs in: Debian's rustc (its libraries found through
 * LD_LIBRARY_PATH, never on PATH), zig and cargo-zigbuild on PATH, std built from source
 * (RUSTC_BOOTSTRAP for -Zbuild-std), cross builds in target/cross (or
 * $SEGWAL_CROSS_TARGET_DIR, to run two prebuild:all in parallel).
 */
function crossEnv(tc) {
  const env = {
    ...process.env,
    PATH: [path.dirname(tc.SEGWAL_ZIGBUILD), path.dirname(tc.SEGWAL_ZIG), process.env.PATH].join(path.delimiter),
    LD_LIBRARY_PATH: [tc.SEGWAL_LD_LIBRARY_PATH, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
    RUSTC: tc.SEGWAL_RUSTC,
    // cargo test's doc tests: rustdoc must be the same release as the std it builds.
    RUSTDOC: path.join(path.dirname(tc.SEGWAL_RUSTC), 'rustdoc'),
    RUSTC_BOOTSTRAP: '1',
    CARGO_TARGET_DIR: process.env.SEGWAL_CROSS_TARGET_DIR || path.join(root, 'target', 'cross'),
  }
  // Set when run from an npm script under rustup's cargo; they would pick rustup's tools.
  delete env.RUSTUP_TOOLCHAIN
  delete env.CARGO
  return env
}

module.exports = { TARGETS, toolchainEnv, haveTools, crossEnv, log, root }
