// Two processes: a directory held by another live process cannot be opened
// (WAL_LOCKED), under any spelling of its path (dir/, dir/./, a symlink, a relative
// path, a bind mount); once the holder is SIGKILLed (or closes), the next open works.
// A failed open never weakens the holder's lock, and the lock does not leak into
// child processes of the holder.

import test from 'ava'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync, readdirSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, basename, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Wal, WalError } from 'segwal'

const HOLDER = join(dirname(fileURLToPath(import.meta.url)), 'twoproc-holder.mjs')
const cleanups = []
test.after.always(() => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c()
    } catch {
      // best effort
    }
  }
})

function tempDir() {
  const base = mkdtempSync(join(tmpdir(), 'segwal-twoproc-'))
  cleanups.push(() => rmSync(base, { recursive: true, force: true }))
  const dir = join(base, 'wal')
  mkdirSync(dir)
  return { base, dir }
}

/** A child process with line-oriented stdout. */
function child(args) {
  const proc = spawn(process.execPath, [HOLDER, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  cleanups.push(() => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'))
  const lines = []
  const waiters = []
  let buf = ''
  let stderr = ''
  proc.stdout.setEncoding('utf8')
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (d) => (stderr += d))
  proc.stdout.on('data', (d) => {
    buf += d
    let nl
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl))
      buf = buf.slice(nl + 1)
    }
    for (const w of waiters.splice(0)) w()
  })
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve({ code, signal })))
  exited.then(() => {
    for (const w of waiters.splice(0)) w()
  })
  let done = false
  exited.then(() => (done = true))
  let read = 0
  const next = async (timeoutMs = 15000) => {
    const deadline = Date.now() + timeoutMs
    while (read >= lines.length) {
      if (done) throw new Error(`child ${args.join(' ')} exited without output; stderr: ${stderr}`)
      if (Date.now() > deadline) throw new Error(`child ${args.join(' ')}: no output within ${timeoutMs} ms; stderr: ${stderr}`)
      await new Promise((resolve) => {
        waiters.push(resolve)
        setTimeout(resolve, 200)
      })
    }
    return lines[read++]
  }
  const send = (line) => proc.stdin.write(line + '\n')
  return { proc, next, send, exited }
}

async function tryInChild(dir) {
  const c = child(['try', dir])
  const line = await c.next()
  await c.exited
  return line
}

async function expectLocked(t, path, what) {
  let wal
  try {
    wal = await Wal.open(path)
  } catch (e) {
    t.true(e instanceof WalError && e instanceof Error, `${what}: not a WalError: ${e}`)
    t.is(e.code, 'WAL_LOCKED', `${what}: ${e.code} ${e.message}`)
    return
  }
  await wal.close()
  t.fail(`${what}: Wal.open(${JSON.stringify(path)}) succeeded although the directory is held`)
}

/** Every way to spell dir we can make; the bind mount only when mount(2) is allowed. */
function spellings(base, dir) {
  const link = join(base, 'link')
  symlinkSync(dir, link)
  const link2 = join(base, 'link2')
  symlinkSync(link, link2)
  const rel = relative(process.cwd(), dir)
  const list = [
    ['dir', dir],
    ['dir/', dir + '/'],
    ['dir/./', dir + '/./'],
    ['dir/.', dir + '/.'],
    ['dir//', dir + '//'],
    ['dir/../wal', `${dir}/../${basename(dir)}`],
    ['relative path', rel],
    ['symlink', link],
    ['symlink/', link + '/'],
    ['symlink to a symlink', link2],
  ]
  const bind = join(base, 'bind')
  mkdirSync(bind)
  try {
    execFileSync('mount', ['--bind', dir, bind], { stdio: 'pipe' })
    cleanups.push(() => execFileSync('umount', [bind], { stdio: 'pipe' }))
    list.push(['bind mount', bind])
  } catch {
    // not permitted: skip that spelling
  }
  return list
}

async function readAll(wal, p) {
  const out = []
  for await (const r of wal.stream(p)) out.push([r.lsn, r.payload.toString()])
  return out
}

