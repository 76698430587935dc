#!/usr/bin/env bash
# Installs what the VM suites need on a Debian 12 host and fetches the
# guest kernel (Debian's own, for ARCH) into hil-tests/vm/cache/ARCH:
# qemu-system, busybox-static, kmod, cpio; for aarch64 also the cross gcc,
# the arm64 busybox and the Rust aarch64 target. Everything is cached.
set -euo pipefail
arch=${1:?usage: setup.sh x86_64|aarch64}
here=$(cd "$(dirname "$0")" && pwd)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

case "$arch" in
  x86_64) deb_arch=amd64; qemu_pkg=qemu-system-x86 ;;
  aarch64) deb_arch=arm64; qemu_pkg=qemu-system-arm ;;
  *) echo "setup: unknown arch $arch" >&2; exit 2 ;;
esac

updated=0
apt_update() { [ "$updated" = 1 ] || { "${sudo_cmd[@]}" apt-get update -qq; updated=1; }; }

if [ "$arch" = aarch64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  "${sudo_cmd[@]}" dpkg --add-architecture arm64
  updated=0
fi

want=(busybox-static kmod cpio)
[ "$arch" = aarch64 ] && want+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! installed "$qemu_pkg"; then
  apt_update
  # A newer qemu-utils from bookworm-backports (as on these machines) breaks
  # bookworm's qemu-system; take qemu-system from backports too.
  if dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null | grep -q bpo12; then
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | "${sudo_cmd[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
      updated=0
      apt_update
    fi
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends -t bookworm-backports "$qemu_pkg" >/dev/null
  else
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "$qemu_pkg" >/dev/null
  fi
fi

if [ "$arch" = aarch64 ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    if ! rustup target add aarch64-unknown-linux-gnu >&2; then
      # No rustup download: Debian's rustc-web and its arm64 std.
      apt_update
      "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq rustc-web "libstd-rust-web-dev:arm64" >/dev/null
    fi
  fi
fi

# The guest kernel and, for aarch64, an arm64 busybox: Debian packages,
# downloaded (not installed) and unpacked once.
cache="$here/cache/$arch"
mkdir -p "$cache"
if [ ! -f "$cache/ready" ]; then
  apt_update
  kpkg=$(apt-cache depends "linux-image-$deb_arch:$deb_arch" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  kpkg=${kpkg%%:*}
  [ -n "$kpkg" ] || { echo "setup: cannot find the kernel package for $deb_arch" >&2; exit 1; }
  (cd "$cache" && rm -rf root ./*.deb && apt-get download -q "$kpkg:$deb_arch" >/dev/null)
  pkgs=("$cache"/linux-image-*.deb)
  if [ "$arch" = aarch64 ]; then
    (cd "$cache" && apt-get download -q busybox-static:arm64 >/dev/null)
    pkgs+=("$cache"/busybox-static_*.deb)
  fi
  for deb in "${pkgs[@]}"; do dpkg-deb -x "$deb" "$cache/root"; done
  rm -f "$cache"/*.deb
  echo "$kpkg" > "$cache/ready"
fi
echo "setup: $arch guest kernel $(cat "$cache/ready")" >&2
