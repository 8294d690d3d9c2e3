#!/usr/bin/env node
// Long-running kill -9 harness:
//   node __test__/crash-run.mjs [--rounds N] [--seed S] [--dir D] [--keep] [--quiet]
//                               [--power-loss-rate R] [--no-frame-boundary-cuts]
// Prints progress and a final summary line; exits 1 (keeping the directory) on the
// first violated invariant. Same checks as crash.test.mjs (see crash-lib.mjs).

import { parseArgs } from 'node:util'
import { runCrashRounds } from './crash-lib.mjs'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '100' },
    seed: { type: 'string' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    'power-loss-rate': { type: 'string', default: '0.35' },
    'no-frame-boundary-cuts': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (values.help) {
  console.log('usage: node __test__/crash-run.mjs [--rounds N] [--seed S] [--dir D] [--keep] [--quiet] [--power-loss-rate R] [--no-frame-boundary-cuts]')
  process.exit(0)
}
const rounds = Number(values.rounds)
if (!Number.isSafeInteger(rounds) || rounds < 1) {
  console.error(`--rounds must be a positive integer, got ${values.rounds}`)
  process.exit(2)
}
const seed = values.seed === undefined ? undefined : Number(values.seed)
const progressEvery = values.quiet ? 0 : Math.max(1, Math.min(50, Math.ceil(rounds / 40)))

console.log(`crash-run: ${rounds} rounds, seed ${seed ?? '(random)'}`)
try {
  const s = await runCrashRounds({
    rounds,
    seed,
    dir: values.dir,
    keep: values.keep,
    powerLossRate: Number(values['power-loss-rate']),
    frameBoundaryCuts: !values['no-frame-boundary-cuts'],
    progressEvery,
    log: (line) => console.log(line),
  })
  const modes = Object.entries(s.killModes)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
  console.log(
    `crash-run OK: ${s.rounds} rounds (${s.kills} kills, ${s.cleanStops} clean stops, ${s.chained} chained; ${modes}), ` +
      `${s.verifications} verified reopens, ${s.acked} acked records (${s.ackedBatches} batches), ` +
      `${s.recordsChecked} record reads checked, ${s.unackedSurvivors} un-acked survivors, ` +
      `${s.recoveries} recovery entries (${s.truncatedBytes} B cut, ${s.removedSegments} segments removed), ` +
      `${s.powerLosses} simulated power losses (${s.powerLossBytes} B dropped), ${s.purgesByWriter}+${s.purgesByVerifier} purges, max open ${s.maxOpenMs} ms, max ${s.maxRecords} records/partition, ` +
      `seed ${s.seed}, ${(s.elapsedMs / 1000).toFixed(1)} s`,
  )
} catch (e) {
  console.error(`crash-run FAILED: ${e.stack ?? e}`)
  if (e.crashDir) console.error(`directory kept for inspection: ${e.crashDir}`)
  process.exit(1)
}
