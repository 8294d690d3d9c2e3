// Child process of api-lock.test.mjs: opens the WAL in argv[2], reports on
// stdout, then either holds the lock until killed ('hold') or exits ('try').
import { Wal } from 'segwal'

const [dir, mode] = process.argv.slice(2)
try {
  const wal = await Wal.open(dir)
  await wal.append(1, `from child ${process.pid}`)
  process.stdout.write('opened\n')
  if (mode === 'hold') setInterval(() => {}, 1 << 30)
  else await wal.close()
} catch (e) {
  process.stdout.write(`${e.code}\n`)
}
