//! An embedded Kubernetes API server speaking the real REST protocol over HTTPS, so that
//! `kreflex dev` and the tests need no cluster, and real `kubectl` and `kube::Client` work
//! against it unchanged.
//!
//! What it serves: discovery and OpenAPI v3; namespaces, CRDs (creating one serves its
//! resource), Events (stored once, served as core v1 and events.k8s.io/v1), Leases,
//! ConfigMaps, Secrets, ServiceAccounts, RBAC objects, and Deployments, Services,
//! PodDisruptionBudgets and NetworkPolicies as stored objects (no controllers act on them);
//! CRUD with generateName, uid,
//! generation rules, status subresource isolation, optimistic concurrency and write
//! preconditions, finalizers; merge, strategic merge, JSON and server-side-apply patches with field
//! managers; list with label selectors, each kind's field selectors and pagination; watch
//! with resourceVersion, bookmarks and `410 Gone`; Tables for kubectl; bearer tokens, RBAC
//! from stored roles and bindings, impersonation; deletion propagation (orphan,
//! background, foreground) and a garbage collector for owner references; fault
//! injection; an optional state file.

mod auth;
pub mod cli;
mod convert;
mod defaults;
mod discovery;
mod faults;
mod field_selector;
mod fields;
mod gc;
mod http;
mod printers;
mod proto;
mod request;
mod resources;
mod scale;
mod schema;
mod status;
mod store;
mod strategic;
mod structure;
mod table;
mod tls;
mod validation;
mod verbs;
mod watch;

pub use auth::User;
pub use faults::{FaultConfig, FaultHandle};
pub use status::ApiError;

use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio_util::sync::CancellationToken;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Load state from here at start, save it here at shutdown.
    pub state_file: Option<PathBuf>,
    /// Changes kept for watch resumption; a watch from an older resourceVersion gets 410.
    pub history_window: usize,
    /// Largest request body (413 beyond).
    pub max_body_bytes: usize,
    /// Enforce RBAC for users outside `system:masters`.
    pub rbac: bool,
    /// Faults injected from the start.
    pub faults: FaultConfig,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_file: None,
            history_window: 10_000,
            max_body_bytes: 3 << 20,
            rbac: true,
            faults: FaultConfig::default(),
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The serving certificate could not be made.
    #[error("cannot create the serving certificate: {0}")]
    Tls(String),
    /// The state file could not be read.
    #[error("cannot load state from {path}: {reason}")]
    State {
        /// File.
        path: PathBuf,
        /// Cause.
        reason: String,
    },
}

/// One request, as counted in [`RequestStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StatKey {
    /// Authenticated (or impersonated) user.
    pub user: String,
    /// Kubernetes verb (or HTTP method for non-resource requests).
    pub verb: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// HTTP status code.
    pub code: u16,
}

/// Counts of requests the server answered. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RequestStats {
    counts: Arc<Mutex<HashMap<StatKey, u64>>>,
}

impl RequestStats {
    fn record(&self, k: StatKey) {
        *self.counts.lock().entry(k).or_default() += 1;
    }

    /// Requests matching a filter.
    pub fn count(&self, f: impl Fn(&StatKey) -> bool) -> u64 {
        self.counts.lock().iter().filter(|(k, _)| f(k)).map(|(_, n)| n).sum()
    }

    /// Every counted request.
    pub fn snapshot(&self) -> Vec<(StatKey, u64)> {
        self.counts.lock().iter().map(|(k, n)| (k.clone(), *n)).collect()
    }
}

