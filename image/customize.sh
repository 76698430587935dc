#!/usr/bin/env bash
# mmdebstrap's customize hook for image/build.sh (run with the new root's
# /proc, /sys and /dev mounted): lays overlay/ over the root file system
# and makes it this image: profile, version, signing certificate, units,
# an initramfs that can mount an erofs root.
#   customize.sh TREE REPO PROFILE VERSION CERT [CONFIG]
set -euo pipefail
tree=$1 root=$2 profile=$3 version=$4 cert=$5 config=${6:-}
cp -r "$root/overlay/." "$tree/"
sed -i "s/@PROFILE@/$profile/" "$tree/etc/rauc/system.conf"
install -m 644 "$cert" "$tree/etc/rauc/keyring.pem"
[ -z "$config" ] || install -m 644 "$config" "$tree/etc/blackbox/blackbox.toml"
printf 'IMAGE_ID=blackbox\nIMAGE_VERSION=%s\nVARIANT_ID=%s\n' "$version" "$profile" >> "$tree/usr/lib/os-release"
echo blackbox > "$tree/etc/hostname"
# Empty: systemd makes an id at the first boot; /data keeps it after.
: > "$tree/etc/machine-id"
rm -f "$tree"/etc/ssh/ssh_host_* "$tree/tmp/blackbox.deb"
# Nothing of the build's /data (the mount point) or /boot/firmware stays.
rm -rf "$tree/data" "$tree/boot/firmware"
mkdir -p "$tree/data" "$tree/boot/firmware"
for unit in blackbox-var.service blackbox-grow-data.service blackbox-health.service \
            blackbox-update.path systemd-networkd.service ssh.service; do
  chroot "$tree" systemctl enable "$unit" >/dev/null 2>&1
done
# The initramfs: erofs for the root, ext4 for the machine-id hook, vfat.
printf 'erofs\next4\nvfat\n' >> "$tree/etc/initramfs-tools/modules"
if ls "$tree"/boot/vmlinuz-* >/dev/null 2>&1; then
  chroot "$tree" update-initramfs -u -k all >/dev/null
fi
