"""Checks an SD-card image's layout against what the Pi 5 firmware and
the appliance expect, by reading the image file (no loop devices, no
mounts): the GPT's partitions (order, names, types, sizes), autoboot.txt
on p1, the boot partition's files, config.txt and cmdline.txt, the system
image's contents (the right architecture, RAUC's compatible string, the
version) and the data file system. Prints one line per check and
"N passed, M failed".

    python3 layout.py --image IMG --profile pi5|qemu-x86_64 --version V
"""

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ota"))
from firmware import fat_read, gpt, parse_autoboot  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MIB = 1024 * 1024
# GPT partition types: the firmware reads FAT from "Microsoft basic data"
# partitions; the rest are "Linux filesystem".
BASIC_DATA = "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"
LINUX_FS = "0fc63daf-8483-4772-8e79-3d69d8477de4"
LAYOUT = [  # name, type, size in MiB (None: at least 256; the image's data partition is 384)
    ("bootcfg", BASIC_DATA, 32),
    ("boot_a", BASIC_DATA, 128),
    ("boot_b", BASIC_DATA, 128),
    ("system_a", LINUX_FS, 1024),
    ("system_b", LINUX_FS, 1024),
    ("data", LINUX_FS, None),
]
ELF_MACHINE = {"pi5": 183, "qemu-x86_64": 62}  # EM_AARCH64, EM_X86_64

results = []


def check(name, ok, info=""):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {info}", flush=True)
    return ok


