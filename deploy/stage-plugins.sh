#!/usr/bin/env bash
# Builds the example plugin (plugins/rust/database-status) and puts it where the kustomize
# base's configMapGenerator takes it from: deploy/base/plugins/database-status.wasm.
# plugins/rust/build.sh installs the wasm32-wasip2 target itself if rustup lacks it.
# Run by deploy/build-image.sh and by tests/deploy.rs before `kubectl kustomize`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
echo "== example plugin" >&2
out="$("$root/plugins/rust/build.sh" -p database-status)"
mkdir -p "$root/deploy/base/plugins"
# Copied beside it, then renamed: a reader never sees half a file.
cp "$out/database_status.wasm" "$root/deploy/base/plugins/.database-status.wasm.tmp"
mv "$root/deploy/base/plugins/.database-status.wasm.tmp" "$root/deploy/base/plugins/database-status.wasm"
echo "$root/deploy/base/plugins/database-status.wasm"
