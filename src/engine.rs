//! The reaction engine assembled: plugins loaded into a registry, shared informers for
//! what they subscribe to, the dispatcher between them, admin endpoints, and a graceful
//! drain on shutdown. `kreflex run` and `kreflex dev` are thin shells over [`Engine`].

use crate::apply::ScopedClients;
use crate::dispatch::{Dispatcher, DispatcherConfig};
use crate::lease::{Gained, Leadership, LeaseConfig, Ownership};
use crate::model::EventKind;
use crate::ops::{Health, Metrics};
use crate::plugins::{Installer, LoadedPlugin, Reconciler, Registry, ReloadConfig, Replay, SharedRegistry};
use crate::route::Route;
use crate::wasm::{Runtime, WasmConfig};
use crate::watch::{Cache, Informers, Resources, WatchScope};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Directory of plugins (`*.wasm`, optional `*.json`).
    pub plugins_dir: PathBuf,
    /// Sandbox settings.
    pub wasm: WasmConfig,
    /// Queues and workers.
    pub dispatcher: DispatcherConfig,
    /// Periodic re-delivery of every object as `resync` (None = off).
    pub resync: Option<Duration>,
    /// The namespaces informers watch and plugins read (`--watch-namespace`); cluster-scoped
    /// kinds are watched across the cluster regardless.
    pub watch_namespaces: WatchScope,
    /// Impersonate `system:serviceaccount:<namespace>:kreflex-<plugin>` (template) for
    /// each plugin's writes.
    pub impersonation: Option<(String, String)>,
    /// Where `/healthz`, `/readyz`, `/metrics`, `/plugins` are served (None = not served).
    pub admin_addr: Option<SocketAddr>,
    /// How long in-flight work may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// Watch the plugin directory and hot-reload changes (`None` = load once at start).
    pub reload: Option<ReloadConfig>,
    /// Object that plugin load results are recorded on as Kubernetes Events (e.g. kreflex's
    /// own Pod); `None` = logs and metrics only.
    pub report_object: Option<crate::model::ObjectRef>,
    /// Sensitive permissions the operator allows plugins by name (`--allow-sensitive`);
    /// a plugin's `NAME.json` may add its own.
    pub allow_sensitive: crate::rbac::Allowed,
    /// Leader election or sharding between replicas (`None`: this process acts on every
    /// object).
    pub leadership: Option<LeaseConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            plugins_dir: PathBuf::from("plugins.d"),
            wasm: WasmConfig::default(),
            dispatcher: DispatcherConfig::default(),
            resync: Some(Duration::from_secs(600)),
            watch_namespaces: WatchScope::Cluster,
            impersonation: None,
            admin_addr: None,
            drain_timeout: Duration::from_secs(30),
            reload: Some(ReloadConfig::default()),
            report_object: None,
            allow_sensitive: crate::rbac::Allowed::default(),
            leadership: None,
        }
    }
}

