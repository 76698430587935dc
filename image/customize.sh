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
if [ -n "$config" ]; then
  install -m 644 "$config" "$tree/etc/blackbox/blackbox.toml"
elif [ "$profile" = qemu-x86_64 ]; then
  # Under qemu's software CPU, encoding the test pattern (1280x720 at 30
  # fps by default) is the guest's heaviest work, a whole core of the host:
  # a smaller, slower pattern leaves the CPU to what this profile is for
  # (booting, updating). The Pi's camera settings are not touched.
  sed -i 's/^source = "auto"$/source = "auto"\n# qemu: a light test pattern (image\/customize.sh).\nsize = "640x360"\nfps = 10/' \
    "$tree/etc/blackbox/blackbox.toml"
  grep -q '^fps = 10$' "$tree/etc/blackbox/blackbox.toml"
fi
# The appliance runs its own Wi-Fi (blackbox-wifi.service): the access
# point, or a known network in range.
if [ -z "$config" ]; then
  sed -i 's/^mode = "off"$/mode = "auto"/' "$tree/etc/blackbox/blackbox.toml"
  grep -q '^mode = "auto"$' "$tree/etc/blackbox/blackbox.toml"
fi
# chrony steps the clock whenever it is a second off (a GPS fix that comes
# minutes after boot must still fix a stale clock), not just at first.
sed -i 's/^makestep 1 3$/makestep 1 -1/' "$tree/etc/chrony/chrony.conf"
grep -q '^makestep 1 -1$' "$tree/etc/chrony/chrony.conf"
printf 'IMAGE_ID=blackbox\nIMAGE_VERSION=%s\nVARIANT_ID=%s\n' "$version" "$profile" >> "$tree/usr/lib/os-release"
echo blackbox > "$tree/etc/hostname"
# Empty: systemd makes an id at the first boot; /data keeps it after.
: > "$tree/etc/machine-id"
rm -f "$tree"/etc/ssh/ssh_host_* "$tree/tmp/blackbox.deb"
# Nothing of the build's /data (the mount point) or /boot/firmware stays.
rm -rf "$tree/data" "$tree/boot/firmware"
mkdir -p "$tree/data" "$tree/boot/firmware"
for unit in blackbox-var.service blackbox-grow-data.service blackbox-health.service \
            blackbox-update.path blackbox-password-cleanup.path systemd-networkd.service ssh.service \
            blackbox-wifi.service systemd-resolved.service nftables.service \
            gpsd.service chrony.service; do
  chroot "$tree" systemctl enable "$unit" >/dev/null 2>&1
done
# qemu-x86_64: only the modules of the board qemu emulates (virtio disk
# and network, the i6300esb watchdog) and of what the system does (file
# systems, device mapper and loop for RAUC's verity bundles, crypto, the
# radios, the firewall, and veth for a test's host past the dashcam). Debian's
# kernel brings ~400 MB of modules for every PC there is; a copy of them in
# each system slot and in each update bundle costs flashing and installing
# time for nothing. The pi5 profile keeps its kernel's modules whole.
if [ "$profile" = qemu-x86_64 ]; then
  for dir in "$tree"/usr/lib/modules/*/; do
    kernel=$(basename "$dir")
    find "$dir/kernel" -name '*.ko*' \
      -not -path '*/kernel/fs/*' -not -path '*/kernel/lib/*' -not -path '*/kernel/crypto/*' \
      -not -path '*/kernel/arch/*' -not -path '*/kernel/block/*' -not -path '*/kernel/net/core/*' \
      -not -path '*/drivers/virtio/*' -not -path '*/drivers/block/*' -not -path '*/drivers/md/*' \
      -not -path '*/drivers/watchdog/*' -not -path '*/drivers/char/*' \
      -not -path '*/net/wireless/*' -not -path '*/net/mac80211/*' -not -path '*/net/rfkill/*' \
      -not -name 'mac80211_hwsim.ko*' \
      -not -path '*/net/netfilter/*' -not -path '*/net/ipv4/netfilter/*' -not -path '*/net/ipv6/netfilter/*' \
      -not -name virtio_net.ko -not -name net_failover.ko -not -name 'veth.ko*' -delete
    find "$dir/kernel" -type d -empty -delete
    chroot "$tree" depmod "$kernel"
  done
  # The emulated board's radios: mac80211_hwsim's simulated 802.11
  # devices (the first is the dashcam's wlan0; the tests use the others
  # as a phone and a home access point).
  echo mac80211_hwsim > "$tree/etc/modules-load.d/blackbox-hwsim.conf"
  echo "options mac80211_hwsim radios=3" > "$tree/etc/modprobe.d/blackbox-hwsim.conf"
fi
# The initramfs: erofs for the root, ext4 for the machine-id hook, vfat.
printf 'erofs\next4\nvfat\n' >> "$tree/etc/initramfs-tools/modules"
# Made anew for each kernel (a kernel package's hook may have run before
# the modules list above, or not at all in the chroot).
for kernel in "$tree"/boot/vmlinuz-*; do
  [ -e "$kernel" ] || continue
  kver=${kernel##*/vmlinuz-}
  rm -f "$tree/boot/initrd.img-$kver"
  chroot "$tree" update-initramfs -c -k "$kver" >/dev/null
done
