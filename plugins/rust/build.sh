#!/usr/bin/env bash
# Builds the Rust guest workspace (SDK, example plugin, test fixtures) as WebAssembly
# components. Prints the directory holding the .wasm files.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2 >&2
fi
cargo build --manifest-path "$here/Cargo.toml" --release --target wasm32-wasip2 --workspace "$@" >&2
echo "$here/target/wasm32-wasip2/release"
