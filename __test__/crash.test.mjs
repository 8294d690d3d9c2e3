// kill -9 crash test: at least 25 rounds of a child writer (sync: 'always', small
// segments, concurrent appends, batches and runs of write()s each acknowledged by a
// flush(), on several partitions) SIGKILLed at random
// moments, each followed by a reopen that checks every acknowledged record, dense LSNs,
// whole-or-absent batches, an exact wal.recovery and that appending continues at
// lastLsn + 1. See crash-lib.mjs; `npm run test:crash -- --rounds N` for long runs.

import test from 'ava'
import * as segwal from 'segwal'
import { runCrashRounds } from './crash-lib.mjs'

test('kill -9 at random moments loses no acknowledged record', async (t) => {
  t.timeout(120_000)
  const seed = process.env.SEGWAL_CRASH_SEED === undefined ? undefined : Number(process.env.SEGWAL_CRASH_SEED)
  const rounds = Number(process.env.SEGWAL_CRASH_ROUNDS ?? 30)
  let summary
  try {
    summary = await runCrashRounds({
      wal: segwal,
      rounds,
      seed,
      // stay well under a minute on a busy 2-core machine, but never below 25 rounds
      minRounds: Math.min(25, rounds),
      // at least 25 rounds that end in a SIGKILL (some rounds end in a clean stop)
      minKills: Math.min(25, rounds),
      timeBudgetMs: 40_000,
    })
  } catch (e) {
    t.log(`failing seed: rerun with SEGWAL_CRASH_SEED=<seed> or node __test__/crash-run.mjs --seed <seed>`)
    throw e
  }
  t.log(
    `seed ${summary.seed}: ${summary.rounds} rounds, ${summary.kills} kills (${JSON.stringify(summary.killModes)}), ` +
      `${summary.acked} acked records, ${summary.unackedSurvivors} un-acked survivors, ` +
      `${summary.recoveries} recovery entries (${summary.truncatedBytes} B cut), ${(summary.elapsedMs / 1000).toFixed(1)} s`,
  )
  t.true(summary.rounds >= Math.min(25, rounds))
  t.true(summary.kills >= Math.min(25, rounds), `only ${summary.kills} kills`)
  t.true(summary.acked > 0, 'the writers got acknowledgements')
})
