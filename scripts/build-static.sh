#!/usr/bin/env bash
# Builds static blackbox and blackbox-hil (the in-VM test runner) for
# TRIPLE (x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu) and prints
# the directory that holds them. aarch64 is cross-built with Debian's
# aarch64-linux-gnu-gcc (see .cargo/config.toml); its bindgen run reads the
# kernel headers from the cross sysroot.
set -euo pipefail
triple=${1:?usage: build-static.sh x86_64-unknown-linux-gnu|aarch64-unknown-linux-gnu}
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTFLAGS="-C target-feature=+crt-static"
case "$triple" in
  x86_64-unknown-linux-gnu) ;;
  aarch64-unknown-linux-gnu)
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu -I/usr/aarch64-linux-gnu/include"
    if ! rustc --print target-libdir --target "$triple" >/dev/null 2>&1 \
       || [ ! -d "$(rustc --print target-libdir --target "$triple")" ]; then
      rustup target add "$triple" >&2 || true
    fi
    if [ ! -d "$(rustc --print target-libdir --target "$triple" 2>/dev/null)" ] && [ -x /usr/bin/rustc ]; then
      # No rustup target to be had: Debian's rustc-web with its arm64 std.
      export RUSTC=/usr/bin/rustc
    fi
    ;;
  *) echo "build-static: unknown target $triple" >&2; exit 2 ;;
esac
cargo build --locked --profile vm --target "$triple" -p blackbox -p blackbox-hil >&2
echo "$PWD/target/$triple/vm"
