# Shared by plugins/<lang>/build.sh and plugins/setup-toolchains.sh (sourced; `here` is the
# language folder in a build script).
#
# Builds run concurrently: cargo runs tests in parallel threads, and several test binaries or
# a developer's shell may build the same language at once. So each language's toolchain
# install runs under a file lock and is marked done only when it finished (`install_once`),
# and each build script holds its language's build lock while it writes shared outputs
# (`lock_builds`). Locks are flock(1) locks, released when their holder exits, even killed.

command -v flock >/dev/null || { echo "flock (util-linux) is not installed: cannot build plugins safely" >&2; exit 3; }

# locked LOCKFILE COMMAND...: runs COMMAND holding an exclusive lock on LOCKFILE.
locked() {
  local lock="$1"
  shift
  ( flock 9 && "$@" ) 9>"$lock"
}

# install_once LOCKFILE DIR STAMP COMMAND...: makes sure DIR holds what COMMAND installs for
# the file STAMP (a requirements or lock file). Holding LOCKFILE, it does nothing if DIR's
# completion marker equals STAMP; else it removes DIR, runs COMMAND (which creates DIR) and
# only then writes the marker. So concurrent callers run COMMAND once and all return after it
# finished; a failed or killed install leaves no marker and the next call redoes it from
# scratch; a changed STAMP reinstalls.
install_once() {
  local lock="$1" dir="$2" stamp="$3"
  shift 3
  locked "$lock" install_unlocked "$dir" "$stamp" "$@"
}

install_unlocked() {
  local dir="$1" stamp="$2" marker="$1/.kreflex-installed"
  shift 2
  cmp -s "$stamp" "$marker" && return 0
  rm -rf "$dir"
  "$@" || return
  cp "$stamp" "$marker.tmp" && mv "$marker.tmp" "$marker"
}

# venv_install LANGDIR: LANGDIR/.venv holds LANGDIR/requirements.txt installed from PyPI.
venv_install() {
  install_once "$1/.install.lock" "$1/.venv" "$1/requirements.txt" make_venv "$1"
}

make_venv() {
  echo "installing $1/requirements.txt into $1/.venv" >&2
  python3 -m venv "$1/.venv" >&2 && "$1/.venv/bin/pip" install --quiet -r "$1/requirements.txt" >&2
}

# npm_install LANGDIR: LANGDIR/node_modules holds LANGDIR/package-lock.json from npm.
npm_install() {
  install_once "$1/.install.lock" "$1/node_modules" "$1/package-lock.json" npm_ci "$1"
}

npm_ci() {
  echo "installing $1/package-lock.json into $1/node_modules" >&2
  (cd "$1" && npm ci --no-audit --no-fund --loglevel=error >&2)
}

# wasm_target_install LANGDIR: rustup has the wasm32-wasip2 target (added under LANGDIR's
# install lock, so concurrent builds do not run two installs of it at once).
wasm_target_install() {
  locked "$1/.install.lock" add_wasm_target
}

add_wasm_target() {
  rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >&2
}

# lock_builds: holds this language's build lock (`$here/.build.lock`) until the build script
# exits, so two builds never write its shared outputs (target/, generated bindings, copies)
# at once.
lock_builds() {
  exec 8>"$here/.build.lock"
  flock 8
}

# Sets the array `kreflex` to the command that runs kreflex: $KREFLEX, else `kreflex` on PATH,
# else `cargo run` of this repository.
kreflex_command() {
  if [ -n "${KREFLEX:-}" ]; then kreflex=("$KREFLEX")
  elif command -v kreflex >/dev/null; then kreflex=(kreflex)
  else kreflex=(cargo run --quiet --release --manifest-path "$here/../../Cargo.toml" --)
  fi
}

# each_plugin MARKER BUILD ARGS...: calls `BUILD SRC NAME` for every plugin named in ARGS (a
# folder of $here, or a path to a plugin folder), or, with no ARGS, for every folder of $here
# holding MARKER; then prints the directory the components are written to.
each_plugin() {
  local marker="$1" build="$2" p src
  shift 2
  local plugins=("$@")
  if [ ${#plugins[@]} -eq 0 ]; then
    for d in "$here"/*/; do [ -f "$d/$marker" ] && plugins+=("$(basename "$d")"); done
  fi
  mkdir -p "$here/target"
  for p in "${plugins[@]}"; do
    if [[ "$p" == */* ]]; then src="$(cd "$p" && pwd)"; else src="$here/$p"; fi
    echo "building $(basename "$src")" >&2
    "$build" "$src" "$(basename "$src")"
  done
  echo "$here/target"
}
