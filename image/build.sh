#!/usr/bin/env bash
# Builds the SD-card image, blackbox-VERSION-PROFILE.img, and the parts an
# update bundle is made of (image/bundle.sh), into image/out/PROFILE/.
#
#   image/build.sh PROFILE [--version V] [--firmware DIR] [--deb FILE] [--config FILE] [--keep-tree]
#
# --deb installs that blackbox package instead of building one (the release
# workflow builds it with cross); --config replaces /etc/blackbox/blackbox.toml; --keep-tree leaves the root
# file system in image/out/PROFILE/tree (root-owned) for variants of the
# system image (the OTA tests make their update bundles that way).
# PROFILE is qemu-x86_64 (Debian's kernel, bootable under qemu here) or
# pi5 (the Raspberry Pi 5: its kernel and rpicam-apps come from Raspberry
# Pi's archive, which these machines cannot reach, so they are taken from
# --firmware DIR, the .deb files image/pi5/fetch-firmware.sh downloads
# there; the board's boot firmware itself lives in its EEPROM). An arm64
# root file system built on another architecture runs its maintainer
# scripts under qemu-user (binfmt_misc). One layout, GPT:
#
#   p1 bootcfg   FAT  32 MiB   autoboot.txt only (the firmware's A/B choice)
#   p2 boot_a    FAT 128 MiB   kernel, initramfs, cmdline.txt (+ config.txt, DTBs on a Pi)
#   p3 boot_b    FAT 128 MiB   the same for slot B (written by the first update)
#   p4 system_a  erofs         the read-only system of slot A
#   p5 system_b  erofs         slot B
#   p6 data      ext4          recordings, the password, journal, keys; grown at first boot
#
# No container engine and no loop devices: mmdebstrap builds the root file
# system (as root: it runs the packages' maintainer scripts in a chroot),
# mkfs.erofs, mkfs.vfat + mtools and mke2fs -d fill the file systems from
# directories, genimage lays them out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
usage() { echo "usage: image/build.sh qemu-x86_64|pi5 [--version V] [--firmware DIR] [--deb FILE] [--config FILE] [--keep-tree]" >&2; exit 2; }
profile=${1:-}
[ -n "$profile" ] || usage
shift
version=$(grep -m1 '^version' "$root/Cargo.toml" | cut -d'"' -f2)
firmware=""
deb=""
config=""
keep_tree=0
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=$2; shift 2 ;;
    --firmware) firmware=$(cd "$2" && pwd); shift 2 ;;
    --deb) deb=$(realpath "$2"); shift 2 ;;
    --config) config=$2; shift 2 ;;
    --keep-tree) keep_tree=1; shift ;;
    *) usage ;;
  esac
done
case "$profile" in
  qemu-x86_64) arch=amd64; kernel_pkg=linux-image-amd64 ;;
  pi5)
    arch=arm64; kernel_pkg=""
    if [ -z "$firmware" ] || [ ! -d "$firmware" ]; then
      echo "image: the pi5 profile needs --firmware DIR, Raspberry Pi's kernel and rpicam-apps packages (image/pi5/fetch-firmware.sh DIR fetches them)" >&2; exit 2
    fi
    if ! ls "$firmware"/linux-image-*rpi-2712*.deb >/dev/null 2>&1; then
      echo "image: $firmware holds no linux-image-*rpi-2712*.deb (Raspberry Pi's Pi 5 kernel)" >&2; exit 2
    fi
    ;;
  *) usage ;;
