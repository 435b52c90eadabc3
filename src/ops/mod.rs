//! Operating kreflex as a sidecar: metrics, health and readiness endpoints.

mod metrics;
mod server;

pub use metrics::{ActionLabels, EventLabels, GvkLabel, Metrics, PluginErrorLabels, PluginLabel, ReloadLabels};
pub use server::{Health, serve};

/// Where `kreflex dev` serves its admin endpoint unless told otherwise, and where
/// `kreflex plugins` looks by default.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9464";
