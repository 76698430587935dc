#!/usr/bin/env bash
# The emulator soak (issue 16), not part of the default run: boots the
# qemu-x86_64 appliance image to /healthz and cuts its power, again and
# again (100 boots unless told; a busy loop holds one host core for the
# second half), and counts stalls, aborts and hangs. It uses the image the
# OTA suite built if there is one (SOAK_BUILD=1 builds a new one).
#   hil-tests/ota/soak.sh [--boots N] [--devices N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
need=()
for p in qemu-system-x86 e2fsprogs mtools python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  bash "$root/hil-tests/vm/setup.sh" x86_64 >/dev/null
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
    e2fsprogs mtools python3 >/dev/null
fi
image="$root/image/out/qemu-x86_64/blackbox-1.0.0-qemu-x86_64.img"
if [ "${SOAK_BUILD:-0}" = 1 ] || [ ! -f "$image" ]; then
  image=$(bash "$root/image/build.sh" qemu-x86_64 --version 1.0.0 | tail -n 1)
fi
exec python3 "$here/soak.py" --image "$image" "$@"
