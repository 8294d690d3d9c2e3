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
 * So batches fill the young generation with garbage, each its share of what is left in
 * step with its own memory, so that V8 scavenges by the time `SCAVENGE_AFTER` (or the young
 * generation's size) of batch memory has piled up since the last scavenge or fall of V8's
 * external memory. The memory that piles up is most of a stream's RSS. 4 GiB of 4 KiB records through `stream()` in a fresh process
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
/** The young generation's use at the last call: a fall means V8 scavenged since. */
let youngLast = 0
/**
 * Where the garbage goes, so that V8 must allocate it. Emptied before each next array and
 * at the end, so that none of it survives the scavenge: V8 answers survivors by growing
 * the young generation, and a 64 KiB array found alive at every scavenge doubled it
 * streaming 4 GiB (`new_space` 8 -> 16 MiB, and 100 MiB of RSS against 91 at 16 MiB).
 */
let ballast: unknown

/**
 * Brings about a scavenge by the time batch memory has piled up to its mark (see above);
 * called per batch, each bringing a share of the garbage in step with its own memory.
 */
export function addBallast(): void {
  const external = getHeapStatistics().external_memory
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')
  if (young === undefined) return
  // A scavenge found the batches read so far dead, but V8 frees array buffers on another
  // thread, maybe after the next batch: count from the scavenge, and again from the fall.
  const scavenged = young.space_used_size < youngLast
  const first = externalFloor < 0
  if (first || scavenged || external < externalLast) externalFloor = external
  const added = first ? 0 : Math.max(external - externalLast, 0)
  externalLast = external
  // `space_size` is both semi-spaces: batch memory may pile up to twice the garbage it takes.
  const mark = Math.max(SCAVENGE_AFTER, young.space_size)
  const left = mark - (external - externalFloor)
  // What is left of the young generation, in the share this batch took of what could still
  // pile up: filling it all at once took 10-18 ms of one turn where V8 had grown it to 16 MiB.
  const room = left + added
  const garbage = left <= 0 ? young.space_available_size : (young.space_available_size * added) / room
  let made = 0
  for (; made < garbage; made += BALLAST_ARRAY_BYTES) {
    ballast = undefined
    ballast = new Array(BALLAST_ARRAY_SLOTS)
  }
  ballast = undefined
  // Less than this at the next call, and a scavenge came (maybe in this very fill).
  youngLast = young.space_used_size + made
}
