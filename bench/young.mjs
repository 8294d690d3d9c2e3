// V8's young generation, for measuring how batch streams give their memory back
// (lib/ballast.ts): its size, and a way to grow it to its largest, as a
// process that keeps many young objects alive does (a server with requests in flight;
// the bench's earlier workloads). Used by bench/read-cpu.mjs --grown and a test.
import { getHeapSpaceStatistics } from 'node:v8'

/** Both semi-spaces of the young generation, KiB. */
export const youngKiB = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size >> 10

/** Keeps young objects alive across a few scavenges, which makes V8 grow the young generation; returns its size (KiB). */
export async function growYoung() {
  let kept = []
  for (let round = 0; round < 40; round++) {
    kept.push(Array.from({ length: 100_000 }, (_, i) => ({ i, p: Promise.resolve(i) })))
    if (kept.length > 3) kept.shift()
    await new Promise((resolve) => setImmediate(resolve))
  }
  kept = null
  return youngKiB()
}
