//! Operating kreflex as a sidecar: metrics, health and readiness endpoints.

mod metrics;
mod server;

pub use metrics::{ActionLabels, EventLabels, GvkLabel, Metrics, PluginErrorLabels, PluginLabel, ReloadLabels};
pub use server::{Health, serve};
