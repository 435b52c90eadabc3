//! Where the kreflex source tree is, for the commands that use its examples and plugin
//! sources (`kreflex dev`, `kreflex new`).

use std::path::PathBuf;

/// The build's source tree if it is still there, else the current directory.
pub fn root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if built.join("examples").is_dir() { built } else { PathBuf::from(".") }
}
