#!/usr/bin/env bash
# The emulated OTA proof (issue 9): builds the qemu-x86_64 appliance image
# (version 1.0.0) and, from the same root file system, four update bundles:
# good (1.1.0), broken (1.2.0, whose blackbox config does not parse, so it
# never becomes healthy), old (0.9.0) and forged (1.1.0 signed by a key the
# device does not trust). Then scenarios.py boots fresh copies of the image
# under the firmware stand-in and runs each scenario. Ends with
# "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=qemu-x86_64
out="$root/image/out/$profile"
bundles="$here/out/bundles"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

need=()
for p in qemu-system-x86 openssh-client e2fsprogs mtools python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  bash "$root/hil-tests/vm/setup.sh" x86_64 >/dev/null
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    openssh-client e2fsprogs mtools python3 >/dev/null
fi

# OTA_REUSE=1 (while working on the scenarios) keeps the last image and bundles.
if [ "${OTA_REUSE:-0}" = 1 ] && [ -f "$bundles/forged.raucb" ] && [ -f "$out/blackbox-1.0.0-$profile.img" ]; then
  python3 "$here/scenarios.py" --image "$out/blackbox-1.0.0-$profile.img" --bundles "$bundles" \
    --key "$bundles/rig-key" "$@"
  exit
fi
start=$(date +%s)
image=$(bash "$root/image/build.sh" "$profile" --version 1.0.0 --keep-tree | tail -n 1)
echo "ota: image $(basename "$image"): $(du -h --apparent-size "$image" | cut -f1) ($(du -h "$image" | cut -f1) on disk), built in $(( $(date +%s) - start )) s" >&2

rm -rf "$bundles"
mkdir -p "$bundles"
tree="$out/tree"
# A system image of the same tree with another version (and, for "broken",
# a blackbox.toml that does not parse).
variant() { # variant NAME VERSION [broken]
  local release="$tree/usr/lib/os-release" config="$tree/etc/blackbox/blackbox.toml"
  "${sudo_cmd[@]}" cp -a "$release" "$release.orig"
  "${sudo_cmd[@]}" cp -a "$config" "$config.orig"
  "${sudo_cmd[@]}" sed -i "s/^IMAGE_VERSION=.*/IMAGE_VERSION=$2/" "$release"
  if [ "${3:-}" = broken ]; then
    printf '\n[camera]\nsource = "testsrc"\n' | "${sudo_cmd[@]}" tee -a "$config" >/dev/null
  fi
  "${sudo_cmd[@]}" mkfs.erofs -zlz4hc -T0 "$bundles/system-$1.erofs" "$tree" >/dev/null
  "${sudo_cmd[@]}" mv "$release.orig" "$release"
  "${sudo_cmd[@]}" mv "$config.orig" "$config"
  "${sudo_cmd[@]}" chown "$(id -u):$(id -g)" "$bundles/system-$1.erofs"
}
variant good 1.1.0
variant broken 1.2.0 broken
bash "$root/image/bundle.sh" "$profile" --version 1.1.0 --system "$bundles/system-good.erofs" \
  --output "$bundles/good.raucb" >/dev/null
bash "$root/image/bundle.sh" "$profile" --version 1.2.0 --system "$bundles/system-broken.erofs" \
  --output "$bundles/broken.raucb" >/dev/null
bash "$root/image/bundle.sh" "$profile" --version 0.9.0 --output "$bundles/old.raucb" >/dev/null
# Forged: a key pair the device's keyring does not hold.
openssl req -x509 -newkey rsa:3072 -nodes -days 1 -subj "/CN=not blackbox" \
  -keyout "$bundles/forged-key.pem" -out "$bundles/forged-cert.pem" 2>/dev/null
BLACKBOX_SIGNING_KEY="$bundles/forged-key.pem" BLACKBOX_SIGNING_CERT="$bundles/forged-cert.pem" \
  bash "$root/image/bundle.sh" "$profile" --version 1.1.0 --system "$bundles/system-good.erofs" \
  --output "$bundles/forged.raucb" >/dev/null
rm -f "$bundles"/system-*.erofs
"${sudo_cmd[@]}" rm -rf "$tree"

# The rig's SSH key (the owner's, on a real card).
ssh-keygen -q -t ed25519 -N '' -C blackbox-hil -f "$bundles/rig-key"
python3 "$here/scenarios.py" --image "$image" --bundles "$bundles" --key "$bundles/rig-key" "$@"
