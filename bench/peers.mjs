// How each system is loaded and opened for the benchmark: segwal (this package), lmdb-js,
// classic-level, and plain node:fs. Every system is configured for the durability the
// workload names, so the rows compare like with like.
import fs from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

let segwalMod
/** The package itself (CommonJS entry, like `require('segwal')`), or null with the reason. */
export function loadSegwal() {
  if (segwalMod === undefined) {
    try {
      segwalMod = require('..')
      if (typeof segwalMod.Wal?.open !== 'function') throw new Error('Wal.open missing from the package exports')
    } catch (e) {
      segwalMod = null
      loadSegwal.error = e
    }
  }
  return segwalMod
}

export async function openSegwal(dir, options) {
  const m = loadSegwal()
  if (!m) throw new Error(`segwal unavailable: ${loadSegwal.error?.message}`)
  return m.Wal.open(dir, options)
}

let lmdbMod
export async function loadLmdb() {
  if (lmdbMod === undefined) {
    try {
      lmdbMod = await import('lmdb')
    } catch (e) {
      lmdbMod = null
      loadLmdb.error = e
    }
  }
  return lmdbMod
}

/**
 * lmdb-js with raw binary values and uint32 keys (its fastest encodings).
 * `durable: true` turns `overlappingSync` off, so a put's promise resolves only after its
 * commit is synced to disk (with the default overlappingSync it resolves at commit, before
 * the flush). `durable: false` is `noSync` (no flush at all).
 */
export async function openLmdb(dir, { durable }) {
  const m = await loadLmdb()
  if (!m) throw new Error(`lmdb unavailable: ${loadLmdb.error?.message}`)
  return m.open({
    path: dir,
    encoding: 'binary',
    keyEncoding: 'uint32',
    compression: false,
    overlappingSync: false,
    noSync: !durable,
    mapSize: 64 * 1024 ** 3,
  })
}

let levelMod
export async function loadLevel() {
  if (levelMod === undefined) {
    try {
      levelMod = await import('classic-level')
    } catch (e) {
      levelMod = null
      loadLevel.error = e
    }
  }
  return levelMod
}

export async function openLevel(dir) {
  const m = await loadLevel()
  if (!m) throw new Error(`classic-level unavailable: ${loadLevel.error?.message}`)
  const db = new m.ClassicLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  return db
}

/** A 4-byte big-endian key (sorted like the sequence number it encodes). */
export function beKey(i) {
  const k = Buffer.allocUnsafe(4)
  k.writeUInt32BE(i >>> 0)
  return k
}

/** Synchronous append + fdatasync of one buffer: the 'raw' baseline (blocks the event loop). */
export function rawWriter(file) {
  const fd = fs.openSync(file, 'w')
  return {
    writeSync: (buf) => fs.writeSync(fd, buf),
    syncedWrite(buf) {
      fs.writeSync(fd, buf)
      fs.fdatasyncSync(fd)
    },
    close: () => fs.closeSync(fd),
  }
}

export function payload(size, seed = 1) {
  const b = Buffer.allocUnsafe(size)
  let x = seed * 2654435761
  for (let i = 0; i < size; i++) {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    b[i] = x & 0xff
  }
  return b
}

export function available() {
  return {
    segwal: !!loadSegwal(),
    lmdb: !!lmdbMod,
    level: !!levelMod,
  }
}
