#!/usr/bin/env bash
# Builds the Python plugins into components: plugins/python/target/<plugin>.wasm.
# Installs componentize-py (pinned in requirements.txt) into plugins/python/.venv if missing.
# Prints the directory holding the .wasm files; logs go to stderr.
#   plugins/python/build.sh              # every plugin folder (one with an app.py)
#   plugins/python/build.sh database-status
set -euo pipefail
command -v python3 >/dev/null || { echo "python3 is not installed: cannot build the Python plugins" >&2; exit 3; }
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../build-common.sh"
wit="$here/../../wit"
venv="$here/.venv"
lock_builds
venv_install "$here"
build_one() {
  local src="$1" p="$2"
  "$venv/bin/componentize-py" -d "$wit" -w reactor componentize app \
    -p "$src" -p "$here" -o "$here/target/$p.wasm" >&2
}

each_plugin app.py build_one "$@"
