//! Loaded plugins and the snapshot that holds them: what the dispatcher reads for every
//! event. Filled by [`super::Installer`], which swaps a whole new [`Registry`] in on every
//! change, so an event is handled by exactly one version of a plugin.

use crate::apply::Applier;
use crate::route::Route;
use crate::wasm::Plugin;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A plugin ready to receive events: the compiled plugin, its compiled routes, its
/// configuration and its applier.
pub struct LoadedPlugin {
    /// The plugin.
    pub plugin: Plugin,
    /// Subscriptions with parsed selectors.
    pub routes: Vec<Route>,
    /// The finalizer name `kreflex.io/<plugin>`.
    pub finalizer: String,
    /// Configuration JSON text for `get-config`.
    pub config: Option<Arc<str>>,
    /// Where it was loaded from.
    pub source: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Applies its actions with its scoped client (set by the engine).
    pub applier: Option<Applier>,
    /// How much of [`Plugin::log_dropped_bytes`] is already counted in the metrics.
    pub log_dropped_counted: AtomicU64,
}

impl LoadedPlugin {
    /// Plugin name.
    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Log bytes dropped since the last call of this method (for a counter). Calls that
    /// race each count a disjoint part: the high-water mark only rises.
    pub fn log_dropped_since_counted(&self) -> u64 {
        let total = self.plugin.log_dropped_bytes();
        total.saturating_sub(self.log_dropped_counted.fetch_max(total, Ordering::Relaxed))
    }
}

/// One immutable set of loaded plugins, by name.
#[derive(Default)]
pub struct Registry {
    /// Plugins by name.
    pub plugins: BTreeMap<String, Arc<LoadedPlugin>>,
}

/// The registry as everyone reads it: a pointer swapped atomically on (re)load.
pub type SharedRegistry = Arc<ArcSwap<Registry>>;

impl Registry {
    /// A plugin by name.
    pub fn get(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.get(name)
    }

    /// Every subscribed kind.
    pub fn kinds(&self) -> std::collections::BTreeSet<crate::model::Gvk> {
        self.plugins.values().flat_map(|p| p.routes.iter().map(|r| r.gvk.clone())).collect()
    }
}
