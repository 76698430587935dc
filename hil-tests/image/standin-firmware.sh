#!/usr/bin/env bash
# Makes stand-ins for Raspberry Pi's packages in DIR, for building the pi5
# image where Raspberry Pi's archive cannot be reached (these machines).
# They carry the names, versions and file layout of the real ones, so that
# image/build.sh takes them the same way, and contents that say what they
# are: a kernel that is not a kernel, device trees that are not device
# trees, an rpicam-vid that only says it is a stand-in.
#   linux-image-rpi-2712             -> linux-image-KVER (the Pi 5 kernel)
#   linux-image-KVER                 /boot/vmlinuz-KVER, /boot/config-KVER,
#                                    /usr/lib/linux-image-KVER/broadcom/bcm2712*.dtb,
#                                    /usr/lib/linux-image-KVER/overlays/*.dtbo,
#                                    /usr/lib/modules/KVER/
#   rpicam-apps-lite                 /usr/bin/rpicam-vid
# usage: standin-firmware.sh DIR
set -euo pipefail
dir=${1:?usage: standin-firmware.sh DIR}
kver=6.6.74+rpt-rpi-2712
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir"

package() { # package NAME VERSION DEPENDS [POSTINST]
  local root="$work/$1"
  mkdir -p "$root/DEBIAN"
  {
    echo "Package: $1"
    echo "Version: $2"
    echo "Architecture: arm64"
    echo "Maintainer: blackbox tests <tests@blackbox.invalid>"
    [ -z "$3" ] || echo "Depends: $3"
    echo "Description: stand-in for Raspberry Pi's $1 (tests only)"
  } > "$root/DEBIAN/control"
  if [ -n "${4:-}" ]; then
    printf '#!/bin/sh\nset -e\n%s\n' "$4" > "$root/DEBIAN/postinst"
    chmod 755 "$root/DEBIAN/postinst"
  fi
  # Named as apt-get download names them (an epoch's colon as %3a).
  dpkg-deb --root-owner-group -Zxz --build "$root" "$dir/${1}_${2/:/%3a}_arm64.deb" >/dev/null
}

k="$work/linux-image-$kver"
mkdir -p "$k/boot" "$k/usr/lib/linux-image-$kver/broadcom" "$k/usr/lib/linux-image-$kver/overlays" \
  "$k/usr/lib/modules/$kver/kernel"
echo "stand-in for Raspberry Pi's Pi 5 kernel $kver (not bootable)" > "$k/boot/vmlinuz-$kver"
printf 'CONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n' > "$k/boot/config-$kver"
for board in bcm2712-rpi-5-b bcm2712d0-rpi-5-b bcm2712-rpi-cm5-cm5io; do
  echo "stand-in device tree $board" > "$k/usr/lib/linux-image-$kver/broadcom/$board.dtb"
done
for overlay in imx708 imx219 disable-bt; do
  echo "stand-in overlay $overlay" > "$k/usr/lib/linux-image-$kver/overlays/$overlay.dtbo"
done
: > "$k/usr/lib/modules/$kver/modules.order"
: > "$k/usr/lib/modules/$kver/modules.builtin"
# As a Debian kernel package does: the hooks make the initramfs.
package "linux-image-$kver" "1:6.6.74-1+rpt1" "kmod, initramfs-tools | linux-initramfs-tool" \
  "[ ! -d /etc/kernel/postinst.d ] || run-parts --report --exit-on-error --arg=$kver --arg=/boot/vmlinuz-$kver /etc/kernel/postinst.d"
package linux-image-rpi-2712 "1:6.6.74-1+rpt1" "linux-image-$kver"

r="$work/rpicam-apps-lite"
mkdir -p "$r/usr/bin"
printf '#!/bin/sh\necho "rpicam-vid: a stand-in for tests; no camera here" >&2\nexit 1\n' > "$r/usr/bin/rpicam-vid"
chmod 755 "$r/usr/bin/rpicam-vid"
package rpicam-apps-lite "1.5.3-1" ""
ls "$dir"