esac

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
need=()
# Two of these are only Recommends of the tools that call them, which
# --no-install-recommends would skip: squashfs-tools (mksquashfs, which
# `rauc bundle` runs) and arch-test (which mmdebstrap needs to build a
# foreign architecture's root file system).
for p in mmdebstrap genimage erofs-utils mtools dosfstools e2fsprogs rauc squashfs-tools openssl fdisk \
         $([ "$arch" = "$(dpkg --print-architecture)" ] || echo qemu-user-static arch-test); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "image: installing ${need[*]}" >&2
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A foreign architecture's maintainer scripts run under qemu-user: register
# it with binfmt_misc unless that is done (as systemd-binfmt would at boot;
# a container or CI machine may not have run it).
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  qarch=$(case "$arch" in arm64) echo aarch64 ;; *) echo "$arch" ;; esac)
  if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$qarch" ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || "${sudo_cmd[@]}" mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    conf=$(ls /usr/lib/binfmt.d/qemu-"$qarch".conf 2>/dev/null || true)
    if [ -z "$conf" ]; then
      echo "image: no /usr/lib/binfmt.d/qemu-$qarch.conf: cannot run $arch programs here" >&2; exit 1
    fi
    grep "^:qemu-$qarch:" "$conf" | "${sudo_cmd[@]}" tee /proc/sys/fs/binfmt_misc/register >/dev/null
  fi
fi

out="$here/out/$profile"
cache="$here/cache"
work="$out/work"
mkdir -p "$out" "$cache/apt-$arch"
"${sudo_cmd[@]}" rm -rf "$work" "$out/tree"
mkdir -p "$work"

# The signing key pair. Production bundles are signed with the key from
# BLACKBOX_SIGNING_KEY / BLACKBOX_SIGNING_CERT (the release workflow takes
# them from a secret; they are never in the repository); without them a
# development pair is made once and kept in image/cache/ (not committed).
keydir="$cache/dev-keys"
if [ -n "${BLACKBOX_SIGNING_CERT:-}" ]; then
  cert=$BLACKBOX_SIGNING_CERT
else
  cert="$keydir/cert.pem"
  if [ ! -f "$cert" ]; then
    # Made aside and renamed into place: two builds at once (the tests
    # build both profiles together) end with one pair, never the key of
    # one and the certificate of the other.
    fresh=$(mktemp -d "$cache/dev-keys.XXXXXX")
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=blackbox development" \
      -keyout "$fresh/key.pem" -out "$fresh/cert.pem" 2>/dev/null
    chmod 600 "$fresh/key.pem"
    if mv -T "$fresh" "$keydir" 2>/dev/null; then
      echo "image: made a development signing key in $keydir" >&2
    else
      rm -rf "$fresh"
    fi
  fi
fi

# The package (its postinst skips the password: the card makes its own).
if [ -z "$deb" ]; then
  deb=$(bash "$root/scripts/package.sh" "$arch" | tail -n 1)
fi
if [ "$(dpkg-deb -f "$deb" Architecture)" != "$arch" ]; then
  echo "image: $deb is not an $arch package" >&2; exit 2
fi
cp "$deb" "$work/blackbox.deb"

