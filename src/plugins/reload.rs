//! Hot reload: the plugin directory is watched (inotify through `notify`, debounced, or
//! polling where inotify is unavailable) and rescanned on every change. A changed file is
//! compiled off the hot path (a `kreflex precompile` child process at idle CPU priority, see
//! [`crate::wasm::Compiler`]; then the precompiled cache), validated, and swapped
//! in atomically with the rest of the registry; a bad file is reported and the last good
//! version keeps running; a removed file unloads its plugin.
//!
//! Files are identified by content (SHA-256 of `NAME.wasm` plus `NAME.json`), so the ways
//! files really arrive all work: written in place in several chunks (a file still growing
//! is left alone until it is stable), written to a temporary name and renamed, and the
//! Kubernetes ConfigMap volume layout, where `NAME.wasm` is a symlink through `..data`,
//! which is swapped atomically to a new timestamped directory.

use super::registry::{LoadedPlugin, Registry, SharedRegistry, load_file};
use crate::actions::Severity;
use crate::apply::{Applier, EventTarget, ScopedClients, record_event};
use crate::dispatch::Dispatcher;
use crate::model::{EventKind, ObjectRef};
use crate::ops::{Health, Metrics, ReloadLabels};
use crate::retry::Backoff;
use crate::wasm::{Runtime, compile_in_background};
use crate::watch::{Informers, Resources};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How the directory is watched.
#[derive(Debug, Clone)]
pub struct ReloadConfig {
    /// Quiet period after the last file event before rescanning.
    pub debounce: Duration,
    /// Poll every this often instead of using inotify (`None` = inotify).
    pub poll: Option<Duration>,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self { debounce: Duration::from_millis(300), poll: None }
    }
}

/// What is known about one plugin file.
struct FileState {
    fingerprint: String,
    /// The version in service (the last good one).
    loaded: Option<Arc<LoadedPlugin>>,
    /// Why the current content is not in service, if it is not.
    error: Option<String>,
}

/// Installs plugin sets: gives each plugin its scoped applier, swaps the registry,
/// reconciles informers, and replays cached objects to plugins that are new or changed.
#[derive(Clone)]
pub struct Installer {
    /// The registry everyone reads.
    pub registry: SharedRegistry,
    /// The sandbox runtime plugins are loaded into.
    pub runtime: Runtime,
    pub(crate) scoped: ScopedClients,
    pub(crate) resources: Resources,
    pub(crate) informers: Arc<Mutex<Informers>>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) metrics: Metrics,
    pub(crate) health: Health,
    files: Arc<Mutex<BTreeMap<PathBuf, FileState>>>,
    /// Where load results are recorded as Kubernetes Events (kreflex's own Pod, say).
    report: Option<(kube::Client, EventTarget)>,
}

