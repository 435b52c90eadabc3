//! The admin HTTP endpoint: `/healthz` (the process is alive and its tasks run),
//! `/readyz` (caches synced and plugins loaded), `/metrics` (Prometheus), `/plugins`
//! (what is loaded, for `kreflex plugins`).

use super::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the endpoints report, updated by the engine.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<parking_lot::RwLock<HealthState>>,
}

#[derive(Default)]
struct HealthState {
    live: bool,
    ready: bool,
    reason: String,
    /// What this replica acts on (leader, standby, shards), shown by `/readyz`.
    role: String,
    /// The `/plugins` JSON (`None` until the engine has scanned its directory once).
    plugins: Option<bytes::Bytes>,
}

impl Health {
    /// Marks liveness.
    pub fn set_live(&self, live: bool) {
        self.inner.write().live = live;
    }

    /// Marks readiness, with the reason when not ready.
    pub fn set_ready(&self, ready: bool, reason: impl Into<String>) {
        let mut s = self.inner.write();
        s.ready = ready;
        s.reason = reason.into();
    }

    /// Sets what this replica acts on, shown by `/readyz` (a standby is ready too).
    pub fn set_role(&self, role: String) {
        self.inner.write().role = role;
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.inner.read().ready
    }

    /// Publishes the status of the plugin files (serialized as JSON) for `/plugins`.
    pub fn set_plugins(&self, plugins: &impl serde::Serialize) -> serde_json::Result<()> {
        let json = serde_json::to_vec(plugins)?;
        self.inner.write().plugins = Some(json.into());
        Ok(())
    }
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: Metrics,
}

/// Serves the admin endpoints on `addr` until `cancel`. Returns the bound address
/// (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: Metrics,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/plugins", get(plugins))
        .with_state(AppState { health, metrics });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "admin endpoint stopped");
        }
    });
    Ok(bound)
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.inner.read().live { (StatusCode::OK, "ok\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not live\n") }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let h = s.health.inner.read();
    let role = if h.role.is_empty() { String::new() } else { format!(" ({})", h.role) };
    if h.ready {
        (StatusCode::OK, format!("ok{role}\n"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}{role}\n", h.reason))
    }
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        s.metrics.encode(),
    )
}

async fn plugins(State(s): State<AppState>) -> impl IntoResponse {
    let json = s.health.inner.read().plugins.clone().unwrap_or_else(|| bytes::Bytes::from_static(b"null"));
    ([(axum::http::header::CONTENT_TYPE, "application/json")], json)
}
