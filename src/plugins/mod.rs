//! Plugins from a directory, in service: the registry of loaded plugins (an immutable
//! snapshot swapped whole, so every event is handled by exactly one version of a plugin)
//! and hot reload of the directory.
//!
//! Stages, like kube-runtime's watcher → reflector → controller: [`watcher`] and its schedule
//! say when to rescan; [`dir`] scans and fingerprints the files; [`load`] turns one file into a
//! [`LoadedPlugin`]; the reconciler decides what to load, keep or unload; [`Installer`]
//! swaps the [`Registry`] in and reports; [`status`] is what `kreflex plugins` shows.

pub mod dir;
mod installer;
pub mod load;
mod reconcile;
mod registry;
mod schedule;
pub mod status;
pub mod watcher;

pub use installer::{Installer, Replay};
pub use load::{LoadError, PluginFile, load_file};
pub use reconcile::Reconciler;
pub use registry::{LoadedPlugin, Registry, SharedRegistry};
pub use status::{PluginStatus, directory_status};
pub use watcher::ReloadConfig;
