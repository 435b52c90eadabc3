# Shared by plugins/<lang>/build.sh (sourced; `here` is the language folder).

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
