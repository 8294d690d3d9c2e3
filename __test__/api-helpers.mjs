// Shared helpers of the api*.test.mjs suites (not a test file itself).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh temporary directory, removed by `cleanup()`. */
export function makeTempDirs(prefix) {
  const dirs = []
  return {
    tempDir() {
      const d = mkdtempSync(join(tmpdir(), `segwal-${prefix}-`))
      dirs.push(d)
      return d
    },
    cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
    },
  }
}

/** Collects a stream (or any async iterable) into an array, copying payloads. */
export async function collect(iterable) {
  const out = []
  for await (const r of iterable) out.push({ ...r, payload: Buffer.from(r.payload) })
  return out
}

/** The segment file name of a partition and index. */
export function segmentFile(partition, index) {
  return `part_${partition}_${String(index).padStart(10, '0')}.wal`
}

/** Payload `i` of a test sequence: recognisable and of size `size`. */
export function payloadOf(i, size = 100) {
  const b = Buffer.alloc(size, i % 251)
  b.write(`rec-${i}`)
  return b
}

/** A seeded generator of numbers in [0, 1) (splitmix64): the model tests' operation sequences. */
export function rng(seed) {
  let s = BigInt.asUintN(64, BigInt(seed))
  return () => {
    s = BigInt.asUintN(64, s + 0x9e3779b97f4a7c15n)
    let z = s
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n)
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn)
    return Number((z ^ (z >> 31n)) % 2n ** 53n) / 2 ** 53
  }
}
