#!/usr/bin/env bash
# Builds the Python plugins into components: plugins/python/target/<plugin>.wasm.
# Installs componentize-py (pinned in requirements.txt) into plugins/python/.venv if missing.
# Prints the directory holding the .wasm files; logs go to stderr.
#   plugins/python/build.sh              # every plugin folder (one with an app.py)
#   plugins/python/build.sh database-status
set -euo pipefail
command -v python3 >/dev/null || { echo "python3 is not installed: cannot build the Python plugins" >&2; exit 3; }
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../wit"
venv="$here/.venv"
if ! "$venv/bin/componentize-py" --version >/dev/null 2>&1; then
  echo "installing componentize-py into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet -r "$here/requirements.txt" >&2
fi
mkdir -p "$here/target"
plugins=("$@")
if [ ${#plugins[@]} -eq 0 ]; then
  for d in "$here"/*/; do [ -f "$d/app.py" ] && plugins+=("$(basename "$d")"); done
fi
for p in "${plugins[@]}"; do
  # A plugin name (a folder here) or a path to a plugin folder.
  if [[ "$p" == */* ]]; then src="$(cd "$p" && pwd)"; else src="$here/$p"; fi
  p="$(basename "$src")"
  echo "building $p" >&2
  "$venv/bin/componentize-py" -d "$wit" -w reactor componentize app \
    -p "$src" -p "$here" -o "$here/target/$p.wasm" >&2
done
echo "$here/target"