impl Installer {
    /// An installer over the engine's parts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        registry: SharedRegistry,
        runtime: Runtime,
        scoped: ScopedClients,
        resources: Resources,
        informers: Arc<Mutex<Informers>>,
        dispatcher: Dispatcher,
        metrics: Metrics,
        health: Health,
    ) -> Self {
        Self {
            registry,
            runtime,
            scoped,
            resources,
            informers,
            dispatcher,
            metrics,
            health,
            files: Arc::default(),
            report: None,
        }
    }

    /// Records every load result as a Kubernetes Event on `target` (Normal `PluginLoaded`,
    /// Warning `PluginLoadFailed`), written with `client` (kreflex's own identity).
    pub(crate) fn report_to(mut self, client: kube::Client, target: ObjectRef) -> Self {
        self.report = Some((client, EventTarget { object: target, uid: None, resource_version: None }));
        self
    }

    /// Records a load result as an Event, in the background (a slow API server must not
    /// hold up loading).
    fn record(&self, severity: Severity, reason: &'static str, message: String) {
        let Some((client, target)) = self.report.clone() else { return };
        tokio::spawn(async move {
            if let Err(e) = record_event(&client, "reload", &target, severity, reason, &message).await {
                tracing::warn!(object = %target.object, error = %e, reason, "cannot record the plugin load Event");
            }
        });
    }

    fn count(&self, result: &str) {
        self.metrics.reloads.get_or_create(&ReloadLabels { result: result.into() }).inc();
    }

    /// Rescans `dir` and brings the registry in line with it. Returns the names of the
    /// plugins (re)loaded and the errors.
    pub async fn rescan(&self, dir: &Path) -> (Vec<String>, Vec<String>) {
        let (loaded, errors, _) = self.rescan_inner(dir, false).await;
        (loaded, errors)
    }

    /// A rescan. `provisional`: the directory changed a moment ago, so a file that does
    /// not load may still be being written; it is neither recorded as failed nor reported,
    /// and the third result says a settled rescan should follow.
    async fn rescan_inner(&self, dir: &Path, provisional: bool) -> (Vec<String>, Vec<String>, bool) {
        let mut files = self.files.lock().await;
        let present = match scan(dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot read the plugin directory");
                return (Vec::new(), vec![e], false);
            }
        };
        let mut changed = false;
        let mut loaded_names = Vec::new();
        let mut errors = Vec::new();
        let mut pending = false;
        let removed: Vec<PathBuf> = files.keys().filter(|p| !present.contains_key(*p)).cloned().collect();
        for p in removed {
            if let Some(state) = files.remove(&p)
                && let Some(lp) = state.loaded
            {
                tracing::info!(plugin = lp.name(), file = %p.display(), "plugin file removed; plugin unloaded");
                self.count("removed");
                changed = true;
            }
        }
        for (path, fingerprint) in present {
            if files.get(&path).is_some_and(|s| s.fingerprint == fingerprint) {
                continue;
            }
            let runtime = self.runtime.clone();
            let p2 = path.clone();
            // Compiling is the expensive part: off the async workers.
            let span = tracing::Span::current();
            let result = tokio::task::spawn_blocking(move || {
                let _e = span.enter();
                compile_in_background(|| load_file(&runtime, &p2))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| format!("{}: cannot start a thread to load it: {e}", path.display())))
            .and_then(|r| r);
            if provisional && let Err(e) = &result {
                tracing::debug!(file = %path.display(), error = %e, "not loadable yet; checking again once the directory is quiet");
                pending = true;
                continue;
            }
            let result = result.and_then(|lp| {
                let clash = files
                    .iter()
                    .find(|(other, s)| **other != path && s.loaded.as_ref().is_some_and(|o| o.name() == lp.name()));
                match clash {
                    Some((other, _)) => Err(format!(
                        "{}: plugin name {:?} is already loaded from {}",
                        path.display(),
                        lp.name(),
                        other.display()
                    )),
                    None => Ok(lp),
                }
            });
            let previous = files.remove(&path).and_then(|s| s.loaded);
            match result {
                Ok(mut lp) => {
                    let client = match self.scoped.client_for(lp.name()) {
                        Ok(c) => c,
                        Err(e) => {
                            errors.push(format!("{}: cannot build a client: {e}", path.display()));
                            files.insert(
                                path,
                                FileState { fingerprint, loaded: previous, error: errors.last().cloned() },
                            );
                            continue;
                        }
                    };
                    lp.applier = Some(Applier::new(
                        lp.name(),
                        client,
                        self.resources.clone(),
                        Backoff::default(),
                        self.metrics.clone(),
                    ));
                    tracing::info!(plugin = lp.name(), version = %lp.plugin.info().version, hash = %&lp.plugin.hash()[..12],
                        from_cache = lp.plugin.loaded_from_cache(), load_ms = lp.plugin.load_time().as_millis() as u64,
                        replaced = previous.is_some(), "plugin loaded");
                    self.count("ok");
                    self.record(
                        Severity::Normal,
                        "PluginLoaded",
                        format!(
                            "{}: plugin {} {} loaded (sha256 {})",
                            path.display(),
                            lp.name(),
                            lp.plugin.info().version,
                            &lp.plugin.hash()[..12]
                        ),
                    );
                    loaded_names.push(lp.name().to_owned());
                    files.insert(path, FileState { fingerprint, loaded: Some(Arc::new(lp)), error: None });
                    changed = true;
                }
                Err(e) => {
                    tracing::error!(error = %e, keeps_running = previous.as_ref().map(|p| p.name().to_owned()), "plugin not loaded; the last good version (if any) keeps running");
                    self.count("error");
                    let kept = previous.as_ref().map_or_else(
                        || "nothing from this file is running".to_owned(),
                        |p| format!("{} {} keeps running", p.name(), p.plugin.info().version),
                    );
                    self.record(Severity::Warning, "PluginLoadFailed", format!("{e}; {kept}"));
                    errors.push(e.clone());
                    files.insert(path, FileState { fingerprint, loaded: previous, error: Some(e) });
                }
            }
        }
        if changed {
            let plugins: BTreeMap<String, Arc<LoadedPlugin>> =
                files.values().filter_map(|s| s.loaded.clone()).map(|lp| (lp.name().to_owned(), lp)).collect();
            self.install(Registry { plugins }, &loaded_names).await;
        }
        self.publish(&files);
        (loaded_names, errors, pending)
    }

    /// Swaps in `registry`, starts/stops informers, and replays cached objects to the
    /// plugins named in `fresh` (new or new versions).
    async fn install(&self, registry: Registry, fresh: &[String]) {
        let kinds = registry.kinds();
        self.metrics.plugins_loaded.set(registry.plugins.len() as i64);
        let fresh_plugins: Vec<Arc<LoadedPlugin>> = fresh.iter().filter_map(|n| registry.get(n).cloned()).collect();
        self.registry.store(Arc::new(registry));
        let mut informers = self.informers.lock().await;
        let running_before = informers.kinds();
        for (gvk, e) in informers.reconcile(&kinds).await {
            tracing::error!(%gvk, error = %e, "subscribed kind is not served by the API server");
        }
        drop(informers);
        // Kinds that were already watched produce no new events by themselves: a new plugin
        // (or version) gets the cached objects, so that it reconciles everything.
        for lp in fresh_plugins {
            for r in &lp.routes {
                if running_before.contains(&r.gvk) {
                    self.dispatcher.replay(&lp, r, EventKind::Resync).await;
                }
            }
        }
    }

    fn publish(&self, files: &BTreeMap<PathBuf, FileState>) {
        let list: Vec<serde_json::Value> = files
            .iter()
            .map(|(path, s)| {
                let mut v =
                    s.loaded.as_ref().map(|lp| lp.summary()).unwrap_or_else(|| serde_json::json!({"source": path}));
                v["file"] = serde_json::json!(path);
                v["lastError"] = serde_json::json!(s.error);
                v
            })
            .collect();
        self.health.set_plugins(serde_json::Value::Array(list));
    }

    /// Watches `dir` until `cancel`.
    ///
    /// With inotify, a change that leaves a file complete (the writer closed it, it was
    /// renamed into place, a `..data` symlink was swapped, a file was removed) is picked up
    /// after a short settle time, so a new version is serving within milliseconds; other
    /// changes (data still being written) wait for a quiet period of `debounce`. A file
    /// that does not load on the fast path is only judged after the quiet period, so a
    /// half-written file is never reported as broken while its writer is still at it.
    /// With polling, every change waits for the quiet period.
    pub async fn watch(self, dir: PathBuf, config: ReloadConfig, cancel: CancellationToken) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
        let watcher: Result<Box<dyn std::any::Any + Send>, String> = match config.poll {
            None => {
                let tx = tx.clone();
                notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                    let _ = tx.send(match res {
                        Ok(e) => Change::classify(&e.kind),
                        Err(e) => {
                            tracing::warn!(error = %e, "plugin directory watch error");
                            Change::Settling
                        }
                    });
                })
                .and_then(|mut w| notify::Watcher::watch(&mut w, &dir, notify::RecursiveMode::NonRecursive).map(|_| w))
                .map(|w| Box::new(w) as Box<dyn std::any::Any + Send>)
                .map_err(|e| e.to_string())
            }
            Some(interval) => notify_debouncer_full::new_debouncer_opt::<_, notify::PollWatcher, _>(
                config.debounce,
                None,
                move |res: notify_debouncer_full::DebounceEventResult| {
                    if let Err(errors) = &res {
                        for e in errors {
                            tracing::warn!(error = %e, "plugin directory watch error");
                        }
                    }
                    // Already debounced: the directory has been quiet for `debounce`.
                    let _ = tx.send(Change::Quiet);
                },
                notify_debouncer_full::NoCache,
                notify::Config::default().with_poll_interval(interval).with_compare_contents(true),
            )
            .and_then(|mut d| d.watch(&dir, notify::RecursiveMode::Recursive).map(|_| d))
            .map(|d| Box::new(d) as Box<dyn std::any::Any + Send>)
            .map_err(|e| e.to_string()),
        };
        let _watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot watch the plugin directory; hot reload is off");
                return;
            }
        };
        tracing::info!(dir = %dir.display(), poll = ?config.poll, "watching the plugin directory");
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        // When to rescan provisionally (soon after a completing change) and for good (after
        // the quiet period).
        let (mut fast, mut settled) = (far(), far());
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                change = rx.recv() => {
                    let now = tokio::time::Instant::now();
                    match change {
                        None => return,
                        Some(Change::Complete) => fast = fast.min(now + SETTLE),
                        Some(Change::Settling) => settled = now + config.debounce,
                        Some(Change::Quiet) => settled = now,
                        Some(Change::Unchanged) => {}
                    }
                }
                _ = tokio::time::sleep_until(fast) => {
                    fast = far();
                    let (_, _, pending) = self.rescan_inner(&dir, true).await;
                    if pending {
                        settled = settled.min(tokio::time::Instant::now() + config.debounce);
                    }
                }
                _ = tokio::time::sleep_until(settled) => {
                    settled = far();
                    let (_, errors, _) = self.rescan_inner(&dir, false).await;
                    // A file that is still growing is rescanned once it is stable.
                    if errors.iter().any(|e| e.contains(UNSTABLE)) {
                        settled = tokio::time::Instant::now() + config.debounce;
                    }
                }
            }
        }
    }
}

