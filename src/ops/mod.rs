//! Operating kreflex as a sidecar: metrics, health and readiness endpoints.

mod api_client;
mod metrics;
mod server;

pub use api_client::{ApiMetrics, ApiMetricsLayer, RequestKind};
pub use metrics::{
    ActionLabels, ApiLatencyLabels, ApiRequestLabels, EventLabels, GvkLabel, Metrics, PluginErrorLabels, PluginLabel,
    PluginQueueGauges, ReloadLabels,
};
pub use server::{Health, serve};

/// Where `kreflex dev` serves its admin endpoint unless told otherwise, and where
/// `kreflex plugins` looks by default.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9464";
