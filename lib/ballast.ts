/**
 * Young garbage that makes V8 collect read batches in scavenges: both streams' batches
 * (reader.ts) bring it once their memory piles up.
 *
 * V8 gives batch memory back (to the pool in pool.rs) only when it collects the batch. A
 * batch that dies young is found by a scavenge; one that V8 must find by a full
 * mark-compact costs 5-17 ms of the JS thread on the 2-core VM (plus concurrent marking),
 * and a pause of 5-9 ms. A batch stream makes almost no garbage of its own, so no
 * scavenge came before the batches' external memory added up to V8's limit (64 MiB), and
 * every 64 MiB streamed cost a mark-compact: about a third of the process's CPU at 4 KiB
 * records (bench/read-cpu.mjs). A record stream makes a scavenge every few batches with
 * its per-record objects, but not where the young generation is large: there it made 12
 * mark-compacts in 768 MiB.
 *
 * So once `SCAVENGE_AFTER` of batch memory has piled up since V8's external memory last
 * fell (a collection gave batches back), a batch fills what is left of the young
 * generation with garbage, and V8 scavenges there and then. The memory that piles up is
 * most of a stream's RSS. 4 GiB of 4 KiB records through `stream()` in a fresh process
 * grew RSS by 26-28 MiB on 648d61e (no read-ahead, no ballast), at 2.2-2.3 GB/s; by 42-56
 * when batches brought a share of their bytes from 16 MiB on, so that a scavenge came by
 * ~48 (3.1-3.4 GB/s); and with this, by 38 at 12 MiB, 31-33 at 16 (2.7-3.0 GB/s) and
 * 26-28 at 8 (2.4-2.8 GB/s). The price is the scavenge, once per `SCAVENGE_AFTER`
 * streamed: 0.4-1.4 ms on the 2-core VM however little survives (V8's parallel
 * scavenging tasks wait for a core the reader thread holds), so 4 KiB records lose
 * 10-15% of their rate at 8 MiB against 16 (`node --expose-gc bench/read-cpu.mjs 4096
 * 65536 5 batches stream`). Where V8 has grown the young generation (1 to 16 MiB a
 * semi-space, in a process that keeps many young objects alive, as a server with
 * requests in flight does), batches pile up to its size instead, so that the garbage
 * stays at most half of what is streamed.
 */
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8'

/** Batch memory that may pile up before a scavenge is brought about. */
const SCAVENGE_AFTER = 8 << 20
/**
 * Garbage comes in arrays of 64 KiB: V8 puts an object over 128 KiB in a space of its
 * own, mapped and unmapped one by one (page faults, 2-4x the JS thread's time).
 */
const BALLAST_ARRAY_SLOTS = (64 << 10) / 8
const BALLAST_ARRAY_BYTES = BALLAST_ARRAY_SLOTS * 8
/** External memory when a collection last gave some back (batches pile up from there). */
let externalFloor = -1
let externalLast = 0
/**
 * Where the garbage goes, so that V8 must allocate it. Emptied before each next array and
 * at the end, so that none of it survives the scavenge: V8 answers survivors by growing
 * the young generation, and a 64 KiB array found alive at every scavenge doubled it
 * streaming 4 GiB (`new_space` 8 -> 16 MiB, and 100 MiB of RSS against 91 at 16 MiB).
 */
let ballast: unknown

/** Brings about a scavenge once batch memory has piled up (see above); called per batch. */
export function addBallast(): void {
  const external = getHeapStatistics().external_memory
  if (externalFloor < 0 || external < externalLast) externalFloor = external
  externalLast = external
  const piled = external - externalFloor
  if (piled < SCAVENGE_AFTER) return
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')
  // `space_size` is both semi-spaces: batch memory may pile up to twice the garbage it takes.
  if (young === undefined || piled < young.space_size) return
  for (let left = young.space_available_size + BALLAST_ARRAY_BYTES; left > 0; left -= BALLAST_ARRAY_BYTES) {
    ballast = undefined
    ballast = new Array(BALLAST_ARRAY_SLOTS)
  }
  ballast = undefined
  // The scavenge found the batches read so far dead, but V8 frees array buffers on
  // another thread, maybe after the next batch: count from here.
  externalFloor = external
}
