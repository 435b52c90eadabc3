//! Loaded plugins and the snapshot that holds them.

use crate::apply::Applier;
use crate::route::Route;
use crate::wasm::{LoadError, LoadOptions, Plugin, Runtime};
use arc_swap::ArcSwap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `NAME.json` next to `NAME.wasm`: configuration handed to the plugin and per-plugin
/// overrides of the sandbox limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginFile {
    /// Any JSON; the plugin reads it with `get-config`.
    pub config: Option<serde_json::Value>,
    /// Memory limit in MiB.
    pub memory_limit_mib: Option<usize>,
    /// CPU deadline per call in milliseconds.
    pub call_timeout_ms: Option<u64>,
}

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
}

impl LoadedPlugin {
    /// Plugin name.
    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    /// What `kreflex plugins` shows.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.plugin.name(),
            "version": self.plugin.info().version,
            "sha256": self.plugin.hash(),
            "source": self.source,
            "loadedAt": jiff::Timestamp::try_from(self.loaded_at).map(|t| t.to_string()).unwrap_or_default(),
            "loadMillis": self.plugin.load_time().as_millis() as u64,
            "fromCache": self.plugin.loaded_from_cache(),
            "subscriptions": self.plugin.info().subscriptions,
            "permissions": self.plugin.info().permissions,
        })
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

/// Loads one `.wasm` file (with its optional `.json`). Blocking: compiles.
pub fn load_file(runtime: &Runtime, path: &Path) -> Result<LoadedPlugin, String> {
    let label = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("{label}: cannot read: {e}"))?;
    let side = path.with_extension("json");
    let file: PluginFile = if side.exists() {
        let text = std::fs::read_to_string(&side).map_err(|e| format!("{}: cannot read: {e}", side.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: invalid plugin file: {e}", side.display()))?
    } else {
        PluginFile::default()
    };
    let config: Option<Arc<str>> = file.config.map(|c| Arc::from(c.to_string()));
    let opts = LoadOptions {
        memory_limit: file.memory_limit_mib.map(|m| m << 20),
        timeout: file.call_timeout_ms.map(Duration::from_millis),
        config: config.clone(),
    };
    let plugin = Plugin::load_with(runtime, &bytes, &label, &opts).map_err(|e: LoadError| e.to_string())?;
    let routes = plugin
        .info()
        .subscriptions
        .iter()
        .map(Route::compile)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{label}: plugin {}: {e}", plugin.name()))?;
    Ok(LoadedPlugin {
        finalizer: format!("kreflex.io/{}", plugin.name()),
        routes,
        config,
        source: path.to_path_buf(),
        loaded_at: SystemTime::now(),
        applier: None,
        plugin,
    })
}
