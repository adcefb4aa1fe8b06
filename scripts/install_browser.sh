#!/usr/bin/env bash
# Install what the browser tests drive: Debian's chromium at /usr/bin/chromium (tests/test_serve_browser.py,
# tests/test_web_browser.py; Playwright drives it as it is, no browser is downloaded) and npm, with which
# `dan export --web` fetches onnxruntime-web once (tests/test_web_browser.py).
# Does nothing when they are there; says so and leaves it to you where apt-get cannot run.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
PACKAGES=()
if [ -x "$CHROMIUM" ]; then
  echo "[browser] $CHROMIUM is there: $("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')"
else
  PACKAGES+=(chromium)
fi
if command -v npm >/dev/null 2>&1; then
  echo "[browser] npm is there: $(npm --version 2>/dev/null || echo 'version unknown')"
else
  PACKAGES+=(npm)
fi
[ ${#PACKAGES[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] missing: ${PACKAGES[*]}, and there is no apt-get here: install them yourself" \
    "(the browser tests skip without them, or fail with DAN_REQUIRE_BROWSER=1)"
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "[browser] missing: ${PACKAGES[*]}; installing needs root: sudo apt-get install ${PACKAGES[*]}"
    exit 0
  fi
fi
echo "[browser] installing Debian's ${PACKAGES[*]} with apt-get"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
[ -x "$CHROMIUM" ] && echo "[browser] installed $CHROMIUM: $("$CHROMIUM" --version 2>/dev/null || echo 'version unknown')"
command -v npm >/dev/null 2>&1 && echo "[browser] npm $(npm --version)"
exit 0
