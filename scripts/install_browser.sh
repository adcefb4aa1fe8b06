#!/usr/bin/env bash
# Install the browser that the served page's tests drive (tests/test_serve_browser.py): Debian's
# chromium at /usr/bin/chromium. Playwright drives it as it is; no browser is downloaded.
# Does nothing when it is already there; says so and leaves it to you where apt-get cannot run.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  echo "[browser] $CHROMIUM is there: $("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] $CHROMIUM is missing and there is no apt-get here: install chromium yourself" \
    "(the browser tests skip without it, or fail with DAN_REQUIRE_BROWSER=1)"
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "[browser] $CHROMIUM is missing and installing it needs root: sudo apt-get install chromium"
    exit 0
  fi
fi
echo "[browser] installing Debian's chromium with apt-get"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
echo "[browser] installed $CHROMIUM: $("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')"
