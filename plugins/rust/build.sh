#!/usr/bin/env bash
# Builds the Rust guest workspace (SDK, example plugin, test fixtures) as WebAssembly
# components. Prints the directory holding the .wasm files. (cargo locks its own target
# directory; the rustup target install is serialized here.)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../build-common.sh"
wasm_target_install "$here"
cargo build --manifest-path "$here/Cargo.toml" --release --target wasm32-wasip2 --workspace "$@" >&2
echo "$here/target/wasm32-wasip2/release"
