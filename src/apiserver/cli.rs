//! `kreflex apiserver`: the embedded API server on its own.

use super::{ApiServer, ApiServerConfig, FaultConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// `kreflex apiserver` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiserverArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443", env = "KREFLEX_LISTEN")]
    pub listen: SocketAddr,
    /// Write an admin kubeconfig here.
    #[arg(long, env = "KREFLEX_KUBECONFIG_OUT")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Load state from this file at start and save it there at shutdown.
    #[arg(long, env = "KREFLEX_STATE")]
    pub state: Option<PathBuf>,
    /// Changes kept for watch resumption (older resourceVersions get 410 Gone).
    #[arg(long, default_value_t = 10_000, env = "KREFLEX_HISTORY_WINDOW")]
    pub history_window: usize,
    /// Do not enforce RBAC for non-admin users.
    #[arg(long, env = "KREFLEX_NO_RBAC")]
    pub no_rbac: bool,
    /// Fraction of writes failed with 429/500/503 (fault injection).
    #[arg(long, default_value_t = 0.0, env = "KREFLEX_FAULT_WRITE_ERROR_RATE")]
    pub fault_write_error_rate: f64,
    /// Fraction of watch events after which the watch is dropped (fault injection).
    #[arg(long, default_value_t = 0.0, env = "KREFLEX_FAULT_WATCH_DROP_RATE")]
    pub fault_watch_drop_rate: f64,
    /// Seed of the fault injection RNG.
    #[arg(long, default_value_t = 0, env = "KREFLEX_FAULT_SEED")]
    pub fault_seed: u64,
}

impl ApiserverArgs {
    /// The server configuration these flags describe.
    pub fn config(&self) -> ApiServerConfig {
        ApiServerConfig {
            listen: self.listen,
            state_file: self.state.clone(),
            history_window: self.history_window,
            rbac: !self.no_rbac,
            faults: FaultConfig {
                seed: self.fault_seed,
                write_error_rate: self.fault_write_error_rate,
                watch_drop_rate: self.fault_watch_drop_rate,
                ..FaultConfig::default()
            },
            ..ApiServerConfig::default()
        }
    }
}

/// Serves until `shutdown` fires.
pub async fn run(args: ApiserverArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let server = ApiServer::start(args.config()).await?;
    println!("kreflex apiserver listening on {}", server.url());
    if let Some(path) = &args.kubeconfig_out {
        server.write_kubeconfig(path)?;
        println!(
            "kubeconfig written to {}\ntry: kubectl --kubeconfig {} api-resources",
            path.display(),
            path.display()
        );
    }
    shutdown.cancelled().await;
    server.shutdown().await;
    Ok(())
}
