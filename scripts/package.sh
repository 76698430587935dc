#!/usr/bin/env bash
# Builds the Debian package for ARCH (amd64 or arm64; arm64 is Raspberry Pi
# OS on a Pi 5) into target/debian/: the release binary (for arm64, the
# cross route of shared/RECIPES.md: Debian's aarch64 gcc as the linker,
# rustup's target or Debian's rustc-web), then cargo-deb (installed from
# crates.io if missing). Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: package.sh amd64|arm64}
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/deps.sh >&2
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked --version 3.8.0 >&2
fi
# On a machine of that architecture (an arm64 runner), a native build.
host=$(dpkg --print-architecture)
case "$arch" in
  "$host")
    cargo build --release --locked >&2
    deb=$(cargo deb --no-build --no-strip --locked | tail -n 1)
    ;;
  arm64)
    triple=aarch64-unknown-linux-gnu
    bash hil-tests/vm/setup.sh aarch64 >&2
    cargo build --release --locked --target "$triple" >&2
    # With --target, cargo-deb takes target/release/ assets from
    # target/TRIPLE/release/.
    deb=$(cargo deb --no-build --no-strip --locked --target "$triple" | tail -n 1)
    ;;
  amd64) echo "package: amd64 is built on an amd64 machine only" >&2; exit 2 ;;
  *) echo "package: unknown arch $arch (amd64 or arm64)" >&2; exit 2 ;;
esac
echo "$deb"
