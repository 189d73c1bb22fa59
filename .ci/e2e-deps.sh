#!/usr/bin/env bash
# Installs what the real-browser suite (./e2e) needs, and nothing when it is already there:
#   - Debian's Chromium at /usr/bin/chromium (or $CHROMIUM when set), driven by chromedp;
#   - axe-core from the npm registry, pinned by e2e/package-lock.json, injected into each page.
# Idempotent and quiet: prints one line per thing it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "e2e-deps: installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Recommends bring the fonts (liberation, dejavu) that make screenshots readable.
  apt-get install -y -qq chromium >/dev/null
fi

# The installed axe-core must be the locked one, not whatever an earlier checkout left.
axe_current() {
  command -v node >/dev/null 2>&1 && [ -f e2e/node_modules/axe-core/axe.min.js ] &&
    node -e 'const l=require("./e2e/package-lock.json").packages["node_modules/axe-core"].version;
      const i=require("./e2e/node_modules/axe-core/package.json").version; process.exit(l===i?0:1)' 2>/dev/null
}
if ! axe_current; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "e2e-deps: installing npm (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  echo "e2e-deps: installing axe-core from e2e/package-lock.json"
  npm ci --prefix e2e --no-audit --no-fund --loglevel=error >/dev/null
fi
