'use strict'
// Reads what the platform checks need from a native binary, with no toolchain: its format
// (ELF, Mach-O, PE), architecture, the libraries it links, the symbols it exports and, for
// ELF, the GLIBC_ symbol versions it needs (what `objdump -T` shows); for Mach-O, the
// library each imported symbol is bound to and whether its code signature holds.
//
//   node scripts/binary-info.js FILE...     prints one JSON line per file
const crypto = require('node:crypto')
const fs = require('node:fs')

const ELF_MACHINES = { 0x3e: 'x64', 0xb7: 'arm64', 0x28: 'arm', 0x03: 'ia32' }
const MACHO_CPUS = { 0x01000007: 'x64', 0x0100000c: 'arm64' }
const PE_MACHINES = { 0x8664: 'x64', 0xaa64: 'arm64', 0x14c: 'ia32' }

function cstr(buf, at) {
  const end = buf.indexOf(0, at)
  return buf.toString('latin1', at, end < 0 ? buf.length : end)
}

function elf(buf) {
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('only 64-bit little-endian ELF is expected')
  const info = { format: 'elf', arch: ELF_MACHINES[buf.readUInt16LE(18)] || `machine ${buf.readUInt16LE(18)}` }
  info.type = { 2: 'executable', 3: 'shared object' }[buf.readUInt16LE(16)] || 'other'
  const shoff = Number(buf.readBigUInt64LE(0x28))
  const shentsize = buf.readUInt16LE(0x3a)
  const shnum = buf.readUInt16LE(0x3c)
  const sections = []
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize
    sections.push({
      type: buf.readUInt32LE(at + 4),
      offset: Number(buf.readBigUInt64LE(at + 0x18)),
      size: Number(buf.readBigUInt64LE(at + 0x20)),
      link: buf.readUInt32LE(at + 0x28),
      entsize: Number(buf.readBigUInt64LE(at + 0x38)),
    })
  }
  const strOf = (s) => (at) => cstr(buf, sections[s.link].offset + at)
  info.needed = []
  info.exports = []
  info.glibcVersions = []
  for (const s of sections) {
    const str = strOf(s)
    if (s.type === 6) {
      // SHT_DYNAMIC: DT_NEEDED entries name the linked libraries.
      for (let at = s.offset; at < s.offset + s.size; at += 16) {
        const tag = buf.readBigUInt64LE(at)
        if (tag === 0n) break
        if (tag === 1n) info.needed.push(str(Number(buf.readBigUInt64LE(at + 8))))
      }
    } else if (s.type === 11) {
      // SHT_DYNSYM: defined global symbols are the exports.
      for (let at = s.offset + 24; at < s.offset + s.size; at += 24) {
        const bind = buf[at + 4] >> 4
        if (buf.readUInt16LE(at + 6) !== 0 && (bind === 1 || bind === 2)) info.exports.push(str(buf.readUInt32LE(at)))
      }
    } else if (s.type === 0x6ffffffe) {
      // SHT_GNU_verneed: the symbol versions needed from each library.
      let at = s.offset
      for (;;) {
        const cnt = buf.readUInt16LE(at + 2)
        let aux = at + buf.readUInt32LE(at + 8)
        for (let i = 0; i < cnt; i++) {
          const name = str(buf.readUInt32LE(aux + 8))
          if (name.startsWith('GLIBC_')) info.glibcVersions.push(name.slice(6))
          aux += buf.readUInt32LE(aux + 12)
        }
        const next = buf.readUInt32LE(at + 12)
        if (next === 0) break
        at += next
      }
    }
  }
  // glibc's is libc.so.6 (with GLIBC_ symbol versions); musl's is libc.musl-<arch>.so.1,
  // or plain libc.so as zig links it, which musl's loader resolves to itself.
  const musl = info.needed.some((n) => n === 'libc.so' || /^(libc\.musl-|ld-musl-)/.test(n))
  const glibc = info.needed.includes('libc.so.6')
  info.libc = musl && !glibc ? 'musl' : glibc && !musl ? 'glibc' : musl ? 'both' : 'none'
  info.glibcVersions = [...new Set(info.glibcVersions)].sort(compareVersions)
  info.maxGlibc = info.glibcVersions[info.glibcVersions.length - 1] || null
  return info
}

/**
 * The symbols a Mach-O image binds at load time, each with the library ordinal dyld looks
 * it up in (-2: flat lookup in everything loaded, how an addon finds Node's N-API), from
 * the bind opcodes of LC_DYLD_INFO(_ONLY) or the imports of LC_DYLD_CHAINED_FIXUPS.
 */
