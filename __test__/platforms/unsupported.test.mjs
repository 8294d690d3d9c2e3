// A platform segwal ships no binary for gets a message that names it and says how to
// build from source, not node-gyp-build's bare "No native build was found".
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Loads the package in a child that pretends to be `platform`-`arch`. */
function loadAs(platform, arch, env = {}) {
  const fake = `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });` +
    `Object.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} });`
  return spawnSync(process.execPath, ['-e', `${fake} require(${JSON.stringify(root)})`], {
    cwd: root,
    encoding: 'utf8',
    // Skip build/Release (a binary for this machine); look only at prebuilds/.
    env: { ...process.env, PREBUILDS_ONLY: '1', ...env },
  })
}

for (const [platform, arch, name] of [
  ['linux', 'arm', 'linux-arm (glibc)'],
  ['freebsd', 'x64', 'freebsd-x64'],
]) {
  test(`loading on ${name} says which platform and how to build from source`, (t) => {
    const r = loadAs(platform, arch, { LIBC: '' })
    t.not(r.status, 0)
    t.regex(r.stderr, new RegExp(`Error: segwal has no prebuilt binary for ${name.replace(/[()]/g, '\\$&')}`))
    t.regex(r.stderr, /build it from source/)
    t.regex(r.stderr, /https:\/\/rustup\.rs/)
  })
}

test('the musl check follows LIBC like node-gyp-build', (t) => {
  const r = loadAs('linux', 'riscv64', { LIBC: 'musl' })
  t.regex(r.stderr, /no prebuilt binary for linux-riscv64 \(musl\)/)
})
