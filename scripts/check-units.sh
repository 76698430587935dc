#!/usr/bin/env bash
# Checks the systemd units in overlay/: `systemd-analyze verify` on a staged
# root (the host's system units, the overlay, and the blackbox binary, so
# every ExecStart exists), then prints `systemd-analyze security` for every
# unit and fails if blackbox.service's exposure is above 2.0 ("OK").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --quiet --bin blackbox
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp -r overlay/. "$root/"
cp target/debug/blackbox /usr/bin/install /usr/bin/chown /usr/bin/mkdir /usr/bin/mount /usr/bin/umount /usr/bin/flock "$root/usr/bin/"
mkdir -p "$root/bin"
cp /bin/sh /bin/rm "$root/bin/"
units=("$root"/usr/lib/systemd/system/blackbox*.service "$root"/usr/lib/systemd/system/blackbox*.path)
systemd-analyze verify --root="$root" "${units[@]}"
echo "units: systemd-analyze verify: ok (${#units[@]} units)"
# Every unit's exposure, for the README (the root units are sandboxed as far
# as their work allows; only blackbox.service has a bar to clear).
for u in "$root"/usr/lib/systemd/system/blackbox*.service; do
  systemd-analyze security --offline=yes --no-pager "$u" | tail -n 1
done
report=$(systemd-analyze security --offline=yes --no-pager "$root/usr/lib/systemd/system/blackbox.service")
echo "$report" | tail -n 1
exposure=$(echo "$report" | grep -Eo 'Overall exposure level for [^:]+: [0-9.]+' | grep -Eo '[0-9.]+$')
if awk -v e="$exposure" 'BEGIN { exit !(e > 2.0) }'; then
  echo "$report" | grep -E '^✗' >&2 || true
  echo "units: exposure $exposure is above 2.0" >&2
  exit 1
fi
