#!/usr/bin/env bash
# The main job (for now): set up, build, and train the char-level demo model on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
"${LLOCO_BUILD_DIR:-build}/apps/lloco" demo "$@"
