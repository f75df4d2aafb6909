#!/usr/bin/env bash
# Installs headless Chromium for make ui-test (Debian's chromium package),
# unless a Chromium or Chrome is already on PATH.
set -euo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then
    echo "chromium: $(command -v "$b")"
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
command -v chromium