/// Why the engine cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The WebAssembly runtime cannot be configured.
    #[error("cannot start the WebAssembly runtime: {0:#}")]
    Runtime(wasmtime::Error),
    /// No client can be built from the Kubernetes configuration.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The leader election settings are unusable.
    #[error("leader election: {0}")]
    Lease(#[from] crate::lease::LeaseConfigError),
    /// The admin endpoint cannot be served.
    #[error("cannot serve the admin endpoint on {addr}: {source}")]
    Admin {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// A running engine.
pub struct Engine {
    /// Metrics of this engine.
    pub metrics: Metrics,
    /// Health and readiness.
    pub health: Health,
    /// The loaded plugins.
    pub registry: SharedRegistry,
    /// The shared cache.
    pub cache: Cache,
    /// The bound admin address, if served.
    pub admin_addr: Option<SocketAddr>,
    /// What this replica acts on (leader election, shards).
    pub ownership: Ownership,
    leadership: Option<Leadership>,
    reconciler: Reconciler,
    informers: Arc<Mutex<Informers>>,
    dispatcher: Dispatcher,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    config: EngineConfig,
}

impl Engine {
    /// Starts everything: loads the plugins in `config.plugins_dir` (a bad file is
    /// reported and skipped), starts informers, router, workers and the admin endpoint.
    pub async fn start(kube_config: kube::Config, config: EngineConfig) -> Result<Self, EngineError> {
        let metrics = Metrics::new();
        let health = Health::default();
        health.set_live(true);
        health.set_ready(false, "starting");
        let runtime = Runtime::new(config.wasm.clone()).map_err(EngineError::Runtime)?;
        let scoped = match &config.impersonation {
            Some((template, ns)) => ScopedClients::impersonating(kube_config.clone(), template, ns, Vec::new()),
            None => ScopedClients::unscoped(kube_config.clone()),
        }
        .with_metrics(metrics.clone());
        let own_client = scoped.own_client()?;
        let resources = Resources::new(own_client.clone());
        let cache = Cache::new(config.watch_namespaces.clone());
        let cancel = CancellationToken::new();
        // Informer → router channel: small, so that a busy router applies backpressure to
        // the watches instead of buffering the cluster in memory.
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let informers = Informers::new(
            own_client.clone(),
            resources.clone(),
            cache.clone(),
            tx,
            config.resync,
            cancel.child_token(),
            metrics.clone(),
        );
        let registry: SharedRegistry = Arc::new(ArcSwap::from_pointee(Registry::default()));
        let (leadership, ownership, gained) = match &config.leadership {
            Some(lease) => {
                lease.validate()?;
                let (l, o, g) = Leadership::start(own_client.clone(), lease.clone(), metrics.clone());
                (Some(l), o, Some(g))
            }
            None => {
                metrics.leader.set(1);
                metrics.shards_held.set(1);
                (None, Ownership::everything(), None)
            }
        };
        let dispatcher = Dispatcher::new(
            registry.clone(),
            cache.clone(),
            resources.clone(),
            own_client.clone(),
            metrics.clone(),
            config.dispatcher.clone(),
        )
        .with_ownership(ownership.clone());
        let admin_addr = match config.admin_addr {
            Some(addr) => Some(
                crate::ops::serve(addr, health.clone(), metrics.clone(), cancel.child_token())
                    .await
                    .map_err(|source| EngineError::Admin { addr, source })?,
            ),
            None => None,
        };
        let informers = Arc::new(Mutex::new(informers));
        let mut installer = Installer::new(
            registry.clone(),
            scoped,
            resources,
            informers.clone(),
            Arc::new(dispatcher.clone()),
            metrics.clone(),
            health.clone(),
        );
        if let Some(target) = config.report_object.clone() {
            installer = installer.report_to(own_client, target);
        }
        let reconciler = Reconciler::new(installer, runtime, config.allow_sensitive.clone());
        let mut engine = Self {
            metrics,
            health,
            registry,
            cache,
            admin_addr,
            ownership,
            leadership,
            reconciler,
            informers,
            dispatcher: dispatcher.clone(),
            cancel: cancel.clone(),
            tasks: Vec::new(),
            config,
        };
        let router_cancel = cancel.child_token();
        engine.tasks.push(tokio::spawn({
            let d = dispatcher.clone();
            async move { d.route_events(rx, router_cancel).await }
        }));
        if let Some(gained) = gained {
            let replay = replay_gained(gained, engine.registry.clone(), dispatcher.clone(), cancel.child_token());
            engine.tasks.push(tokio::spawn(replay));
        }
        engine.tasks.push(tokio::spawn(async move { dispatcher.run_workers().await }));

        let dir = engine.config.plugins_dir.clone();
        let (_, errors) = engine.reconciler.rescan(&dir).await;
        for e in &errors {
            tracing::error!(error = %e, "plugin not loaded");
        }
        if let Some(reload) = engine.config.reload.clone() {
            let reconciler = engine.reconciler.clone();
            engine.tasks.push(tokio::spawn(reconciler.watch(dir, reload, cancel.child_token())));
        }
        engine.watch_readiness();
        Ok(engine)
    }

    /// Rescans the plugin directory now (what the directory watcher does on changes).
    pub async fn rescan(&self) -> (Vec<String>, Vec<String>) {
        self.reconciler.rescan(&self.config.plugins_dir).await
    }

    /// Waits until every informer has listed its kind once.
    pub async fn wait_synced(&self) {
        self.informers.lock().await.wait_synced().await;
    }

    fn watch_readiness(&mut self) {
        let informers = self.informers.clone();
        let health = self.health.clone();
        let cancel = self.cancel.clone();
        let ownership = self.ownership.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let inf = informers.lock().await;
                let dead = inf.dead();
                if !dead.is_empty() {
                    tracing::error!(?dead, "informers died; kreflex is not live");
                    health.set_live(false);
                }
                health.set_role(ownership.describe());
                if inf.all_synced() {
                    health.set_ready(true, "");
                } else {
                    health.set_ready(false, "informer caches not yet synced");
                }
            }
        }));
    }

    /// Stops intake, lets in-flight plugin calls and applies finish (bounded by
    /// `drain_timeout`), and returns.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: draining in-flight work");
        self.health.set_ready(false, "shutting down");
        self.cancel.cancel();
        let drain = futures::future::join_all(self.tasks);
        if tokio::time::timeout(self.config.drain_timeout, drain).await.is_err() {
            tracing::warn!(timeout = ?self.config.drain_timeout, "in-flight work did not finish in time");
        }
        // Only now, with nothing in flight: a standby takes over within a retry period.
        if let Some(l) = self.leadership {
            l.release().await;
        }
        tracing::info!("stopped");
    }

    /// The dispatcher (queue statistics).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }
}

/// New plugins (and versions) get the cached objects of kinds already watched from the
/// dispatcher's queue, as `resync` events.
#[async_trait::async_trait]
impl Replay for Dispatcher {
    async fn replay(&self, plugin: &Arc<LoadedPlugin>, route: &Route) {
        Dispatcher::replay(self, plugin, route, EventKind::Resync).await;
    }
}

/// Replays the cached objects of shards this replica has just gained (or of everything,
/// when it has just become the leader) to every plugin as `resync` events: what changed
/// while another replica held them, or between its last action and the handover, is seen.
async fn replay_gained(
    mut gained: tokio::sync::mpsc::UnboundedReceiver<Gained>,
    registry: SharedRegistry,
    dispatcher: Dispatcher,
    cancel: CancellationToken,
) {
    // Ends with intake on shutdown: the drain waits for this task, and the Leases (whose
    // task holds the sender) are released only after the drain.
    while let Some(g) = tokio::select! {
        _ = cancel.cancelled() => None,
        g = gained.recv() => g,
    } {
        let registry = registry.load();
        for lp in registry.plugins.values() {
            for route in &lp.routes {
                dispatcher.replay_where(lp, route, EventKind::Resync, |o| g.contains(o.namespace(), o.name())).await;
            }
        }
        tracing::info!(shards = ?g.shards, of = g.of, "replayed the cached objects of gained shards");
    }
}

/// Resolves when the process receives SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
