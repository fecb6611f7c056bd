#!/usr/bin/env bash
# Installs everything lloco needs on a fresh Debian 12 machine (run as root, or with sudo available).
# Idempotent: packages already present are skipped by apt.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-dev                 # libFuzzer + sanitizers for the parser fuzz target
  libeigen3-dev                         # CPU matmul
  libopenblas-dev                       # sgemm baseline in benchmarks
  libyaml-cpp-dev                       # experiment configs (apps/ only)
  nlohmann-json3-dev                    # JSON (safetensors headers, datasets, results)
  libgtest-dev libgmock-dev             # tests
  libbenchmark-dev                      # benchmarks
  libsentencepiece-dev                  # LLaMA-2 tokenizer
  python3-venv                          # fixture generators (PyTorch etc. from PyPI)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "[setup] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] all Debian packages present"
fi
