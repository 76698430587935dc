#!/usr/bin/env bash
# The update bundles the tests install, made from the root file system that
# `image/build.sh PROFILE --version 1.0.0 --keep-tree` left in
# image/out/PROFILE/tree (then removed): good (1.1.0), broken (1.2.0, whose
# blackbox.toml does not parse, so its blackbox never becomes healthy),
# unwritable (1.3.0, whose blackbox records into a directory on the
# read-only system: it runs, serves and answers /healthz, but every frame
# is lost), old (0.9.0) and forged (1.1.0 signed by a key the device does
# not trust).
#   hil-tests/ota/bundles.sh PROFILE OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${1:?usage: bundles.sh PROFILE OUTDIR}
bundles=${2:?usage: bundles.sh PROFILE OUTDIR}
tree="$root/image/out/$profile/tree"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
[ -d "$tree" ] || { echo "bundles: no $tree (image/build.sh $profile --keep-tree)" >&2; exit 2; }

rm -rf "$bundles"
mkdir -p "$bundles"
# A system image of the same tree with another version (and, for "broken",
# a blackbox.toml that does not parse: a second [camera] table).
variant() { # variant NAME VERSION [broken]
  local release="$tree/usr/lib/os-release" config="$tree/etc/blackbox/blackbox.toml"
  "${sudo_cmd[@]}" cp -a "$release" "$release.orig"
  "${sudo_cmd[@]}" cp -a "$config" "$config.orig"
  "${sudo_cmd[@]}" sed -i "s/^IMAGE_VERSION=.*/IMAGE_VERSION=$2/" "$release"
  local nocard="$tree/usr/lib/blackbox/no-card"
  case "${3:-}" in
    broken)
      printf '\n[camera]\nsource = "testsrc"\n' | "${sudo_cmd[@]}" tee -a "$config" >/dev/null ;;
    unwritable)
      "${sudo_cmd[@]}" sed -i 's|^dir = "/data/blackbox"|dir = "/usr/lib/blackbox/no-card"|' "$config"
      grep -q '^dir = "/usr/lib/blackbox/no-card"' "$config"
      "${sudo_cmd[@]}" mkdir -p "$nocard/recordings" "$nocard/events" "$nocard/damaged" ;;
  esac
  "${sudo_cmd[@]}" mkfs.erofs -zlz4hc -T0 "$bundles/system-$1.erofs" "$tree" >/dev/null
  "${sudo_cmd[@]}" rm -rf "$nocard"
  "${sudo_cmd[@]}" mv "$release.orig" "$release"
  "${sudo_cmd[@]}" mv "$config.orig" "$config"
  "${sudo_cmd[@]}" chown "$(id -u):$(id -g)" "$bundles/system-$1.erofs"
}
variant good 1.1.0
variant broken 1.2.0 broken
variant unwritable 1.3.0 unwritable
bash "$root/image/bundle.sh" "$profile" --version 1.1.0 --system "$bundles/system-good.erofs" \
  --output "$bundles/good.raucb" >/dev/null
bash "$root/image/bundle.sh" "$profile" --version 1.2.0 --system "$bundles/system-broken.erofs" \
  --output "$bundles/broken.raucb" >/dev/null
bash "$root/image/bundle.sh" "$profile" --version 1.3.0 --system "$bundles/system-unwritable.erofs" \
  --output "$bundles/unwritable.raucb" >/dev/null
bash "$root/image/bundle.sh" "$profile" --version 0.9.0 --output "$bundles/old.raucb" >/dev/null
# Forged: a key pair the device's keyring does not hold.
openssl req -x509 -newkey rsa:3072 -nodes -days 1 -subj "/CN=not blackbox" \
  -keyout "$bundles/forged-key.pem" -out "$bundles/forged-cert.pem" 2>/dev/null
BLACKBOX_SIGNING_KEY="$bundles/forged-key.pem" BLACKBOX_SIGNING_CERT="$bundles/forged-cert.pem" \
  bash "$root/image/bundle.sh" "$profile" --version 1.1.0 --system "$bundles/system-good.erofs" \
  --output "$bundles/forged.raucb" >/dev/null
rm -f "$bundles"/system-*.erofs
"${sudo_cmd[@]}" rm -rf "$tree"
ls "$bundles"/*.raucb
