/**
 * Young garbage that makes V8 collect read batches in scavenges: both streams' batches
 * (reader.ts) bring it once their memory piles up.
 *
 * V8 gives batch memory back (to the pool in pool.rs) only when it collects the batch. A
 * batch that dies young is found by a scavenge, which costs well under a millisecond; one
 * that V8 must find by a full mark-compact costs 5-17 ms of the JS thread on the 2-core
 * VM (plus concurrent marking), and a pause of 5-9 ms. A batch stream makes almost no
 * garbage of its own, so no scavenge came before the batches' external memory added up
 * to V8's limit (64 MiB), and every 64 MiB streamed cost a mark-compact: about a third of
 * the process's CPU at 4 KiB records (bench/read-cpu.mjs). A record stream makes a
 * scavenge every few batches with its per-record objects, but not where the young
 * generation is large (below): there it made 12 mark-compacts in 768 MiB.
 * So batches bring young-generation garbage (holey arrays, a memset's cost) once batch
 * memory piles up: when V8's external memory has grown `BALLAST_AFTER` since it last fell
 * (a collection gave batches back), each batch brings enough that the young generation
 * fills, and is scavenged, before `SCAVENGE_BY`. How much that takes depends on the young
 * generation's size, which V8 grows (1 to 16 MiB a semi-space) in a process that keeps
 * many young objects alive, as a server with requests in flight does: a fixed 1/16 of
 * each batch's bytes left such a process with a mark-compact per ~80 MiB streamed again
 * (`node --expose-gc bench/read-cpu.mjs 4096 65536 5 batches --grown`: 18 mark-compacts
 * and 2,574 ns of CPU per record; now none and 1,943 ns), and a share sized to the young
 * generation from every batch on cost the bench's 64 MiB streams 10-25% of their rate in
 * garbage that did not pay off so soon. A stream that reads less than `BALLAST_AFTER`
 * between two collections brings none.
 * The two limits trade memory for the JS thread's time: the batch memory that piles up
 * between scavenges is most of a stream's RSS (4 GiB through `stream()`: 16 and 48 MiB
 * peaked at 29 MiB of external memory and 95 MiB of RSS, 8 and 24 at 22 and 88), and the
 * garbage that brings them sooner costs a memset of its size.
 */
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8'

/** Batch memory that may pile up uncollected before batches bring young garbage. */
const BALLAST_AFTER = 8 << 20
/** ... and by when a scavenge must have come (V8's limit is 64 MiB). */
const SCAVENGE_BY = 24 << 20
/**
 * Garbage per batch byte at most: a young generation grown to 16 MiB a semi-space would
 * otherwise ask for more garbage than batch bytes (1,350 ns of the JS thread per 4 KiB
 * record with `--grown`, against 870 at this cap), and such a process, holding 32 MiB of
 * young objects, has room for the batch memory the cap lets pile up (40 MiB).
 */
const MAX_SHARE = 1 / 2
const BALLAST_ARRAY_SLOTS = (64 << 10) / 8
/** External memory when a collection last gave some back (batches pile up from there). */
let externalFloor = -1
let externalLast = 0
/**
 * Where the garbage goes, so that V8 must allocate it; emptied before `addBallast` returns,
 * so that none of it survives a scavenge. V8 answers survivors by growing the young
 * generation: a batch's whole ballast kept until the next batch (up to 1 MiB) doubled
 * `new_space` streaming 4 GiB (16 -> 32 MiB, 132 MiB of RSS), and its last 64 KiB array
 * kept still did (8 -> 16 MiB, 109-111 MiB of RSS against 94-97 with none kept).
 */
let ballast: unknown

/** Young garbage for a batch of `bytes`, once batch memory piles up (see above). */
export function addBallast(bytes: number): void {
  const external = getHeapStatistics().external_memory
  if (externalFloor < 0 || external < externalLast) externalFloor = external
  externalLast = external
  if (external - externalFloor < BALLAST_AFTER) return
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')
  // `space_size` is both semi-spaces; a scavenge comes when one of them is full.
  const semi = young === undefined ? 0 : young.space_size / 2
  const share = Math.min(MAX_SHARE, Math.max(1 / 16, semi / (SCAVENGE_BY - BALLAST_AFTER)))
  // In arrays of at most 64 KiB: V8 puts an object over 128 KiB in a space of its own,
  // mapped and unmapped one by one (page faults, 2-4x the JS thread's time per batch).
  for (let slots = Math.floor((bytes * share) / 8); slots > 0; slots -= BALLAST_ARRAY_SLOTS) {
    ballast = new Array(Math.min(slots, BALLAST_ARRAY_SLOTS))
  }
  ballast = undefined
}

