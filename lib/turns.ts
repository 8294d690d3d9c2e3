/**
 * How long streams may keep the JS thread in one turn of the event loop. A caller
 * draining records or batches that are already read runs in one macrotask: each step
 * resolves in a microtask and the native reader keeps the next batch ready, so timers
 * and I/O would wait for the whole drain (up to 26 ms in bench 5b; issue #11 target 8).
 * Streams ask `turnSpent()` before each batch (reader.ts) and every few hundred records
 * (stream.ts), and past the budget give the event loop a turn with `nextTurn()`. The
 * clock is shared: two streams drained in one turn share its budget.
 */
import { performance } from 'node:perf_hooks'

/** A few batches' work: one `setImmediate` hop per budget costs ~1% of a drain. */
const TURN_BUDGET_MS = 2

/** When the current macrotask's first reader step ran (-1: none yet in this turn). */
let turnStart = -1

function endTurn(): void {
  turnStart = -1
}

function startTurn(now: number): void {
  turnStart = now
  // Runs once the current macrotask and all its microtasks are done: the turn's end.
  setImmediate(endTurn)
}

/** True once streams have held this turn of the event loop longer than the budget. */
export function turnSpent(): boolean {
  const now = performance.now()
  if (turnStart < 0) {
    startTurn(now)
    return false
  }
  return now - turnStart > TURN_BUDGET_MS
}

/**
 * Resolves in a later turn of the event loop, after timers and I/O have had theirs; the
 * caller goes on in that turn, whose clock starts then.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) =>
    setImmediate(() => {
      if (turnStart < 0) startTurn(performance.now())
      resolve()
    }),
  )
}
