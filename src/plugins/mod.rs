//! The registry of loaded plugins: an immutable snapshot swapped whole (never mutated in
//! place), so every event is handled by exactly one version of a plugin; loading plugins
//! from a directory, and hot reload of that directory.

mod registry;
mod reload;

pub use registry::{LoadedPlugin, PluginFile, Registry, SharedRegistry, load_file};
pub use reload::{Installer, ReloadConfig, directory_status};
