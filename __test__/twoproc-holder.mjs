// Child process of twoproc.test.mjs.
//   node twoproc-holder.mjs hold <dir>   open <dir>, append 3 records, print "ready <lastLsn>",
//                                        then obey stdin lines: "append" -> "ok <lsn>",
//                                        "close" -> "closed" and exit 0,
//                                        "sleeper" -> spawn a detached `sleep 60` that inherits
//                                        whatever descriptors are inheritable, "sleeper <pid>"
//   node twoproc-holder.mjs try <dir>    try to open <dir>: print "opened <lastLsn(1)>" (and close)
//                                        or "error <code> <errno>"; exit 0
import { Wal } from 'segwal'
import { createInterface } from 'node:readline'
import { spawn } from 'node:child_process'

const [mode, dir] = process.argv.slice(2)
const out = (line) => process.stdout.write(line + '\n')

if (mode === 'try') {
  try {
    const wal = await Wal.open(dir)
    out(`opened ${wal.lastLsn(1)}`)
    await wal.close()
  } catch (e) {
    out(`error ${e.code} ${e.errno ?? '-'} ${e.constructor.name}`)
  }
  process.exit(0)
}

const wal = await Wal.open(dir, { sync: 'always' })
for (let i = 0; i < 3; i++) await wal.append(1, `held ${wal.lastLsn(1) + 1}`)
out(`ready ${wal.lastLsn(1)}`)
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'append') {
    const r = await wal.append(1, `held ${wal.lastLsn(1) + 1}`)
    out(`ok ${r.lsn}`)
  } else if (line === 'sleeper') {
    const child = spawn('sleep', ['60'], { stdio: 'ignore', detached: true })
    child.unref()
    out(`sleeper ${child.pid}`)
  } else if (line === 'close') {
    await wal.close()
    out('closed')
    process.exit(0)
  }
}
