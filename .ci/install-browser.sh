#!/usr/bin/env bash
# Installs headless Chromium for the web UI tests (internal/server/ui_test.go) when no Chromium or Chrome is in
# PATH. Installs only as root (CI); otherwise says what to install. The tests skip, saying so, without a browser,
# unless NEXTCHAT_UI_TESTS is set, as .ci/run sets it.
set -euo pipefail

for b in chromium chromium-browser google-chrome google-chrome-stable; do
  command -v "$b" >/dev/null && exit 0
done
if [[ $(id -u) != 0 ]]; then
  echo "no Chromium or Chrome for the web UI tests — install one (e.g. sudo apt-get install chromium)" >&2
  exit 1
fi
echo "installing: chromium" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