test.serial('held by a live process: WAL_LOCKED under every spelling; after SIGKILL the next open works', async (t) => {
  const { base, dir } = tempDir()
  const holder = child(['hold', dir])
  t.is(await holder.next(), 'ready 3')
  const filesBefore = readdirSync(dir).sort()
  const names = spellings(base, dir)
  t.log(`spellings: ${names.map(([n]) => n).join(', ')}`)
  for (const [name, path] of names) await expectLocked(t, path, name)
  // and from yet another process
  t.regex(await tryInChild(dir + '/./'), /^error WAL_LOCKED /)
  t.regex(await tryInChild(join(base, 'link')), /^error WAL_LOCKED /)
  // the failed opens changed nothing and the holder still works
  t.deepEqual(readdirSync(dir).sort(), filesBefore)
  holder.send('append')
  t.is(await holder.next(), 'ok 4')
  for (const [name, path] of names) await expectLocked(t, path, `${name}, after the holder appended`)

  holder.proc.kill('SIGKILL')
  const { signal } = await holder.exited
  t.is(signal, 'SIGKILL')
  const wal = await Wal.open(dir)
  t.true(Array.isArray(wal.recovery))
  t.is(wal.lastLsn(1), 4)
  t.deepEqual(await readAll(wal, 1), [1, 2, 3, 4].map((l) => [l, `held ${l}`]))
  t.is((await wal.append(1, 'held 5')).lsn, 5)
  // now this process holds it: every spelling is locked for a child too
  t.regex(await tryInChild(dir), /^error WAL_LOCKED /)
  t.regex(await tryInChild(join(base, 'link2')), /^error WAL_LOCKED /)
  await wal.close()
  t.is(await tryInChild(join(base, 'link')), 'opened 5')
})

test.serial('a failed open in the holding process does not release its lock', async (t) => {
  const { base, dir } = tempDir()
  const wal = await Wal.open(dir)
  await wal.append(1, 'mine')
  const names = spellings(base, dir)
  for (const [name, path] of names) await expectLocked(t, path, `same process, ${name}`)
  // POSIX fcntl locks would be dropped by closing any descriptor of the lock file in
  // this process: make sure the lock survived the failed attempts.
  t.regex(await tryInChild(dir), /^error WAL_LOCKED /)
  t.is((await wal.append(1, 'still mine')).lsn, 2)
  await wal.close()
  t.is(await tryInChild(dir), 'opened 2')
  // close released it for this process too
  const again = await Wal.open(dir + '/')
  t.is(again.lastLsn(1), 2)
  await again.close()
})

test.serial('the holder closing cleanly releases the lock', async (t) => {
  const { dir } = tempDir()
  const holder = child(['hold', dir])
  t.is(await holder.next(), 'ready 3')
  await expectLocked(t, dir, 'while held')
  holder.send('close')
  t.is(await holder.next(), 'closed')
  t.is((await holder.exited).code, 0)
  const wal = await Wal.open(dir)
  t.deepEqual(wal.recovery, [])
  t.is(wal.lastLsn(1), 3)
  await wal.close()
})

test.serial('the lock does not leak into child processes of the holder', async (t) => {
  // The holder spawns a long-lived `sleep`, then dies. If the lock descriptor were
  // inheritable (no O_CLOEXEC), the sleeper would keep the directory locked.
  const { dir } = tempDir()
  const holder = child(['hold', dir])
  t.is(await holder.next(), 'ready 3')
  holder.send('sleeper')
  const line = await holder.next()
  const pid = Number(/^sleeper (\d+)$/.exec(line)?.[1])
  t.true(pid > 0, line)
  cleanups.push(() => process.kill(pid, 'SIGKILL'))
  holder.proc.kill('SIGKILL')
  await holder.exited
  let wal
  try {
    wal = await Wal.open(dir)
  } catch (e) {
    t.fail(`open after the holder died, with its child alive: ${e.code} ${e.message}`)
  }
  if (wal) {
    t.is(wal.lastLsn(1), 3)
    await wal.close()
  }
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // already gone
  }
})

test.serial('a dir deleted and recreated while held is a different directory', async (t) => {
  // Not a spelling of the same directory: the holder keeps its (now unlinked) directory,
  // and the new one at the same path opens. Mostly checks that nothing hangs or crashes.
  const { dir } = tempDir()
  const holder = child(['hold', dir])
  t.is(await holder.next(), 'ready 3')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir)
  let wal
  try {
    wal = await Wal.open(dir)
  } catch (e) {
    t.fail(`open of a fresh directory at the held path: ${e.code} ${e.message}`)
  }
  if (wal) {
    t.is(wal.lastLsn(1), 0)
    await wal.close()
  }
  holder.proc.kill('SIGKILL')
  await holder.exited
})
