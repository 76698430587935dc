#!/bin/sh
# The rpicam-vid stand-in of the VM suites, for busybox sh (the guest has no
# Python; tests/fixtures/fake-rpicam-vid is the host's, with faults): the
# same arguments and output. --list-cameras lists FAKE_RPICAM_CAMERAS
# cameras (default 2) as rpicam-vid does; otherwise it writes back-to-back
# I420 frames of --width x --height at --framerate to stdout, flat grey:
# luma 80 for --camera 0, 200 for --camera 1, so two cameras tell apart.
set -eu
cameras=${FAKE_RPICAM_CAMERAS:-2}
camera=0 width=640 height=480 fps=30
while [ $# -gt 0 ]; do
  case "$1" in
    --list-cameras)
      echo "Available cameras"
      echo "-----------------"
      i=0
      while [ "$i" -lt "$cameras" ]; do
        echo "$i : imx708 [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@8${i}000/imx708@1a)"
        i=$((i + 1))
      done
      exit 0
      ;;
    --camera) camera=$2; shift ;;
    --width) width=$2; shift ;;
    --height) height=$2; shift ;;
    --framerate) fps=$2; shift ;;
  esac
  shift
done
echo "fake rpicam-vid: camera $camera, yuv420 ${width}x${height} at $fps fps" >&2
frame=/tmp/fake-rpicam-$$-$camera
trap 'rm -f "$frame"' EXIT
if [ "$camera" = 1 ]; then luma='\310'; else luma='\120'; fi
head -c $((width * height)) /dev/zero | tr '\0' "$luma" >"$frame"
head -c $((width * height / 2)) /dev/zero | tr '\0' '\200' >>"$frame"
# Until blackbox closes the pipe.
us=$((1000000 / fps))
while cat "$frame"; do
  usleep "$us" 2>/dev/null || sleep "$(printf '0.%06d' "$us")"
done
