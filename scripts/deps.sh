#!/usr/bin/env bash
# Installs what building and testing blackbox needs on Debian/Ubuntu:
# a C toolchain and nasm (mozjpeg's SIMD on x86_64; without nasm it builds
# silently without SIMD), libclang (bindgen, for the V4L2 bindings), ffmpeg
# (ffprobe and ffmpeg check that recordings play), gpsd (the real GPS
# daemon the GPS tests feed NMEA through), gpsbabel and xmllint (libxml2-utils;
# they read the GPX blackbox writes), and a
# Rust toolchain if none is on PATH. Extra Debian packages can be passed as
# arguments. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(build-essential pkg-config nasm libclang-dev curl ca-certificates ffmpeg gpsd gpsbabel libxml2-utils "$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "deps: Rust is in ~/.cargo/bin; add it to PATH (source ~/.cargo/env)" >&2
  else
    echo "deps: installing Rust with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  fi
fi
