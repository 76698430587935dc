#!/usr/bin/env bash
# Runs the dashcam cases (pytest, labgrid) in a virtualenv of pinned
# versions (requirements.txt), and ends with "N passed, M failed" (a
# skipped case counts as neither and is named). Arguments go to pytest:
#   hil-tests/pi5/run.sh --lg-env hil-tests/pi5/env.yaml --image IMG --bundle B --key K   (the rig)
#   hil-tests/pi5/run.sh --board qemu --image IMG --key K                                (CI)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
"$venv/bin/pytest" "$here" -p no:cacheprovider -s -v --junitxml="$report" "$@" || status=1
"$venv/bin/python" - "$report" <<'PY'
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
for case in ET.parse(sys.argv[1]).iter("testcase"):
    name = case.get("name")
    problem = case.find("failure") if case.find("failure") is not None else case.find("error")
    if problem is not None:
        failed += 1
        print(f"FAIL pi5-cases: {name}: {(problem.get('message') or '').splitlines()[0][:300]}")
    elif case.find("skipped") is not None:
        print(f"skip pi5-cases: {name}: {case.find('skipped').get('message')}")
    else:
        passed += 1
        print(f"ok   pi5-cases: {name}")
print(f"{passed} passed, {failed} failed")
PY
exit "$status"
