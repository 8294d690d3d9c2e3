// Shared by the disk-full suites (not a test file itself): a small tmpfs per test, so
// that ENOSPC comes from a real file system. Needs mount(2) (root or CAP_SYS_ADMIN).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const mounts = []

/** Mounts a tmpfs of `size` (e.g. '4m'): `{ dir }`, or `{ error }` when mount(2) is not allowed. */
export function mountTmpfs(size) {
  const dir = mkdtempSync(join(tmpdir(), 'segwal-diskfull-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    return { error: String(e.stderr || e.message).trim() }
  }
  mounts.push(dir)
  return { dir }
}

export function unmount(dir) {
  const i = mounts.indexOf(dir)
  if (i >= 0) mounts.splice(i, 1)
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' })
  } catch {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' })
    } catch {
      // leave it; nothing more we can do
    }
  }
  rmSync(dir, { recursive: true, force: true })
}

/** Unmounts whatever is still mounted (for test.after.always). */
export function unmountAll() {
  for (const d of mounts.slice()) unmount(d)
}

/** Whether mount(2) works here, and why not. */
export function probeMount() {
  const probe = mountTmpfs('1m')
  if (probe.dir) unmount(probe.dir)
  return probe.dir !== undefined ? { ok: true } : { ok: false, error: probe.error }
}

/** Rejects if `promise` has not settled within `ms` (a hang detector, not a timing test). */
export function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
    }),
  ])
}