function machoImports(buf, cmd, at) {
  const imports = []
  if (cmd === 0x80000034) {
    const h = buf.readUInt32LE(at + 8)
    const [importsOff, symbolsOff, count, format] = [4, 8, 12, 16].map((o) => buf.readUInt32LE(h + o + 4))
    for (let i = 0; i < count; i++) {
      let ordinal, nameOff
      if (format === 3) {
        const v = buf.readBigUInt64LE(h + importsOff + i * 16)
        ordinal = Number(v & 0xffffn)
        ordinal = ordinal > 0xfff0 ? ordinal - 0x10000 : ordinal
        nameOff = Number(v >> 32n)
      } else {
        const v = buf.readUInt32LE(h + importsOff + i * (format === 2 ? 8 : 4))
        ordinal = v & 0xff
        ordinal = ordinal > 0xf0 ? ordinal - 0x100 : ordinal
        nameOff = v >>> 9
      }
      imports.push({ name: cstr(buf, h + symbolsOff + nameOff), ordinal })
    }
    return imports
  }
  // LC_DYLD_INFO(_ONLY): bind, weak bind and lazy bind opcode streams.
  for (const o of [16, 24, 32]) {
    const p = { i: buf.readUInt32LE(at + o) }
    const end = p.i + buf.readUInt32LE(at + o + 4)
    const uleb = () => {
      let r = 0
      let shift = 0
      for (;;) {
        const b = buf[p.i++]
        r += (b & 0x7f) * 2 ** shift
        shift += 7
        if (!(b & 0x80)) return r
      }
    }
    let ordinal = 0
    let name = ''
    while (p.i < end) {
      const b = buf[p.i++]
      const [op, imm] = [b & 0xf0, b & 0x0f]
      if (op === 0x10) ordinal = imm
      else if (op === 0x20) ordinal = uleb()
      else if (op === 0x30) ordinal = imm ? (imm | 0xf0) - 0x100 : 0
      else if (op === 0x40) {
        name = cstr(buf, p.i)
        p.i += Buffer.byteLength(name, 'latin1') + 1
      } else if (op === 0x60 || op === 0x70 || op === 0x80) uleb()
      else if (op === 0x90 || op === 0xa0 || op === 0xb0 || op === 0xc0) {
        imports.push({ name, ordinal })
        if (op === 0xa0) uleb()
        if (op === 0xc0) uleb(), uleb()
      }
    }
  }
  return imports
}

/**
 * Whether the code signature (LC_CODE_SIGNATURE) holds: its CodeDirectory's hash of every
 * page matches the file. Apple silicon refuses to map unsigned or wrongly signed code;
 * the linker signs arm64 images ad hoc. 'none' when there is no signature.
 */
function machoSignature(buf, at) {
  const blob = buf.readUInt32LE(at + 8)
  if (buf.readUInt32BE(blob) !== 0xfade0cc0) return 'invalid'
  for (let i = 0; i < buf.readUInt32BE(blob + 8); i++) {
    const cd = blob + buf.readUInt32BE(blob + 12 + i * 8 + 4)
    if (buf.readUInt32BE(cd) !== 0xfade0c02) continue
    const hashOffset = buf.readUInt32BE(cd + 16)
    const nCodeSlots = buf.readUInt32BE(cd + 28)
    const codeLimit = buf.readUInt32BE(cd + 32)
    const [hashSize, hashType, pageSize] = [buf[cd + 36], buf[cd + 37], 2 ** buf[cd + 39]]
    const algorithm = { 1: 'sha1', 2: 'sha256' }[hashType]
    if (!algorithm) return 'invalid'
    for (let slot = 0; slot < nCodeSlots; slot++) {
      const page = buf.subarray(slot * pageSize, Math.min((slot + 1) * pageSize, codeLimit))
      const want = buf.subarray(cd + hashOffset + slot * hashSize, cd + hashOffset + (slot + 1) * hashSize)
      const got = crypto.createHash(algorithm).update(page).digest().subarray(0, hashSize)
      if (!got.equals(want)) return 'invalid'
    }
    return nCodeSlots * pageSize >= codeLimit ? 'valid' : 'invalid'
  }
  return 'invalid'
}