const UNSTABLE: &str = "is still being written";

/// How long after a completing change (close after write, rename, removal) the directory
/// is rescanned: long enough to batch the events of one `mv` or symlink swap.
const SETTLE: Duration = Duration::from_millis(5);

/// What a file-system event means for when to rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A file is complete now: closed after writing, renamed into place, removed.
    Complete,
    /// Data is still arriving (or the event says nothing certain).
    Settling,
    /// The watcher already waited for a quiet period.
    Quiet,
    /// Nothing changed (a file was opened or read).
    Unchanged,
}

impl Change {
    fn classify(kind: &notify::EventKind) -> Self {
        use notify::event::{AccessKind, AccessMode, ModifyKind};
        match kind {
            notify::EventKind::Access(AccessKind::Close(AccessMode::Write))
            | notify::EventKind::Modify(ModifyKind::Name(_))
            | notify::EventKind::Remove(_) => Change::Complete,
            // Opens and reads (ours included) change nothing.
            notify::EventKind::Access(_) => Change::Unchanged,
            _ => Change::Settling,
        }
    }
}

/// `NAME.wasm` files in `dir` (following symlinks) with a fingerprint of their content and
/// of `NAME.json`. A file whose size changes while it is read is reported as unstable and
/// skipped this round.
fn scan(dir: &Path) -> Result<BTreeMap<PathBuf, String>, String> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let before = std::fs::metadata(&path).map(|m| m.len()).ok();
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let after = std::fs::metadata(&path).map(|m| m.len()).ok();
        if before != after || after != Some(bytes.len() as u64) {
            tracing::debug!(file = %path.display(), "{UNSTABLE}");
            continue;
        }
        let mut h = Sha256::new();
        h.update(&bytes);
        if let Ok(json) = std::fs::read(path.with_extension("json")) {
            h.update(b"\0config\0");
            h.update(&json);
        }
        out.insert(path, hex::encode(h.finalize()));
    }
    Ok(out)
}

/// What `kreflex plugins --dir` shows: every plugin file of `dir` loaded as the engine would
/// load it (same validation), with its summary or the error that would keep it out.
pub fn directory_status(runtime: &Runtime, dir: &Path) -> anyhow::Result<serde_json::Value> {
    let files = scan(dir).map_err(|e| anyhow::anyhow!("cannot read the plugin directory {e}"))?;
    let mut names = std::collections::HashSet::new();
    let list = files
        .keys()
        .map(|path| {
            let mut v = match super::load_file(runtime, path) {
                Ok(lp) if !names.insert(lp.name().to_owned()) => serde_json::json!({
                    "name": lp.name(),
                    "lastError": format!("plugin name {:?} is already used by another file", lp.name()),
                }),
                Ok(lp) => {
                    let mut v = lp.summary();
                    v["lastError"] = serde_json::Value::Null;
                    v
                }
                Err(e) => serde_json::json!({"lastError": e}),
            };
            v["file"] = serde_json::json!(path);
            v
        })
        .collect();
    Ok(serde_json::Value::Array(list))
}
