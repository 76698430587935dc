#!/usr/bin/env bash
# Makes the signed update bundle from what image/build.sh PROFILE left in
# image/out/PROFILE/: blackbox-VERSION-PROFILE.raucb, RAUC's verity format,
# with the system image for the system slot and the boot partition for the
# boot slot, and a hook that points the new boot partition's cmdline.txt at
# the slot it was installed to.
#
#   image/bundle.sh PROFILE [--version V] [--system FILE] [--output FILE]
#
# --version and --system default to the build's; the tests give others to
# make a newer, an older or a broken update from one build.
# Signed with BLACKBOX_SIGNING_KEY / BLACKBOX_SIGNING_CERT when set (the
# release workflow's secret), else with the development pair in
# image/cache/dev-keys/ that build.sh made and put in the image's keyring.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { echo "usage: image/bundle.sh PROFILE [--version V] [--system FILE] [--output FILE]" >&2; exit 2; }
profile=${1:-}
[ -n "$profile" ] || usage
shift
out="$here/out/$profile"
[ -f "$out/build.env" ] || { echo "bundle: no build in $out (run image/build.sh $profile)" >&2; exit 1; }
version=$(grep '^version=' "$out/build.env" | cut -d= -f2)
system="$out/system.erofs"
output=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=$2; shift 2 ;;
    --system) system=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    *) usage ;;
  esac
done
output=${output:-$out/blackbox-$version-$profile.raucb}
key=${BLACKBOX_SIGNING_KEY:-$here/cache/dev-keys/key.pem}
cert=${BLACKBOX_SIGNING_CERT:-$here/cache/dev-keys/cert.pem}

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# RAUC picks the handler by name: *.img to a raw slot, *.vfat to a vfat one.
ln "$system" "$dir/system.img" 2>/dev/null || cp "$system" "$dir/system.img"
cp "$out/boot.vfat" "$dir/boot.vfat"
cat > "$dir/hook" <<'HOOK'
#!/bin/sh
# Runs on the device during the install (RAUC slot hook): the boot
# partition was built for slot A; make its cmdline.txt boot the slot it
# was just written to.
set -eu
case "$1" in
  slot-post-install)
    [ "$RAUC_SLOT_CLASS" = boot ] || exit 0
    case "$RAUC_SLOT_BOOTNAME" in
      A) system=system_a ;;
      B) system=system_b ;;
      *) echo "hook: unknown slot $RAUC_SLOT_BOOTNAME" >&2; exit 1 ;;
    esac
    uuid=$(blkid -s PARTUUID -o value "/dev/disk/by-partlabel/$system")
    [ -n "$uuid" ] || { echo "hook: no PARTUUID for $system" >&2; exit 1; }
    f="$RAUC_SLOT_MOUNT_POINT/cmdline.txt"
    sed -e "s/root=PARTUUID=[^ ]*/root=PARTUUID=$uuid/" \
        -e "s/rauc\.slot=[^ ]*/rauc.slot=$RAUC_SLOT_BOOTNAME/" "$f" > "$f.new"
    sync "$f.new"
    mv "$f.new" "$f"
    sync "$RAUC_SLOT_MOUNT_POINT"
    ;;
esac
HOOK
chmod 755 "$dir/hook"
cat > "$dir/manifest.raucm" <<EOF
[update]
compatible=blackbox-$profile
version=$version

[bundle]
format=verity

[hooks]
filename=hook

[image.system]
filename=system.img

[image.boot]
filename=boot.vfat
hooks=post-install
EOF
rm -f "$output"
rauc bundle --cert="$cert" --key="$key" "$dir" "$output" >/dev/null
echo "bundle: $output ($(du -h "$output" | cut -f1))" >&2
echo "$output"
