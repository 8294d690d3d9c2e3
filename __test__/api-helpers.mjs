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
