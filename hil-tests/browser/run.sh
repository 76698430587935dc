#!/usr/bin/env bash
# Runs the browser test (page.py) against the debug build: installs Debian's
# Chromium and ChromeDriver and, in a virtual environment under target/,
# Selenium and examples/relay's requirements (FastAPI, uvicorn) from PyPI.
# Ends with the script's "N passed, M failed".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
bash "$root/scripts/deps.sh" chromium chromium-driver python3-venv openssl >&2
venv="$root/target/browser-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import selenium, fastapi, uvicorn' 2>/dev/null; then
  /usr/bin/python3 -m venv "$venv"
  # Selenium for the page; examples/relay's own pinned requirements for the
  # FastAPI relay the suite runs in front of a camera's tap.
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'selenium>=4.20,<5' \
    -r "$root/examples/relay/requirements.txt" >&2
fi
(cd "$root" && cargo build --locked --quiet --bin blackbox)
exec "$venv/bin/python" "$here/page.py" "$root/target/debug/blackbox"