def extract_system(image, part, dest):
    """The erofs system image of a partition, extracted to dest."""
    blob = os.path.join(dest, "system.erofs")
    subprocess.run(["dd", f"if={image}", f"of={blob}", "bs=1M", f"skip={part['offset']}",
                    f"count={part['size']}", "iflag=skip_bytes,count_bytes", "conv=sparse",
                    "status=none"], check=True)
    tree = os.path.join(dest, "tree")
    r = subprocess.run(["fsck.erofs", f"--extract={tree}", blob], capture_output=True, text=True)
    os.remove(blob)
    return tree if r.returncode == 0 else None


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return None
    return struct.unpack_from("<H", head, 18)[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image", required=True)
    p.add_argument("--profile", required=True, choices=sorted(ELF_MACHINE))
    p.add_argument("--version", required=True)
    a = p.parse_args()
    img, pi5 = a.image, a.profile == "pi5"

    parts = gpt(img)
    names = [parts[n]["name"] for n in sorted(parts)]
    check("the GPT holds six partitions in order", names == [n for n, _, _ in LAYOUT], " ".join(names))
    for i, (name, ptype, mib) in enumerate(LAYOUT, start=1):
        part = parts.get(i)
        if part is None:
            continue
        size = part["size"] // MIB
        check(f"p{i} {name}: type and size",
              part["type"] == ptype and (size == mib if mib else size >= 256),
              f"{'FAT (basic data)' if part['type'] == BASIC_DATA else part['type']}, {size} MiB")
    if len(parts) < 6:
        return

    ab = fat_read(img, parts[1]["offset"], "autoboot.txt")
    check("p1 autoboot.txt: tryboot_a_b, default boot_a, tryboot boot_b",
          ab is not None and len(ab) <= 512 and parse_autoboot(ab) == (2, 3),
          repr(ab.decode(errors="replace")) if ab else "missing")

    boot = parts[2]["offset"]
    cmdline = (fat_read(img, boot, "cmdline.txt") or b"").decode(errors="replace")
    args = cmdline.split()
    want_root = f"root=PARTUUID={parts[4]['uuid']}"
    check("boot_a cmdline.txt: one line, the root is system_a (read-only erofs), slot A",
          cmdline.count("\n") <= 1 and want_root in args and "rootfstype=erofs" in args
          and "ro" in args and "rauc.slot=A" in args, cmdline.strip())
    console = "console=serial0,115200" if pi5 else "console=ttyS0"
    check("boot_a cmdline.txt: the serial console", console in args, console)

    if pi5:
        config = (fat_read(img, boot, "config.txt") or b"").decode(errors="replace")
        with open(os.path.join(ROOT, "image", "pi5", "config.txt")) as f:
            want = f.read()
        check("boot_a config.txt: image/pi5/config.txt", config == want, f"{len(config)} bytes")
        m = re.search(r"^kernel=(\S+)$", config, re.M)
        i = re.search(r"^initramfs (\S+) followkernel$", config, re.M)
        check("config.txt names the kernel and the initramfs",
              m and i and (m.group(1), i.group(1)) == ("kernel_2712.img", "initramfs_2712"),
              f"{m.group(1) if m else None}, {i.group(1) if i else None}")
        kernel = fat_read(img, boot, "kernel_2712.img")
        check("boot_a kernel_2712.img: Raspberry Pi's 2712 kernel", kernel, f"{len(kernel or b'')} bytes")
        initrd = fat_read(img, boot, "initramfs_2712") or b""
        # An initramfs: a cpio archive, or one compressed (zstd, gzip).
        check("boot_a initramfs_2712: an initramfs made for that kernel",
              initrd[:6] == b"070701" or initrd[:4] == b"\x28\xb5\x2f\xfd" or initrd[:2] == b"\x1f\x8b",
              f"{len(initrd)} bytes, starts {initrd[:6].hex()}")
        for f in ("bcm2712-rpi-5-b.dtb", "bcm2712d0-rpi-5-b.dtb", "overlays/imx708.dtbo"):
            check(f"boot_a {f}", fat_read(img, boot, f) is not None)
    else:
        for f in ("vmlinuz", "initrd.img"):
            check(f"boot_a {f}", fat_read(img, boot, f) is not None)

    with open(img, "rb") as f:
        f.seek(parts[6]["offset"] + 1024)
        sb = f.read(256)
    magic, label = struct.unpack_from("<H", sb, 56)[0], sb[120:136].rstrip(b"\0").decode(errors="replace")
    check("data: ext4 labelled data", magic == 0xEF53 and label == "data", f"magic {magic:#x}, label {label!r}")

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tree = extract_system(img, parts[4], tmp)
        if not check("system_a: an erofs image", tree is not None):
            return
        blackbox = os.path.join(tree, "usr", "bin", "blackbox")
        machine = elf_machine(blackbox) if os.path.exists(blackbox) else None
        check(f"system_a: blackbox built for the {a.profile} CPU", machine == ELF_MACHINE[a.profile],
              f"ELF machine {machine}")
        with open(os.path.join(tree, "etc", "rauc", "system.conf")) as f:
            conf = f.read()
        check("system_a: RAUC's compatible string names the profile",
              f"compatible=blackbox-{a.profile}\n" in conf,
              next((l for l in conf.splitlines() if l.startswith("compatible")), "none"))
        with open(os.path.join(tree, "usr", "lib", "os-release")) as f:
            rel = f.read()
        check("system_a: os-release carries the version and profile",
              f"IMAGE_VERSION={a.version}\n" in rel and f"VARIANT_ID={a.profile}\n" in rel,
              " ".join(l for l in rel.splitlines() if l.startswith(("IMAGE_", "VARIANT_"))))
        boot_files = [f for f in os.listdir(os.path.join(tree, "boot")) if f.startswith(("vmlinuz", "initrd"))]
        check("system_a: the kernel lives on the boot partition only", not boot_files, " ".join(boot_files))
        if pi5:
            rpicam = os.path.join(tree, "usr", "bin", "rpicam-vid")
            check("system_a: rpicam-vid (Raspberry Pi's rpicam-apps)", os.access(rpicam, os.X_OK))
            mods = os.listdir(os.path.join(tree, "usr", "lib", "modules"))
            check("system_a: the 2712 kernel's modules", any(m.endswith("-rpi-2712") for m in mods),
                  " ".join(mods))

    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
