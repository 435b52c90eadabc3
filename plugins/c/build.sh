#!/usr/bin/env bash
# Builds the C plugins into components: plugins/c/target/<plugin>.wasm.
# Needs clang, wasm-ld and wasi-libc (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32)
# and kreflex itself (`kreflex bindgen c` writes the bindings, `kreflex componentize` adds
# the WASI reactor adapter): $KREFLEX, else `kreflex` on PATH, else `cargo run` of this repo.
# Prints the directory holding the .wasm files; logs go to stderr.
#   plugins/c/build.sh                   # every plugin folder (one with a plugin.c)
#   plugins/c/build.sh database-status
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../build-common.sh"
CC="${CC:-clang}"
sysroot="${WASI_SYSROOT:-/usr}"
if ! command -v "$CC" >/dev/null || [ ! -f "$sysroot/lib/wasm32-wasi/libc.a" ]; then
  echo "clang and wasi-libc are not installed: cannot build the C plugins (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)" >&2
  exit 3
fi
lock_builds
kreflex_command
"${kreflex[@]}" bindgen c --out-dir "$here/bindings" 2>/dev/null
build_one() {
  local src="$1" p="$2"
  "$CC" --target=wasm32-wasi --sysroot="$sysroot" -mexec-model=reactor -O2 -Wall -Wextra -Wno-unused-parameter -Werror \
    -I"$src" -I"$here" -I"$here/bindings" "$src"/*.c "$here/bindings/reactor.c" "$here/bindings/reactor_component_type.o" \
    -o "$here/target/$p.core.wasm"
  "${kreflex[@]}" componentize "$here/target/$p.core.wasm" --out "$here/target/$p.wasm" >&2
}

each_plugin plugin.c build_one "$@"
