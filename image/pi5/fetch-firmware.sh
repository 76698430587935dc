#!/usr/bin/env bash
# Downloads Raspberry Pi's packages that the pi5 image needs into DIR, for
# `image/build.sh pi5 --firmware DIR`: the Pi 5 kernel (linux-image-rpi-2712
# and the versioned package it pulls in), rpicam-apps-lite with the
# libcamera packages it needs, and firmware-brcm80211 (the firmware, CLM
# blob and board files of the Pi 5's CYW43455 Wi-Fi radio, brcmfmac). Only packages that come from Raspberry Pi's
# archive land in DIR; their Debian dependencies come from Debian when the
# image is built. Run where Raspberry Pi's archive can be reached (the
# release and hil workflows' runners); these development machines cannot.
#
#   image/pi5/fetch-firmware.sh DIR [PACKAGE...]
#
# apt runs with a private configuration and state in a temporary directory
# (nothing of the host's apt setup is read or changed). The archive key is
# checked against Raspberry Pi's published fingerprint; every file against
# the SHA256 of the signed index. BLACKBOX_PI_ARCHIVE and
# BLACKBOX_PI_KEYRING point it at another archive (the tests use Debian's).
set -euo pipefail
dir=${1:?usage: fetch-firmware.sh DIR [PACKAGE...]}
shift
packages=("$@")
[ "${#packages[@]}" -gt 0 ] || packages=(linux-image-rpi-2712 rpicam-apps-lite firmware-brcm80211)
archive=${BLACKBOX_PI_ARCHIVE:-http://archive.raspberrypi.com/debian}
key_url=https://archive.raspberrypi.com/debian/raspberrypi.gpg.key
fingerprint=CF8A1AF502A2AA2D763BAE7E82B129927FA3303E
debian_keyring=/usr/share/keyrings/debian-archive-keyring.gpg

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
need=()
for p in curl gpg debian-archive-keyring; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dir" "$tmp/state/lists/partial" "$tmp/cache/archives/partial" "$tmp/etc/none"
: > "$tmp/state/status"

if [ -n "${BLACKBOX_PI_KEYRING:-}" ]; then
  cp "$BLACKBOX_PI_KEYRING" "$tmp/pi.gpg"
else
  curl -fsSL "$key_url" -o "$tmp/pi.asc"
  got=$(gpg --show-keys --with-colons "$tmp/pi.asc" | awk -F: '$1 == "fpr" {print $10; exit}')
  if [ "$got" != "$fingerprint" ]; then
    echo "fetch-firmware: the key at $key_url is $got, not Raspberry Pi's $fingerprint" >&2
    exit 1
  fi
  gpg --dearmor < "$tmp/pi.asc" > "$tmp/pi.gpg"
fi
debian=http://deb.debian.org/debian
{
  [ "$archive" = "$debian" ] || echo "deb [arch=arm64 signed-by=$debian_keyring] $debian bookworm main"
  echo "deb [arch=arm64 signed-by=$tmp/pi.gpg] $archive bookworm main"
} > "$tmp/etc/sources.list"
apt_opts=(
  -o "Dir::State=$tmp/state" -o "Dir::State::status=$tmp/state/status"
  -o "Dir::Cache=$tmp/cache" -o "Dir::Etc::SourceList=$tmp/etc/sources.list"
  -o "Dir::Etc::SourceParts=$tmp/etc/none" -o "Dir::Etc::Preferences=$tmp/etc/none"
  -o "Dir::Etc::PreferencesParts=$tmp/etc/none" -o "APT::Architecture=arm64"
  -o "APT::Architectures::=arm64" -o "APT::Install-Recommends=false" -o "Debug::NoLocking=true"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" -qq update
# What installing them on an empty arm64 system would download; of that,
# what comes from the archive, as NAME=VERSION for apt-get download (which
# checks each file against the signed index).
apt-get "${apt_opts[@]}" -qq --print-uris install "${packages[@]}" > "$tmp/uris"
wanted=()
while read -r url file _rest; do
  url=${url//\'/}
  case "$url" in "$archive"/*) ;; *) continue ;; esac
  IFS=_ read -r name version _arch <<< "$file"
  wanted+=("$name=${version//%3a/:}")
done < "$tmp/uris"
count=${#wanted[@]}
if [ "$count" -gt 0 ]; then
  dest=$(cd "$dir" && pwd)
  (cd "$tmp/cache/archives" && apt-get "${apt_opts[@]}" -qq download "${wanted[@]}" && mv ./*.deb "$dest/")
fi
if [ "$count" -eq 0 ]; then
  echo "fetch-firmware: nothing of ${packages[*]} comes from $archive" >&2
  exit 1
fi
echo "fetch-firmware: $count packages from $archive in $dir" >&2
