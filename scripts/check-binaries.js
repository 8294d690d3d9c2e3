#!/usr/bin/env node
'use strict'
// Checks every prebuilt binary under <dir>/prebuilds/ against what its place promises:
// format (ELF, Mach-O, PE) and architecture, C library (glibc or musl, by what it links),
// glibc builds needing no GLIBC_ symbol version above 2.17, the N-API entry point
// exported (and, on macOS, imported from the loading Node), and only system libraries linked (no libgcc_s/libwinpthread DLL a user would
// not have, no Homebrew path). No toolchain needed: scripts/binary-info.js reads the files.
//
//   node scripts/check-binaries.js [dir] [--all]
//     dir    a package root (default: this repository)
//     --all  also fail when one of the seven platforms is missing
const fs = require('node:fs')
const path = require('node:path')
const { TARGETS } = require('./platforms')
const { binaryInfo, compareVersions } = require('./binary-info')

/** Libraries each kind of binary may link: what every such system has. */
const SYSTEM_LIBS = {
  glibc: /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/,
  // musl's loader resolves libc.so (and libpthread, libm, ...) to itself; Node's Alpine
  // images carry libgcc.
  musl: /^(libc\.so|libc\.musl-(x86_64|aarch64)\.so\.1|libgcc_s\.so\.1)$/,
  macho: /^(\/usr\/lib\/|\/System\/Library\/)/,
  // Windows system DLLs, and node.exe itself (the N-API functions).
  pe: /^(kernel32|ntdll|advapi32|bcrypt|bcryptprimitives|userenv|ws2_32|msvcrt|ucrtbase|api-ms-win-[\w-]+|node)\.(dll|exe)$/i,
}

/** dyld's library ordinal for "whatever image defines it" (BIND_SPECIAL_DYLIB_FLAT_LOOKUP). */
const FLAT_LOOKUP = -2

function check(target, file) {
  const problems = []
  const info = binaryInfo(file)
  if (info.format !== target.format) problems.push(`format ${info.format}, expected ${target.format}`)
  if (info.arch !== target.arch) problems.push(`architecture ${info.arch}, expected ${target.arch}`)
  if (!(info.exports || []).includes('napi_register_module_v1')) problems.push('does not export napi_register_module_v1')
  if (target.format === 'elf') {
    if (info.libc !== target.libc) problems.push(`links ${info.libc} libc, expected ${target.libc}`)
    if (target.maxGlibc && info.maxGlibc && compareVersions(info.maxGlibc, target.maxGlibc) > 0) {
      const newer = info.glibcVersions.filter((v) => compareVersions(v, target.maxGlibc) > 0)
      problems.push(`needs GLIBC_${newer.join(', GLIBC_')} (newer than ${target.maxGlibc})`)
    }
    if (target.libc === 'musl' && info.glibcVersions.length) problems.push('needs GLIBC_ symbol versions')
  }
  if (target.format === 'macho') {
    // Node exports N-API from its executable; an addon must look it up there (flat lookup,
    // ld's `-undefined dynamic_lookup`), not in a library it names.
    const napi = info.imports.filter((s) => /^napi_/.test(s.name))
    const bound = napi.filter((s) => s.ordinal !== FLAT_LOOKUP)
    if (!napi.length) problems.push('imports no napi_ function (how does it reach Node?)')
    if (target.minOs && (!info.minOs || compareVersions(info.minOs, target.minOs) > 0)) {
      problems.push(`built for macOS ${info.minOs || '(unknown)'}, newer than ${target.minOs}`)
    }
    if (target.signed && info.signature !== 'valid') problems.push(`code signature ${info.signature} (Apple silicon will not load it)`)
    if (bound.length) problems.push(`binds ${bound[0].name} (and ${bound.length - 1} more) to library #${bound[0].ordinal}, not to the loading Node`)
  }
  const allowed = SYSTEM_LIBS[target.format === 'elf' ? target.libc : target.format]
  for (const lib of info.needed || []) if (!allowed.test(lib)) problems.push(`links ${lib}, not a system library`)
  const summary = [
    info.format,
    info.arch,
    target.libc && `${info.libc}${info.maxGlibc ? ` (max GLIBC_${info.maxGlibc})` : ''}`,
    `links ${(info.needed || []).join(', ')}`,
    info.imports && `N-API by flat lookup (${info.imports.filter((s) => /^napi_/.test(s.name)).length} functions)`,
    info.signature && `signature ${info.signature}`,
    info.minOs && `macOS >= ${info.minOs}`,
  ]
    .filter(Boolean)
    .join('; ')
  return { problems, summary }
}

function main() {
  const args = process.argv.slice(2)
  const all = args.includes('--all')
  const dir = path.resolve(args.find((a) => !a.startsWith('--')) || path.join(__dirname, '..'))
  let failed = false
  let found = 0
  for (const target of TARGETS) {
    const file = path.join(dir, 'prebuilds', target.dir, target.file)
    if (!fs.existsSync(file)) {
      if (all) {
        console.log(`FAIL ${target.id}: prebuilds/${target.dir}/${target.file} is missing`)
        failed = true
      } else {
        console.log(`skip ${target.id}: not built`)
      }
      continue
    }
    found++
    const { problems, summary } = check(target, file)
    console.log(`${problems.length ? 'FAIL' : 'ok  '} ${target.id}: ${summary}`)
    for (const p of problems) console.log(`     ${p}`)
    failed ||= problems.length > 0
  }
  // Anything else under prebuilds/ would be shipped but never checked.
  const known = new Set(TARGETS.map((t) => path.join(t.dir, t.file)))
  const prebuilds = path.join(dir, 'prebuilds')
  for (const sub of fs.existsSync(prebuilds) ? fs.readdirSync(prebuilds) : []) {
    for (const f of fs.readdirSync(path.join(prebuilds, sub))) {
      if (!known.has(path.join(sub, f))) {
        console.log(`FAIL prebuilds/${sub}/${f}: not a platform this package knows`)
        failed = true
      }
    }
  }
  if (!found) {
    console.log(`FAIL no prebuilt binary under ${prebuilds}`)
    failed = true
  }
  process.exit(failed ? 1 : 0)
}

module.exports = { check }

if (require.main === module) main()
