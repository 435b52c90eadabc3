//! The registry of loaded plugins: an immutable snapshot swapped whole (never mutated in
//! place), so every event is handled by exactly one version of a plugin, and loading
//! plugins from a directory.

mod registry;

pub use registry::{LoadedPlugin, PluginFile, Registry, SharedRegistry, load_dir, load_file};
