#!/usr/bin/env bash
# Builds the JavaScript plugins into components: plugins/js/target/<plugin>.wasm.
# Installs componentize-js (pinned in package.json / package-lock.json) with npm if missing.
# Prints the directory holding the .wasm files; logs go to stderr.
#   plugins/js/build.sh                  # every plugin folder (one with an app.js)
#   plugins/js/build.sh database-status
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../build-common.sh"
command -v node >/dev/null || { echo "node is not installed: cannot build the JavaScript plugins" >&2; exit 3; }
lock_builds
npm_install "$here"
build_one() {
  local src="$1" p="$2"
  # No wasi:http: a kreflex plugin has no network (and kreflex does not link it).
  # componentize-js resolves imports against the working directory: run it from the
  # plugin's parent folder, where `../kreflex.js` of the plugin is `kreflex.js`.
  (cd "$(dirname "$src")" && "$here/node_modules/.bin/componentize-js" "$p/app.js" --wit "$here/../../wit" \
    --world-name reactor --disable http fetch-event --out "$here/target/$p.wasm" >&2)
}

each_plugin app.js build_one "$@"
