#!/usr/bin/env bash
# Carries Debian's build dependencies to a machine that lacks them (the GPU machine).
#   scripts/carry_deps.sh            HERE (Debian 12 with apt): download the -dev packages into
#                                    .carry/debs (16 MB, git-ignored) and unpack them into .carry/prefix
#   scripts/carry_deps.sh --unpack   THERE: unpack .carry/debs into .carry/prefix (no apt needed)
# Then configure with CMAKE_PREFIX_PATH=.carry/prefix/usr (scripts/gpu_check.sh does all of it).
# Only the .debs travel: the unpacked prefix (125 MB, mostly static OpenBLAS) is over the carry limit.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  libeigen3-dev                                   # header-only
  nlohmann-json3-dev                              # header-only
  libyaml-cpp-dev libyaml-cpp0.7
  libgtest-dev libgmock-dev googletest             # prebuilt static gtest/gmock + sources
  libbenchmark-dev libbenchmark1debian
  libsentencepiece-dev libsentencepiece0
  libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0
  pkgconf-bin libpkgconf3                         # models/ finds sentencepiece through pkg-config
)
DEBS=.carry/debs
PREFIX=.carry/prefix

unpack_one() {
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$1" "$PREFIX"
  else  # a .deb is an ar archive holding data.tar.*
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && ar x "$OLDPWD/$1")
    tar -xf "$tmp"/data.tar.* -C "$PREFIX"
    rm -rf "$tmp"
  fi
}

unpack() {
  rm -rf "$PREFIX"
  mkdir -p "$PREFIX"
  for deb in "$DEBS"/*.deb; do unpack_one "$deb"; done
  # Debian picks the BLAS build with update-alternatives when installing; unpacking skips that,
  # so point the generic names at the pthread OpenBLAS (relative links), and drop its 80 MB of
  # static archives, which nothing links.
  local lib="$PREFIX/usr/lib/x86_64-linux-gnu"
  for so in libopenblas.so libopenblas.so.0 libblas.so libblas.so.3 liblapack.so liblapack.so.3; do
    if [[ -e "$lib/openblas-pthread/$so" && ! -e "$lib/$so" ]]; then ln -s "openblas-pthread/$so" "$lib/$so"; fi
  done
  rm -f "$lib"/openblas-pthread/*.a
  echo "[carry] $(ls "$DEBS"/*.deb | wc -l) packages unpacked into $PREFIX ($(du -sh "$PREFIX" | cut -f1))"
}

if [[ "${1:-}" == "--unpack" ]]; then
  [[ -n "$(ls "$DEBS"/*.deb 2>/dev/null)" ]] || { echo "[carry] no .debs in $DEBS: run scripts/carry_deps.sh on a Debian machine first" >&2; exit 1; }
  unpack
  exit 0
fi

mkdir -p "$DEBS"
rm -f "$DEBS"/*.deb
download() { (cd "$DEBS" && apt-get download -qq "${PACKAGES[@]}"); }
if ! download 2>/dev/null; then
  echo "[carry] apt lists missing or stale: apt-get update"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  download
fi
echo "[carry] downloaded $(ls "$DEBS"/*.deb | wc -l) packages ($(du -sh "$DEBS" | cut -f1)) into $DEBS"
unpack