/// A running embedded API server. Stops when [`ApiServer::shutdown`] is called or it is
/// dropped.
pub struct ApiServer {
    shared: request::Shared,
    ca_der: Vec<u8>,
    ca_pem: String,
    url: String,
    admin_token: String,
    state_file: Option<PathBuf>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// Starts a server.
    pub async fn start(config: ApiServerConfig) -> Result<Self, ApiServerError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ApiServerError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ApiServerError::Bind { addr: config.listen, source })?;
        let mut store = Store::new(config.history_window);
        if let Some(path) = &config.state_file
            && path.exists()
        {
            load_state(&mut store, path)?;
        }
        let auth = auth::Auth::new(config.rbac);
        let admin_token = format!("kreflex-admin-{}", uuid::Uuid::new_v4().simple());
        auth.add_token(&admin_token, User::new("admin", &["system:masters"]));
        let shared = request::Shared {
            store: Arc::new(Mutex::new(store)),
            auth,
            faults: FaultHandle::new(config.faults.clone()),
            stats: RequestStats::default(),
            max_body: config.max_body_bytes,
            bookmark_interval: config.bookmark_interval,
            address: addr.to_string(),
        };
        let app = axum::Router::new().fallback(http::handle).with_state(shared.clone());
        let cert = tls::ServingCert::generate().map_err(ApiServerError::Tls)?;
        let (ca_der, ca_pem) = (cert.der.clone(), cert.pem.clone());
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let task = tokio::spawn(async move { tls::serve(listener, &cert, app, token).await });
        tokio::spawn(gc::run(shared.store.clone(), cancel.clone()));
        let url = format!("https://{addr}");
        tracing::info!(%url, "embedded API server listening");
        Ok(Self { shared, ca_der, ca_pem, url, admin_token, state_file: config.state_file, cancel, task: Some(task) })
    }

    /// Base URL (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin user's bearer token (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A kube client configuration for a token.
    pub fn kube_config(&self, token: &str) -> kube::Config {
        let mut c = kube::Config::new(self.url.parse().expect("the server URL is a valid URI"));
        c.auth_info.token = Some(token.to_owned().into());
        c.root_cert = Some(vec![self.ca_der.clone()]);
        // Callers see injected faults as they are; kreflex retries with its own policy.
        c.default_retry = false;
        c.read_timeout = None;
        c
    }

    /// An admin `kube::Client` over real HTTP.
    pub fn client(&self) -> kube::Client {
        self.client_with_token(&self.admin_token)
    }

    /// A `kube::Client` authenticating with `token`.
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        kube::Client::try_from(self.kube_config(token))
            .expect("a client for this server's URL and certificate always builds")
    }

    /// Adds a bearer token for a user (RBAC then decides what it may do).
    pub fn add_user(&self, token: &str, name: &str, groups: &[&str]) {
        self.shared.auth.add_token(token, User::new(name, groups));
    }

    /// The server's certificate (PEM), to trust it.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig for the admin user, usable by kubectl.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig(&self.url, &self.ca_pem, &self.admin_token)
    }

    /// Writes the admin kubeconfig (mode 0600).
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        write_private(path, self.kubeconfig_yaml().as_bytes())
    }

    /// Runtime fault injection.
    pub fn faults(&self) -> FaultHandle {
        self.shared.faults.clone()
    }

    /// Requests answered so far.
    pub fn stats(&self) -> RequestStats {
        self.shared.stats.clone()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().rv()
    }

    /// Saves state to `path` (temp file + rename: never a torn file).
    pub fn save_state(&self, path: &Path) -> std::io::Result<()> {
        let store = self.shared.store.lock();
        let objects: Vec<Value> = store
            .all_objects()
            .into_iter()
            .map(|(k, o)| json!({"group": k.0, "resource": k.1, "object": *o}))
            .collect();
        let doc = json!({"resourceVersion": store.rv(), "objects": objects});
        drop(store);
        write_private(path, doc.to_string().as_bytes())
    }

    /// Stops serving (open watches end), saving state if a state file is configured.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(path) = self.state_file.clone()
            && let Err(e) = self.save_state(&path)
        {
            tracing::error!(path = %path.display(), error = %e, "cannot save API server state");
        }
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            // Watches are long-lived streams; don't wait for clients to hang up.
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A kubeconfig for `url` trusting `ca_pem`, authenticating with `token`.
pub fn kubeconfig(url: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kreflex\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: kreflex\n  context:\n    cluster: kreflex\n    user: admin\n    namespace: default\ncurrent-context: kreflex\nusers:\n- name: admin\n  user:\n    token: {token}\n"
    )
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn load_state(store: &mut Store, path: &Path) -> Result<(), ApiServerError> {
    let err = |reason: String| ApiServerError::State { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let rv = doc.get("resourceVersion").and_then(Value::as_u64).unwrap_or(1);
    let objects = doc
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| err("no objects".into()))?
        .iter()
        .filter_map(|o| {
            let g = o.get("group")?.as_str()?.to_owned();
            let r = o.get("resource")?.as_str()?.to_owned();
            Some(((g, r), o.get("object")?.clone()))
        })
        .collect();
    store.restore(rv, objects);
    Ok(())
}
