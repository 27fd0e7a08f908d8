#!/usr/bin/env bash
# Runs the whole test suite (needs scripts/setup.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build ] || { echo "no ./build: run scripts/setup.sh first" >&2; exit 1; }
cmake --build build -j"$(nproc)"
export PEFT_SHARED_DATA="${PEFT_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
