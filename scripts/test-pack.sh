#!/usr/bin/env bash
# Proves the packed tarball works from its prebuilt binary alone: packs segwal, installs
# the tarball into an empty project with cargo and rustc hidden from PATH (and npm's
# default of skipping dependencies' install scripts), checks every binary it carries
# (format, architecture, libc, GLIBC_ versions: scripts/check-binaries.js; all seven
# platforms unless SEGWAL_PACK_HOST_ONLY=1), then require()s and import()s it,
# round-trips an append and a stream, and runs the command line.
#
#   npm run test:pack
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$root"
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
# The README's platform section quotes these sizes.
echo "packed: $tarball ($(stat -c %s "$work/$tarball") bytes, $(tar -tvzf "$work/$tarball" | awk '{ n += $3 } END { print n }') bytes unpacked; $(tar -tzf "$work/$tarball" | grep -c '\.node$') binaries)"
tar -tzf "$work/$tarball" | grep -E 'prebuilds/linux-x64/.+\.node$' >/dev/null || {
  echo "FAIL: the tarball carries no prebuilds/linux-x64/*.node" >&2
  exit 1
}

# A PATH with node and npm but no Rust toolchain.
bin="$work/bin"
mkdir -p "$bin"
ln -s "$(command -v node)" "$bin/node"
ln -s "$(command -v npm)" "$bin/npm"
ln -s "$(command -v npx)" "$bin/npx"
export PATH="$bin:/usr/bin:/bin"
if command -v cargo >/dev/null 2>&1 || command -v rustc >/dev/null 2>&1; then
  # /usr/bin may hold a distribution cargo; hide it too.
  echo "FAIL: could not hide cargo from PATH ($(command -v cargo rustc))" >&2
  exit 1
fi

app="$work/app"
mkdir -p "$app"
cd "$app"
npm init -y >/dev/null
npm install --no-audit --no-fund --omit=dev "$work/$tarball" >/dev/null

# Every binary in the tarball, as installed.
if [ "${SEGWAL_PACK_HOST_ONLY:-}" = 1 ]; then
  node "$root/scripts/check-binaries.js" "$app/node_modules/segwal"
else
  node "$root/scripts/check-binaries.js" --all "$app/node_modules/segwal"
fi

# The glibc builds once more through binutils' own reader (check-binaries.js parses the
# version needs itself): no symbol may need a GLIBC_ version above 2.17 (RHEL 7, AL2).
if command -v objdump >/dev/null 2>&1; then
  for so in "$app"/node_modules/segwal/prebuilds/*/*.glibc.node; do
    [ -e "$so" ] || continue
    newest="$(objdump -T "$so" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n 1)"
    rel="${so#"$app"/node_modules/segwal/}"
    if [ -z "$newest" ] || [ "$(printf '%s\n' "$newest" GLIBC_2.17 | sort -V | tail -n 1)" != GLIBC_2.17 ]; then
      echo "FAIL: objdump -T $rel: newest symbol version ${newest:-(none found)}, above GLIBC_2.17" >&2
      exit 1
    fi
    echo "objdump -T $rel: newest $newest"
  done
else
  echo "skip: no objdump on PATH (binutils); GLIBC_ versions checked by check-binaries.js only"
fi

dir="$work/wal"
node -e "
const { Wal, WalError } = require('segwal')
;(async () => {
  const wal = await Wal.open('$dir', { segmentSize: 4096 })
  for (let i = 1; i <= 50; i++) await wal.append(7, 'record ' + i)
  let n = 0
  for await (const r of wal.stream(7)) if (r.payload.toString() === 'record ' + r.lsn) n++
  await wal.close()
  if (n !== 50 || !(new WalError('WAL_CLOSED', 'x') instanceof Error)) throw new Error('round trip failed: ' + n)
  console.log('require: 50 records round-tripped through', wal.constructor.name)
})().catch((e) => { console.error(e); process.exit(1) })
"
node --input-type=module -e "
import { Wal } from 'segwal'
const wal = await Wal.open('$dir')
if (wal.lastLsn(7) !== 50) throw new Error('import: lastLsn ' + wal.lastLsn(7))
await wal.close()
console.log('import: reopened, lastLsn 50')
"
npx --no-install segwal verify "$dir" >/dev/null
echo "cli: segwal verify OK"
echo "PASS: the tarball works without a Rust toolchain or install scripts"
