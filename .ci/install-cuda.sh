#!/usr/bin/env bash
# Install a CUDA 13.0 compiler toolchain from NVIDIA's PyPI wheels (no GPU,
# no NVIDIA apt repo needed) and assemble a CUDA-toolkit-like root from it.
#
#   CUDA_ROOT=$(bash .ci/install-cuda.sh | tail -1)
#   cmake -G Ninja -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" \
#         -DCUDAToolkit_ROOT="$CUDA_ROOT" ...
#
# Layout (PREFIX = ${NEXTCHAT_CUDA_PREFIX:-/opt/nextchat-cuda}):
#   $PREFIX/venv   python venv holding the pinned nvidia-* wheels
#                  (they all unpack into site-packages/nvidia/cu13)
#   $PREFIX/cuda   the assembled root: bin/ include/ lib64/ (+ lib -> lib64)
#                  nvvm/, made of symlinks into the venv, plus the
#                  unversioned lib*.so links that CMake's find_library needs
#   $PREFIX/.stamp the pin set of the last good install
#
# Idempotent: if the stamp matches the pins below and nvcc compiles a smoke
# test, nothing is downloaded. The last line of stdout is always the root;
# all progress messages go to stderr.
#
# Environment:
#   NEXTCHAT_CUDA_PREFIX   install prefix (default /opt/nextchat-cuda)
#   NEXTCHAT_CUDA_CUBLAS   1 (default) installs cuBLAS (~420 MB download);
#                          0 skips it (then CUDA::cublas is not available)
#   NEXTCHAT_CUDA_FORCE    1 reinstalls even if the stamp matches
#   PYTHON                 python interpreter used to create the venv
set -euo pipefail

# CUDA 13.0 Update 2 (nvcc V13.0.88): the GPU machines run driver 580.x
# (CUDA 13.0) with nvcc 13.0, so this matches them exactly. cuBLAS 13.1.0.3
# is the cuBLAS shipped with 13.0 Update 2.
PINS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
)
if [[ "${NEXTCHAT_CUDA_CUBLAS:-1}" != 0 ]]; then
  PINS+=(nvidia-cublas==13.1.0.3)
fi

prefix="${NEXTCHAT_CUDA_PREFIX:-/opt/nextchat-cuda}"
venv="$prefix/venv"
root="$prefix/cuda"
stamp="$prefix/.stamp"
python="${PYTHON:-python3}"
want_stamp="layout=2 ${PINS[*]}"

log() { echo "install-cuda: $*" >&2; }

# Compile a tiny kernel for every arch CI cares about; proves nvcc, cicc,
# ptxas, fatbinary, the headers and the host compiler all work together.
smoke_test() {
  local tmp rc=0
  tmp="$(mktemp -d)"
  cat >"$tmp/smoke.cu" <<'EOF'
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
__global__ void smoke(float *p) { p[threadIdx.x] = __half2float(__float2half(1.0f)); }
int main() { float *d = nullptr; cudaMalloc(&d, 128); smoke<<<1, 32>>>(d); return 0; }
EOF
  "$root/bin/nvcc" -std=c++17 \
    -gencode=arch=compute_80,code=sm_80 \
    -gencode=arch=compute_90,code=sm_90 \
    -gencode=arch=compute_90a,code=sm_90a \
    "$tmp/smoke.cu" -o "$tmp/smoke" >&2 || rc=$?
  rm -rf "$tmp"
  return "$rc"
}

already_good() {
  [[ "${NEXTCHAT_CUDA_FORCE:-0}" != 1 ]] || return 1
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]] || return 1
  [[ -x "$root/bin/nvcc" ]] || return 1
  smoke_test
}

mkdir -p "$prefix"
# Serialize concurrent runs (e.g. two CI jobs on one machine).
exec 9>"$prefix/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

if already_good; then
  log "CUDA toolchain already installed at $root"
  echo "$root"
  exit 0
fi

log "installing CUDA wheels into $venv: ${PINS[*]}"
start=$SECONDS
rm -f "$stamp"
rm -rf "$venv"
if ! "$python" -m venv "$venv" >&2; then
  # Debian's system python needs python3-venv for ensurepip.
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "python venv failed; installing python3-venv"
    rm -rf "$venv"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >&2
    "$python" -m venv "$venv" >&2
  else
    log "cannot create a venv with $python (install python3-venv)"
    exit 1
  fi
fi
# --no-deps: nvidia-cuda-nvcc requires nvvm/crt/runtime *unpinned*; we pin
# the full set ourselves so pip never pulls a newer, mismatched minor.
"$venv/bin/python" -m pip install --disable-pip-version-check \
  --no-input --no-deps --only-binary=:all: "${PINS[@]}" >&2

cu="$("$venv/bin/python" - <<'EOF'
import sysconfig, os
print(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "cu13"))
EOF
)"
[[ -x "$cu/bin/nvcc" ]] || { log "nvcc not found under $cu"; exit 1; }

# Assemble the root in a scratch dir, then swap it in.
new="$root.new.$$"
rm -rf "$new"
mkdir -p "$new/bin" "$new/lib64" "$new/nvvm/lib64"
# bin/: nvcc finds nvcc.profile next to argv[0] (it does NOT resolve
# symlinks), and the profile sets TOP=<bin>/.., so every path nvcc derives
# (include/, lib64/, nvvm/bin/cicc) resolves inside this root.
for f in "$cu"/bin/*; do ln -s "$f" "$new/bin/"; done
ln -s "$cu/include" "$new/include"
# lib64/: the wheels ship only versioned sonames (libcudart.so.13, ...);
# add the unversioned dev links CMake's find_library() and -lcudart need.
for f in "$cu"/lib/*; do ln -s "$f" "$new/lib64/"; done
for f in "$cu"/lib/lib*.so.*; do
  base="$(basename "$f")"
  ln -sf "$base" "$new/lib64/${base%%.so.*}.so"
done
ln -s lib64 "$new/lib"
ln -s "$cu/nvvm/bin" "$new/nvvm/bin"
ln -s "$cu/nvvm/libdevice" "$new/nvvm/libdevice"
if [[ -e "$cu/lib/libnvvm.so.4" ]]; then
  ln -s "$cu/lib/libnvvm.so.4" "$new/nvvm/lib64/libnvvm.so.4"
  ln -s libnvvm.so.4 "$new/nvvm/lib64/libnvvm.so"
fi
ver="$("$new/bin/nvcc" --version | sed -n 's/.*release [0-9.]*, V\([0-9.]*\).*/\1/p')"
echo "CUDA Version $ver" >"$new/version.txt"
rm -rf "$root"
mv "$new" "$root"

if ! smoke_test; then
  log "smoke test failed: nvcc at $root/bin/nvcc cannot compile"
  exit 1
fi
echo "$want_stamp" >"$stamp"
log "installed CUDA $ver at $root in $((SECONDS - start)) s"
echo "$root"
