// The directory lock: a second open of the same directory, from this process
// (under any spelling of the path) or from another, rejects with WAL_LOCKED;
// a lock left by a SIGKILLed process does not block the next open.
import test from 'ava'
import { spawn } from 'node:child_process'
import { symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import { Wal, WalError } from 'segwal'
import { makeTempDirs } from './api-helpers.mjs'

const { tempDir, cleanup } = makeTempDirs('api-lock')
test.after.always(cleanup)

const child = fileURLToPath(new URL('./api-lock-child.mjs', import.meta.url))

/** Starts the child; resolves with it and its first line of output. */
async function startChild(dir, mode) {
  const proc = spawn(process.execPath, [child, dir, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout.setEncoding('utf8')
  const line = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d
      if (out.includes('\n')) resolve(out.trim())
    })
    proc.on('exit', (code) => reject(new Error(`child exited (${code}) before reporting: ${out}`)))
  })
  return { proc, line: await line }
}

test('a second open in this process rejects with WAL_LOCKED, under any spelling of the path', async (t) => {
  const dir = tempDir()
  const link = join(tempDir(), 'link')
  symlinkSync(dir, link)
  const wal = await Wal.open(dir)
  for (const spelling of [dir, `${dir}/`, `${dir}/.`, `${dir}/./`, join(dir, '..', dir.split('/').at(-1)), link]) {
    const err = await t.throwsAsync(Wal.open(spelling), { instanceOf: WalError }, spelling)
    t.is(err?.code, 'WAL_LOCKED', spelling)
  }
  await wal.close()
  const again = await Wal.open(link)
  t.is(again.lastLsn(1), 0)
  await again.close()
})

test('another process cannot open a directory this process holds', async (t) => {
  const dir = tempDir()
  const wal = await Wal.open(dir)
  const { proc, line } = await startChild(dir, 'try')
  t.is(line, 'WAL_LOCKED')
  await once(proc, 'exit')
  await wal.close()
})

test('this process cannot open a directory another process holds; a SIGKILLed holder leaves no lock', async (t) => {
  const dir = tempDir()
  const { proc, line } = await startChild(dir, 'hold')
  t.is(line, 'opened')
  await t.throwsAsync(Wal.open(dir), { instanceOf: WalError, code: 'WAL_LOCKED' })
  proc.kill('SIGKILL')
  await once(proc, 'exit')
  const wal = await Wal.open(dir)
  t.is(wal.lastLsn(1), 1, "the child's acknowledged append survived")
  await wal.close()
})