# The root file system. Downloaded packages are kept in image/cache/apt-ARCH
# between builds.
packages="systemd,systemd-sysv,udev,kmod,dbus,initramfs-tools,rauc,rauc-service,e2fsprogs,dosfstools"
packages+=",fdisk,util-linux,procps,iproute2,openssh-server,adduser"
# The owner's phone reaches the dashcam over its own access point.
packages+=",hostapd,iw,wireless-regdb,rfkill"
# Found as blackbox.local (systemd-resolved's mDNS responder); only the web,
# SSH, DHCP and mDNS answer on the Wi-Fi side (nftables; netbase's
# /etc/protocols and /etc/services name what its rules say).
packages+=",systemd-resolved,nftables,netbase"
# Joining a known network (wifi.mode client or auto); the tests also use it
# as the phone.
packages+=",wpasupplicant"
# Where and when: gpsd reads the GPS receiver (a USB one found by its
# hotplug rules, or a UART named in /etc/default/gpsd) and feeds chrony,
# which sets the clock from it (and NTP when online) and keeps the RTC.
# Debian's gpsd brings python3 for its tools (~25 MB): the daemon is C.
packages+=",gpsd,chrony"
[ -z "$kernel_pkg" ] || packages+=",$kernel_pkg"
# Raspberry Pi's packages, by path: apt resolves their dependencies between
# them and from Debian (mmdebstrap's file-mirror-automount hook makes the
# files visible inside the chroot for dpkg).
local_debs=()
if [ -n "$firmware" ]; then
  for f in "$firmware"/*.deb; do local_debs+=("--include=$f"); done
  local_debs+=(--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount)
fi
tree="$work/tree"
# openssh-server's postinst makes host keys unless they exist: a card makes
# its own at first boot (on /data), and an RSA key under qemu-user is most
# of a minute. Empty stand-ins, removed by customize.sh, make it skip them.
# shellcheck disable=SC2016 # "$1" is mmdebstrap's: the new root
no_host_keys='mkdir -p "$1/etc/ssh" && for t in rsa ecdsa ed25519; do : > "$1/etc/ssh/ssh_host_${t}_key"; done'
echo "image: root file system ($profile, $arch; mmdebstrap)" >&2
# shellcheck disable=SC2016 # "$1" is mmdebstrap's: the new root
"${sudo_cmd[@]}" env BLACKBOX_IMAGE_BUILD=1 mmdebstrap --mode=root --variant=minbase --arch="$arch" \
  --include="$packages" "${local_debs[@]}" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
  --setup-hook="sync-in '$cache/apt-$arch' /var/cache/apt/archives" \
  --essential-hook="$no_host_keys" \
  --customize-hook="copy-in '$work/blackbox.deb' /tmp" \
  --customize-hook='chroot "$1" env BLACKBOX_IMAGE_BUILD=1 dpkg -i /tmp/blackbox.deb' \
  --customize-hook="sync-out /var/cache/apt/archives '$cache/apt-$arch'" \
  --customize-hook="bash '$here/customize.sh' \"\$1\" '$root' '$profile' '$version' '$cert' '$config'" \
  bookworm "$tree" http://deb.debian.org/debian >"$out/mmdebstrap.log" 2>&1 || {
    tail -n 30 "$out/mmdebstrap.log" >&2; exit 1; }


# The boot partition's files.
boot="$work/boot"
mkdir -p "$boot"
console=ttyS0
extra=""
case "$profile" in
  qemu-x86_64)
    # qemu's PC has a floppy controller and no drive: do not probe it.
    extra=" modprobe.blacklist=floppy"
    "${sudo_cmd[@]}" cp "$tree"/boot/vmlinuz-* "$boot/vmlinuz"
    "${sudo_cmd[@]}" cp "$tree"/boot/initrd.img-* "$boot/initrd.img"
    "${sudo_cmd[@]}" chown -R "$(id -u):$(id -g)" "$boot"
    ;;
  pi5)
    # What Raspberry Pi's kernel package installs, under the names the Pi 5
    # firmware loads (config.txt): the 2712 kernel and its initramfs, the
    # BCM2712 device trees, the overlays (camera sensors among them).
    kernel=$(find "$tree/boot" -maxdepth 1 -name 'vmlinuz-*-rpi-2712' -printf '%f\n' | sort -V | tail -n 1)
    [ -n "$kernel" ] || { echo "image: no /boot/vmlinuz-*-rpi-2712 in the root file system" >&2; exit 1; }
    kver=${kernel#vmlinuz-}
    "${sudo_cmd[@]}" cp "$tree/boot/$kernel" "$boot/kernel_2712.img"
    "${sudo_cmd[@]}" cp "$tree/boot/initrd.img-$kver" "$boot/initramfs_2712"
    "${sudo_cmd[@]}" cp "$tree/usr/lib/linux-image-$kver"/broadcom/bcm2712*.dtb "$boot/"
    "${sudo_cmd[@]}" cp -r "$tree/usr/lib/linux-image-$kver/overlays" "$boot/overlays"
    "${sudo_cmd[@]}" chown -R "$(id -u):$(id -g)" "$boot"
    cp "$here/pi5/config.txt" "$boot/config.txt"
    console=serial0,115200
    ;;
esac
# Slot A's; the bundle's hook rewrites root= and rauc.slot= for the slot
# it is installed to.
echo "console=$console root=PARTUUID=@SYSTEM_A@ rootfstype=erofs ro rauc.slot=A rootwait quiet panic=10$extra" > "$boot/cmdline.txt"
"${sudo_cmd[@]}" rm -rf "$tree/boot/"vmlinuz* "$tree/boot/"initrd* "$tree/boot/"System.map* "$tree/boot/"config-*

# The file systems.
echo "image: file systems" >&2
"${sudo_cmd[@]}" mkfs.erofs -zlz4hc -T0 "$work/system.erofs" "$tree" >/dev/null
"${sudo_cmd[@]}" chown "$(id -u):$(id -g)" "$work/system.erofs"
# Fixed: every later update must fit the partition the card was made with.
system_size=1024
if [ "$(stat -c %s "$work/system.erofs")" -gt $(( system_size * 1048576 * 3 / 4 )) ]; then
  echo "image: the system image leaves less than a quarter of its ${system_size} MiB partition for growth" >&2
  exit 1
fi
uuid_a=$(cat /proc/sys/kernel/random/uuid)
uuid_b=$(cat /proc/sys/kernel/random/uuid)
sed -i "s/@SYSTEM_A@/$uuid_a/" "$boot/cmdline.txt"
fat() { # fat IMAGE SIZE_MIB LABEL DIR
  rm -f "$1"
  mkfs.vfat -C -n "$3" "$1" $(( $2 * 1024 )) >/dev/null
  if [ -n "$(ls -A "$4")" ]; then mcopy -s -p -i "$1" "$4"/* ::; fi
}
fat "$work/boot.vfat" 128 BOOT "$boot"
mkdir -p "$work/bootcfg"
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' > "$work/bootcfg/autoboot.txt"
fat "$work/bootcfg.vfat" 32 BOOTCFG "$work/bootcfg"
mkdir -p "$work/data"
mke2fs -q -t ext4 -L data -d "$work/data" "$work/data.ext4" 384M

name="blackbox-$version-$profile.img"
cat > "$work/genimage.cfg" <<EOF
image $name {
  hdimage {
    partition-table-type = "gpt"
    align = 4M
  }
  partition bootcfg {
    image = "bootcfg.vfat"
    partition-type-uuid = "F"
  }
  partition boot_a {
    image = "boot.vfat"
    partition-type-uuid = "F"
  }
  partition boot_b {
    size = 128M
    partition-type-uuid = "F"
  }
  partition system_a {
    image = "system.erofs"
    size = ${system_size}M
    partition-uuid = "$uuid_a"
  }
  partition system_b {
    size = ${system_size}M
    partition-uuid = "$uuid_b"
  }
  partition data {
    image = "data.ext4"
  }
}
EOF
rm -rf "$work/genimage-tmp" "${out:?}/$name"
genimage --config "$work/genimage.cfg" --rootpath "$work/data" --tmppath "$work/genimage-tmp" \
  --inputpath "$work" --outputpath "$out" >"$out/genimage.log" 2>&1 || {
    tail -n 20 "$out/genimage.log" >&2; exit 1; }

# What image/bundle.sh needs, and a record of what was built.
cp "$work/boot.vfat" "$out/boot.vfat"
mv "$work/system.erofs" "$out/system.erofs"
printf 'profile=%s\nversion=%s\nimage=%s\n' "$profile" "$version" "$name" > "$out/build.env"
if [ "$keep_tree" = 1 ]; then "${sudo_cmd[@]}" mv "$tree" "$out/tree"; fi
"${sudo_cmd[@]}" rm -rf "$work"
echo "image: $out/$name ($(du -h --apparent-size "$out/$name" | cut -f1), $(du -h "$out/$name" | cut -f1) on disk)" >&2
echo "$out/$name"