function macho(buf) {
  const info = { format: 'macho', arch: MACHO_CPUS[buf.readUInt32LE(4)] || `cpu ${buf.readUInt32LE(4)}` }
  info.type = { 6: 'dylib', 8: 'bundle', 2: 'executable' }[buf.readUInt32LE(12)] || 'other'
  const ncmds = buf.readUInt32LE(16)
  info.needed = []
  info.exports = []
  info.imports = []
  info.signature = 'none'
  let at = 32
  for (let i = 0; i < ncmds; i++) {
    const cmd = buf.readUInt32LE(at)
    const size = buf.readUInt32LE(at + 4)
    if (cmd === 0x1d) info.signature = machoSignature(buf, at)
    else if (cmd === 0x32) {
      // LC_BUILD_VERSION: the oldest macOS that loads it, as X.Y.
      const v = buf.readUInt32LE(at + 12)
      info.minOs = `${v >>> 16}.${(v >> 8) & 0xff}`
    }
    else if (cmd === 0x22 || cmd === 0x80000022 || cmd === 0x80000034) {
      info.imports.push(...machoImports(buf, cmd, at).map((s) => ({ ...s, name: s.name.replace(/^_/, '') })))
    } else if (cmd === 0xc || cmd === 0x80000018 || cmd === 0x8000001f) {
      info.needed.push(cstr(buf, at + buf.readUInt32LE(at + 8)))
    } else if (cmd === 0x2) {
      const [symoff, nsyms, stroff] = [buf.readUInt32LE(at + 8), buf.readUInt32LE(at + 12), buf.readUInt32LE(at + 16)]
      for (let s = 0; s < nsyms; s++) {
        const e = symoff + s * 16
        const type = buf[e + 4]
        // N_EXT and defined in a section (N_SECT): an exported symbol; drop the C `_`.
        if ((type & 0x01) === 1 && (type & 0x0e) === 0x0e) info.exports.push(cstr(buf, stroff + buf.readUInt32LE(e)).slice(1))
      }
    }
    at += size
  }
  return info
}

function pe(buf) {
  const h = buf.readUInt32LE(0x3c)
  if (buf.readUInt32LE(h) !== 0x4550) throw new Error('no PE header')
  const info = { format: 'pe', arch: PE_MACHINES[buf.readUInt16LE(h + 4)] || `machine ${buf.readUInt16LE(h + 4)}` }
  info.type = buf.readUInt16LE(h + 22) & 0x2000 ? 'dll' : 'executable'
  const nsections = buf.readUInt16LE(h + 6)
  const opt = h + 24
  if (buf.readUInt16LE(opt) !== 0x20b) throw new Error('only PE32+ is expected')
  const dirs = opt + 112
  const secs = opt + buf.readUInt16LE(h + 20)
  const sections = []
  for (let i = 0; i < nsections; i++) {
    const at = secs + i * 40
    sections.push({ va: buf.readUInt32LE(at + 12), vsize: buf.readUInt32LE(at + 8), raw: buf.readUInt32LE(at + 20) })
  }
  const off = (rva) => {
    const s = sections.find((x) => rva >= x.va && rva < x.va + x.vsize)
    if (!s) throw new Error(`RVA ${rva} is in no section`)
    return rva - s.va + s.raw
  }
  info.exports = []
  const exportRva = buf.readUInt32LE(dirs)
  if (exportRva) {
    const e = off(exportRva)
    const count = buf.readUInt32LE(e + 24)
    const names = off(buf.readUInt32LE(e + 32))
    for (let i = 0; i < count; i++) info.exports.push(cstr(buf, off(buf.readUInt32LE(names + i * 4))))
  }
  info.needed = []
  const importRva = buf.readUInt32LE(dirs + 8)
  if (importRva) {
    for (let d = off(importRva); buf.readUInt32LE(d + 12) !== 0; d += 20) info.needed.push(cstr(buf, off(buf.readUInt32LE(d + 12))))
  }
  return info
}

function compareVersions(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] || 0) - (pb[i] || 0)
    if (d) return d
  }
  return 0
}

/** What `file` is; `{ format: 'unknown' }` for anything not ELF, Mach-O 64 or PE. */
function binaryInfo(file) {
  const buf = fs.readFileSync(file)
  if (buf.readUInt32BE(0) === 0x7f454c46) return elf(buf)
  if (buf.readUInt32LE(0) === 0xfeedfacf) return macho(buf)
  if (buf.readUInt16LE(0) === 0x5a4d) return pe(buf)
  return { format: 'unknown' }
}

module.exports = { binaryInfo, compareVersions }

if (require.main === module) {
  for (const f of process.argv.slice(2)) {
    const { exports, imports, ...rest } = binaryInfo(f)
    console.log(JSON.stringify({ file: f, ...rest, exports: exports && exports.length, imports: imports && imports.length }))
  }
}
