//! The command line (clap derive). Every flag also reads `KREFLEX_<NAME>` from the
//! environment. Each subcommand is a thin shell over a library entry point.

use crate::actions::Limits;
use crate::offline::{self, DirObjects};
use crate::telemetry::LogFormat;
use crate::wasm::{CallContext, NoObjects, ObjectSource, Plugin, Runtime, WasmConfig};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// React to Kubernetes custom-resource changes with sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "kreflex", version, about)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log output format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "KREFLEX_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Log level or filter directives (e.g. `info`, `kreflex=debug`).
    #[arg(long, global = true, default_value = "info", env = "KREFLEX_LOG_LEVEL")]
    pub log_level: String,
}

/// Sandbox limits, shared by every command that runs plugins.
#[derive(Debug, Args, Clone)]
pub struct SandboxArgs {
    /// Memory one plugin instance may use, in MiB.
    #[arg(long, default_value_t = 64, env = "KREFLEX_MEMORY_LIMIT_MIB")]
    pub memory_limit_mib: usize,
    /// CPU deadline of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 1000, env = "KREFLEX_CALL_TIMEOUT_MS")]
    pub call_timeout_ms: u64,
    /// Plugin instances alive at once.
    #[arg(long, default_value_t = 64, env = "KREFLEX_MAX_INSTANCES")]
    pub max_instances: u32,
    /// Directory of precompiled plugin artifacts (default: ~/.cache/kreflex).
    #[arg(long, env = "KREFLEX_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write precompiled artifacts.
    #[arg(long, env = "KREFLEX_NO_CACHE")]
    pub no_cache: bool,
}

impl SandboxArgs {
    /// The wasm runtime configuration these flags describe.
    pub fn wasm_config(&self) -> WasmConfig {
        let defaults = WasmConfig::default();
        WasmConfig {
            memory_limit: self.memory_limit_mib << 20,
            call_timeout: Duration::from_millis(self.call_timeout_ms),
            max_instances: self.max_instances,
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or(defaults.cache_dir.clone())
            },
            ..defaults
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a plugin's name, version, subscriptions and permissions as JSON.
    Inspect(InspectArgs),
    /// Run events (one, a stream, or a recorded `kubectl get -w --output-watch-events -o json`)
    /// through a plugin offline and print the resulting actions as JSON.
    Test(TestArgs),
}

/// `kreflex inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin component (`.wasm`).
    pub plugin: PathBuf,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// `kreflex test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin component (`.wasm`).
    pub plugin: PathBuf,
    /// Event file: one event, a stream, or a kubectl watch recording; `-` for stdin.
    #[arg(long, short)]
    pub event: PathBuf,
    /// Directory of objects (YAML/JSON) the plugin's host `get`/`list-objects` read.
    #[arg(long)]
    pub objects: Option<PathBuf>,
    /// Plugin configuration (JSON) handed to the plugin's `get-config`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Deliver every event, ignoring the plugin's subscription filters.
    #[arg(long)]
    pub no_filter: bool,
    /// Pretty-print each report.
    #[arg(long)]
    pub pretty: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Runs the parsed command line. Returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect(args) => inspect(args),
        Command::Test(args) => test(args),
    }
}

fn load_plugin(path: &Path, sandbox: &SandboxArgs) -> anyhow::Result<Plugin> {
    let runtime = Runtime::new(sandbox.wasm_config()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read plugin {}", path.display()))?;
    Ok(Plugin::load(&runtime, &bytes, &path.display().to_string())?)
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let plugin = load_plugin(&args.plugin, &args.sandbox)?;
    let out = serde_json::json!({
        "name": plugin.info().name,
        "version": plugin.info().version,
        "sha256": plugin.hash(),
        "subscriptions": plugin.info().subscriptions,
        "permissions": plugin.info().permissions,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let text = if args.event.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read events from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.event)
            .with_context(|| format!("cannot read {}", args.event.display()))?
    };
    let events = offline::parse_events(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.event.display()))?;
    let plugin = load_plugin(&args.plugin, &args.sandbox)?;
    let source: Arc<dyn ObjectSource> = match &args.objects {
        Some(dir) => Arc::new(DirObjects::load(dir).map_err(anyhow::Error::msg)?),
        None => Arc::new(NoObjects),
    };
    let config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not valid JSON", p.display()))?;
            Some(Arc::from(text.as_str()))
        }
        None => None,
    };
    let ctx = CallContext {
        source,
        policy: offline::declared_reads(plugin.info()),
        config,
    };
    let reports = offline::run(&plugin, &events, &ctx, !args.no_filter, &Limits::default());
    let mut failed = 0;
    for r in &reports {
        if let Some(e) = &r.error {
            eprintln!("error: {e}");
            failed += 1;
        }
        let line = if args.pretty {
            serde_json::to_string_pretty(r)?
        } else {
            serde_json::to_string(r)?
        };
        println!("{line}");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} events failed in plugin {}",
            reports.len(),
            plugin.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}
