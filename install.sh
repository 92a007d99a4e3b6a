#!/usr/bin/env bash
# Install slmbench into a virtual environment (default ./.venv), compiling llama.cpp for this
# machine through llama-cpp-python (~10 minutes on 2 cores; cached afterwards).
#
#   ./install.sh               # CPU build (x86_64 / arm64), or CUDA when nvcc is found
#   VENV=/opt/venv ./install.sh
#   SLMBENCH_CUDA=0 ./install.sh   # CPU build even on a GPU machine; =1 forces CUDA
#   SLMBENCH_PACKAGE=dist/slmbench-0.1.0-py3-none-any.whl ./install.sh   # that package instead
#                                  # of this checkout (deploy/ansible/install.yml uses it)
#
# Why the flags: on x86_64, llama.cpp compiles with -march=native.  Some virtual machines
# advertise AMX instructions they do not allow, and every quantized model then dies with
# SIGILL; -mno-amx-* keeps everything else -march=native finds.  On a Jetson or a CUDA PC the
# CUDA backend is built (CMAKE_ARGS=-DGGML_CUDA=on).  A wheel built with other flags is never
# reused: the pip cache is kept per set of flags.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ "$(uname -m)" = "x86_64" ]; then
  export CFLAGS="${CFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  export CXXFLAGS="${CXXFLAGS:-} -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
# CUDA: forced with SLMBENCH_CUDA=1; automatic when nvcc exists AND there is a GPU to use it
# (a Jetson, or nvidia-smi listing a device) - a CUDA toolkit alone does not make a GPU.
has_nvcc() { command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; }
has_gpu() { [ -e /etc/nv_tegra_release ] || nvidia-smi -L >/dev/null 2>&1; }
cuda=${SLMBENCH_CUDA:-auto}
if [ "$cuda" = "1" ] || { [ "$cuda" = "auto" ] && has_nvcc && has_gpu; }; then
  export PATH="$PATH:/usr/local/cuda/bin"
  export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=on"
  echo "building llama.cpp with CUDA (set SLMBENCH_CUDA=0 for a CPU build)"
fi
flags_id=$(printf '%s|%s|%s' "${CFLAGS:-}" "${CXXFLAGS:-}" "${CMAKE_ARGS:-}" | sha256sum | cut -c1-12)
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/slmbench/pip-$flags_id}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
echo "installing slmbench into $VENV (llama.cpp compiles now if not cached: ~10 min on 2 cores)"
if [ -n "${SLMBENCH_PACKAGE:-}" ]; then spec=("$SLMBENCH_PACKAGE"); else spec=(-e ".[dev]"); fi
"$VENV/bin/python" -m pip install --quiet "${spec[@]}" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import llama_cpp, slmbench" || { echo "install failed" >&2; exit 1; }
"$VENV/bin/slmbench" --version
echo "done: . $VENV/bin/activate && slmbench demo"
