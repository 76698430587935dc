"""Reads a guest's serial console for the signs of a hang, so that a boot
that will never finish ends in seconds, quoting what the kernel said,
instead of at a 900 s limit.

Two kinds of trouble, because only one of them may be retried:

- the emulator's: a kernel that reports an RCU stall, a timer wakeup that
  never happened, or a soft lockup (a vCPU that qemu stopped running), or
  qemu's own assertion. These are how TCG fails (issue 16); a harness may
  boot the same slot again, counted and printed, but only while blackbox
  has not yet answered in that boot;
- the product's, never retried: a kernel panic, an oops, a task blocked
  for minutes with no stall beside it, or a console silent for longer than
  the caller allows while the device is not yet healthy.

    python3 hil-tests/ota/watch.py LOG...   # exit 1 and the lines if any shows trouble
    python3 hil-tests/ota/watch.py --self-test
"""

import re
import sys
import time

EMULATOR = [
    ("kernel stall", re.compile(r"rcu: INFO: rcu_\w+ (self-)?detected stalls?")),
    ("kernel stall", re.compile(r"rcu_\w+ kthread (timer wakeup didn't happen|starved)")),
    ("soft lockup", re.compile(r"watchdog: BUG: soft lockup")),
    ("emulator abort", re.compile(r"qemu-system-\w+: .*Assertion")),
]
PRODUCT = [
    ("kernel panic", re.compile(r"Kernel panic - not syncing")),
    ("kernel oops", re.compile(r"BUG: unable to handle|general protection fault|Oops: ")),
    ("hung task", re.compile(r"blocked for more than \d+ seconds")),
]


class Trouble:
    """What ended a boot: `kind` is "emulator" or "product"."""

    def __init__(self, kind, what, lines):
        self.kind = kind
        self.what = what
        self.lines = lines

    def __repr__(self):
        quoted = " | ".join(l.strip() for l in self.lines)
        return f"{self.what} ({self.kind}): {quoted[:600]}"


def scan(text):
    """The first sign of trouble in a console's text, or None. An
    emulator's signature anywhere makes it the emulator's, even when the
    blocked tasks it causes came first."""
    lines = text.replace("\r", "").splitlines()
    for kind, signs in (("emulator", EMULATOR), ("product", PRODUCT)):
        for i, line in enumerate(lines):
            for what, sign in signs:
                if sign.search(line):
                    return Trouble(kind, what, lines[i:i + 4])
    return None


RETRIED = []  # (where, what) of every boot booted again, for the tally


def retried(where, trouble):
    """Counts and prints one boot started again because of the emulator."""
    RETRIED.append((where, trouble.what))
    print(f"retried: {where}: {trouble!r}; the same boot again", flush=True)


def retry_line():
    """The tally's line: how many boots the emulator cost, and why."""
    whats = sorted({w for _, w in RETRIED})
    return f"{len(RETRIED)} retried: emulator {', '.join(whats) or 'failures'}"


class Watch:
    """Watches one boot's console while it runs: `source` is the console
    file's path, or a function that returns the boot's console text.
    `silence`: seconds without a new byte after which a boot that is not
    yet healthy counts as hung (the product's: nothing proves it the
    emulator's)."""

    def __init__(self, source, silence=300):
        self.source = source
        self.silence = silence
        self.size = -1
        self.since = time.monotonic()

    def text(self):
        if callable(self.source):
            return self.source()
        try:
            with open(self.source, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check(self):
        """The trouble this boot shows so far, or None."""
        text = self.text()
        now = time.monotonic()
        if len(text) != self.size:
            self.size, self.since = len(text), now
        t = scan(text)
        if t is None and now - self.since > self.silence:
            tail = [l for l in text.replace("\r", "").splitlines() if l.strip()][-3:]
            t = Trouble("product", f"no console output for {self.silence} s", tail)
        return t


# The console of the failure issue 16 reports, and lines that are not trouble.
SAMPLE_STALL = """\
[  301.2] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[  301.2] rcu:    1-...!: (0 ticks this GP) idle=71a0/0/0x0 softirq=13/13 fqs=0 (false positive?)
[  301.3] rcu: rcu_preempt kthread timer wakeup didn't happen for 5251 jiffies! g-1043 f0x0
[  301.3] rcu:    Possible timer handling issue on cpu=1 timer-softirq=4
[  363.0] INFO: task kworker/1:1:29 blocked for more than 120 seconds.
"""
SAMPLE_HUNG = "[  242.1] INFO: task (udev-worker):113 blocked for more than 120 seconds.\n"
SAMPLE_CLEAN = """\
Booting from ROM...
blackbox: the dashcam's password is MUYQ-Th9s-674K-zmjm (change it in the page)
Debian GNU/Linux 12 blackbox ttyS0
rcu: Hierarchical SRCU implementation.
"""


def self_test():
    results = []

    def expect(name, got, kind, what):
        good = (got is None and kind is None) or (got is not None and (got.kind, got.what) == (kind, what))
        results.append(good)
        print(f"{'ok  ' if good else 'FAIL'} console watch: {name}: {got!r}")

    expect("an RCU stall is the emulator's", scan(SAMPLE_STALL), "emulator", "kernel stall")
    expect("a blocked task alone is the product's", scan(SAMPLE_HUNG), "product", "hung task")
    expect("a stall after blocked tasks is still the emulator's",
           scan(SAMPLE_HUNG + SAMPLE_STALL), "emulator", "kernel stall")
    expect("a panic", scan("Kernel panic - not syncing: VFS: Unable to mount root fs\n"),
           "product", "kernel panic")
    expect("qemu's assertion", scan("qemu-system-x86_64: ../system/physmem.c:1002: iotlb_to_section: "
                                    "Assertion `section_index < d->map.sections_nb' failed.\n"),
           "emulator", "emulator abort")
    expect("a normal boot", scan(SAMPLE_CLEAN), None, None)
    quiet = Watch(lambda: SAMPLE_CLEAN, silence=0.05)
    first = quiet.check()
    time.sleep(0.1)
    expect("a console that says nothing new", first or quiet.check(), "product",
           "no console output for 0.05 s")
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    found = 0
    for path in argv[1:]:
        with open(path, "rb") as f:
            t = scan(f.read().decode("utf-8", "replace"))
        if t is not None:
            found += 1
            print(f"{path}: {t!r}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
