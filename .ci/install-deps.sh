#!/usr/bin/env bash
# Installs what building and testing nextchat needs and is missing: a C++17 compiler, CMake, Ninja,
# GoogleTest and Go (the go.mod toolchain line makes an older Go fetch the right one from the module proxy).
# Idempotent; installs only as root (CI) and otherwise says what to install.
set -euo pipefail

missing=()
command -v g++ >/dev/null || missing+=(g++)
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
[[ -f /usr/include/gtest/gtest.h ]] || missing+=(libgtest-dev)
command -v go >/dev/null || missing+=(golang-go)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "missing build tools: ${missing[*]} — install them (e.g. sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
