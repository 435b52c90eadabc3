//! The command line (clap derive). Every flag also reads `KREFLEX_<NAME>` from the
//! environment. Each subcommand is a thin shell over a library entry point.

use crate::actions::Limits;
use crate::offline::{self, DirObjects};
use crate::telemetry::LogFormat;
use crate::wasm::{ArtifactCache, CallContext, Compiler, NoObjects, ObjectSource, Plugin, Runtime, WasmConfig};
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
    #[arg(long, global = true, value_enum, default_value = "text", env = "KREFLEX_LOG_FORMAT")]
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
    /// Deadline of one plugin call (wall clock, whatever the plugin is doing), in milliseconds.
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
    /// Compile plugins on low-priority threads of this process instead of in a child
    /// `kreflex precompile` process.
    #[arg(long, env = "KREFLEX_COMPILE_IN_PROCESS")]
    pub compile_in_process: bool,
    /// A plugin compile still running after this many seconds is killed and reported.
    #[arg(long, default_value_t = crate::wasm::DEFAULT_COMPILE_TIMEOUT.as_secs(), env = "KREFLEX_COMPILE_TIMEOUT_SECS")]
    pub compile_timeout_secs: u64,
    /// Let a plugin have permissions on a sensitive resource (Secrets, RBAC objects, service
    /// accounts, certificate signing, token and access reviews, webhook configurations):
    /// `PLUGIN:RESOURCE[.GROUP]`, e.g. `vault-sync:secrets`. Repeatable (comma-separated in
    /// the environment). Refused at load otherwise; `NAME.json` `allowSensitive` adds per
    /// plugin.
    #[arg(long, value_name = "PLUGIN:RESOURCE[.GROUP]", value_delimiter = ',', env = "KREFLEX_ALLOW_SENSITIVE")]
    pub allow_sensitive: Vec<crate::rbac::SensitiveGrant>,
}

impl SandboxArgs {
    /// The operator's allow list of sensitive permissions.
    pub fn allowed(&self) -> crate::rbac::Allowed {
        crate::rbac::Allowed::new(self.allow_sensitive.iter().cloned())
    }

    /// The wasm runtime configuration these flags describe.
    pub fn wasm_config(&self) -> WasmConfig {
        let defaults = WasmConfig::default();
        WasmConfig {
            memory_limit: self.memory_limit_mib << 20,
            call_timeout: Duration::from_millis(self.call_timeout_ms),
            max_instances: self.max_instances,
            cache_dir: if self.no_cache { None } else { self.cache_dir.clone().or(defaults.cache_dir.clone()) },
            compiler: match defaults.compiler {
                Compiler::Process { exe, .. } if !self.compile_in_process => {
                    Compiler::Process { exe, timeout: Duration::from_secs(self.compile_timeout_secs) }
                }
                _ => Compiler::InProcess,
            },
            ..defaults
        }
    }

    /// The configuration for commands that load plugins once and exit (`inspect`, `test`,
    /// `rbac`, `plugins --dir`): compiles run in this process at normal priority. The child
    /// process at idle priority protects a running engine's event threads; a one-shot
    /// command has none, and on a busy machine an idle-priority compile of a large component
    /// would take minutes for nothing.
    pub fn one_shot_config(&self) -> WasmConfig {
        WasmConfig { compiler: Compiler::InProcess, ..self.wasm_config() }
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
    /// Run the engine against a cluster (kubeconfig or in-cluster config).
    Run(RunArgs),
    /// Try kreflex with no cluster: embedded API server, example CRD and objects, example
    /// plugins, engine; prints a kubeconfig for kubectl.
    Dev(DevArgs),
    /// Run the embedded Kubernetes API server on its own.
    Apiserver(crate::apiserver::cli::ApiserverArgs),
    /// Print least-privilege RBAC (YAML) for plugins and for kreflex itself.
    Rbac(RbacArgs),
    /// Show the loaded plugins of a running kreflex (its admin endpoint), or what a plugin
    /// directory would load.
    Plugins(PluginsArgs),
    /// Turn a core WebAssembly module (clang + wasi-libc, Go wasip1, …) into a kreflex plugin
    /// component, with the WASI reactor adapter matching this kreflex's wasmtime.
    Componentize(ComponentizeArgs),
    /// Compile plugins into the precompiled-artifact cache ahead of time (an init container, an
    /// image build), so that loading them takes milliseconds. Prints one JSON line per plugin.
    /// `kreflex run` and `dev` also compile through it, in a child process.
    Precompile(PrecompileArgs),
    /// Create a plugin from a template that builds and passes `kreflex test` out of the box.
    New(NewArgs),
    /// Write bindings of the plugin contract for a language without its own generator
    /// (C: `reactor.h`, `reactor.c`, `reactor_component_type.o`).
    Bindgen(BindgenArgs),
}

impl Command {
    /// Whether the command's whole job is its output (it serves nothing): output into a
    /// closed pipe then simply ends it.
    pub fn is_output_only(&self) -> bool {
        !matches!(self, Command::Run(_) | Command::Dev(_) | Command::Apiserver(_))
    }
}

/// `kreflex componentize`.
#[derive(Debug, Args)]
pub struct ComponentizeArgs {
    /// The core module (`.wasm`).
    pub module: PathBuf,
    /// Where to write the component.
    #[arg(short, long)]
    pub out: PathBuf,
    /// The contract to embed if the module carries no type information (default: the one
    /// this kreflex was built with).
    #[arg(long)]
    pub wit: Option<PathBuf>,
}

/// `kreflex new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Plugin name (lowercase letters, digits, '-').
    pub name: String,
    /// Language.
    #[arg(long, value_enum)]
    pub lang: crate::scaffold::Lang,
    /// Folder to create the plugin in (default: `plugins/<lang>` of the kreflex repository,
    /// where its build script and helpers are).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `kreflex bindgen`.
#[derive(Debug, Args)]
pub struct BindgenArgs {
    /// Language.
    #[arg(value_enum)]
    pub lang: BindgenLang,
    /// Directory to write the files to.
    #[arg(short, long)]
    pub out_dir: PathBuf,
    /// The contract (default: the one this kreflex was built with).
    #[arg(long)]
    pub wit: Option<PathBuf>,
}

/// Languages `kreflex bindgen` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BindgenLang {
    /// C (wit-bindgen's C generator).
    C,
}

/// `kreflex plugins`.
#[derive(Debug, Args)]
pub struct PluginsArgs {
    /// Admin endpoint of a running kreflex (`--metrics-addr` of `run`/`dev`).
    #[arg(long, default_value = crate::ops::DEFAULT_ADMIN_ADDR, env = "KREFLEX_ADMIN_ADDR", conflicts_with = "dir")]
    pub admin: String,
    /// Load the plugins of this directory instead of asking a running instance.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Engine options shared by `run` and `dev`.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// Concurrent plugin calls and applies.
    #[arg(long, default_value_t = 16, env = "KREFLEX_WORKERS")]
    pub workers: usize,
    /// Re-deliver every object as a `resync` event this often (0 = never).
    #[arg(long, default_value_t = 600, env = "KREFLEX_RESYNC_SECONDS")]
    pub resync_seconds: u64,
    /// Remove a plugin's finalizer anyway after it failed to finalize for this long.
    #[arg(long, default_value_t = 300, env = "KREFLEX_FINALIZER_TIMEOUT_SECONDS")]
    pub finalizer_timeout_seconds: u64,
    /// Serve /healthz, /readyz, /metrics and /plugins here.
    #[arg(long, env = "KREFLEX_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Impersonate each plugin's service account for its writes.
    #[arg(long, env = "KREFLEX_IMPERSONATE")]
    pub impersonate: bool,
    /// Namespace of the plugin service accounts (for impersonation and `kreflex rbac`).
    /// Default: the pod's own namespace (`POD_NAMESPACE`, from the downward API), else
    /// `kreflex-system`.
    #[arg(long, env = "KREFLEX_NAMESPACE")]
    pub namespace: Option<String>,
    /// Impersonated user of a plugin; `{namespace}` and `{plugin}` are replaced.
    #[arg(long, default_value = crate::rbac::DEFAULT_USER_TEMPLATE, env = "KREFLEX_IMPERSONATE_TEMPLATE")]
    pub impersonate_template: String,
    /// Poll the plugin directory this often (milliseconds) instead of using inotify, for
    /// file systems without change notification.
    #[arg(long, env = "KREFLEX_POLL_MS")]
    pub poll_ms: Option<u64>,
    /// Load the plugin directory once at start; do not watch it.
    #[arg(long, env = "KREFLEX_NO_RELOAD")]
    pub no_reload: bool,
    /// Watch (and let plugins read) only this namespace; repeatable (comma-separated in the
    /// environment). Cluster-scoped kinds are still watched across the cluster. Default:
    /// every namespace.
    #[arg(long, value_name = "NS", value_delimiter = ',', env = "KREFLEX_WATCH_NAMESPACE",
        value_parser = crate::watch::parse_namespace)]
    pub watch_namespace: Vec<String>,
    /// Record plugin load results as Events on this object: `[GROUP/]VERSION/KIND/[NAMESPACE/]NAME`
    /// (e.g. `v1/Pod/kreflex-system/kreflex-0`). Default in a Pod: the Pod itself, from the
    /// `POD_NAMESPACE` and `POD_NAME` environment variables (downward API).
    #[arg(long, env = "KREFLEX_REPORT_OBJECT", value_parser = clap::value_parser!(crate::model::ObjectRef))]
    pub report_object: Option<crate::model::ObjectRef>,
    /// Leader election and sharding.
    #[command(flatten)]
    pub lease: LeaseArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// Leader election and sharding between replicas (`coordination.k8s.io/v1` Leases).
#[derive(Debug, Args, Clone)]
pub struct LeaseArgs {
    /// Elect one leader among the replicas through a Lease: only the leader applies actions
    /// and manages finalizers; standbys keep their caches synced and plugins compiled, and
    /// take over (replaying their cached objects) when the leader stops renewing.
    #[arg(long, env = "KREFLEX_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Split the objects into this many shards, each with its own Lease, spread between the
    /// replicas (implies leader election per shard).
    #[arg(long, env = "KREFLEX_SHARDS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: Option<u32>,
    /// What an object's shard is computed from: `name` (namespace/name) or `namespace`
    /// (a tenant's objects stay together).
    #[arg(long, value_enum, default_value = "name", env = "KREFLEX_SHARD_BY")]
    pub shard_by: crate::lease::ShardBy,
    /// The Lease (leader election) or the prefix of the shard and membership Leases.
    #[arg(long, default_value = "kreflex", env = "KREFLEX_LEASE_NAME")]
    pub lease_name: String,
    /// Namespace of the Leases (default: `POD_NAMESPACE`, else `--namespace`).
    #[arg(long, env = "KREFLEX_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Leases (default: `POD_NAME`, else the host name with a
    /// random suffix).
    #[arg(long, env = "KREFLEX_LEASE_IDENTITY")]
    pub lease_identity: Option<String>,
    /// How long a Lease is valid after its last renewal (client-go's LeaseDuration).
    #[arg(long, default_value_t = 15, env = "KREFLEX_LEASE_DURATION_SECONDS")]
    pub lease_duration_seconds: u64,
    /// A holder that has not renewed for this long stops acting (client-go's RenewDeadline);
    /// less than the lease duration.
    #[arg(long, default_value_t = 10, env = "KREFLEX_RENEW_DEADLINE_SECONDS")]
    pub renew_deadline_seconds: u64,
    /// How often the holder renews and standbys look for free Leases (client-go's RetryPeriod).
    #[arg(long, default_value_t = 2, env = "KREFLEX_RETRY_PERIOD_SECONDS")]
    pub retry_period_seconds: u64,
}

impl LeaseArgs {
    /// The election these flags ask for (`None`: neither `--leader-elect` nor `--shards`).
    pub fn lease_config(&self, own_namespace: &str) -> Option<crate::lease::LeaseConfig> {
        if !self.leader_elect && self.shards.is_none() {
            return None;
        }
        Some(crate::lease::LeaseConfig {
            name: self.lease_name.clone(),
            namespace: self
                .lease_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
                .unwrap_or_else(|| own_namespace.to_owned()),
            identity: self.lease_identity.clone().unwrap_or_else(crate::lease::default_identity),
            shards: self.shards.unwrap_or(1),
            shard_by: self.shard_by,
            timings: crate::lease::Timings {
                lease_duration: Duration::from_secs(self.lease_duration_seconds),
                renew_deadline: Duration::from_secs(self.renew_deadline_seconds),
                retry_period: Duration::from_secs(self.retry_period_seconds),
            },
        })
    }
}

impl EngineArgs {
    /// kreflex's own namespace: `--namespace`, else the pod's, else `kreflex-system`.
    pub fn own_namespace(&self) -> String {
        own_namespace(self.namespace.as_deref(), std::env::var("POD_NAMESPACE").ok())
    }

    /// The engine configuration for plugins in `dir`.
    pub fn engine_config(&self, dir: PathBuf) -> crate::engine::EngineConfig {
        crate::engine::EngineConfig {
            plugins_dir: dir,
            wasm: self.sandbox.wasm_config(),
            dispatcher: crate::dispatch::DispatcherConfig {
                workers: self.workers,
                finalizer_timeout: Duration::from_secs(self.finalizer_timeout_seconds),
                ..Default::default()
            },
            resync: (self.resync_seconds > 0).then(|| Duration::from_secs(self.resync_seconds)),
            watch_namespaces: crate::watch::WatchScope::namespaces(self.watch_namespace.iter().cloned()),
            impersonation: self.impersonate.then(|| (self.impersonate_template.clone(), self.own_namespace())),
            admin_addr: self.metrics_addr,
            reload: (!self.no_reload).then(|| crate::plugins::ReloadConfig {
                poll: self.poll_ms.map(Duration::from_millis),
                ..Default::default()
            }),
            allow_sensitive: self.sandbox.allowed(),
            leadership: self.lease.lease_config(&self.own_namespace()),
            report_object: self.report_object.clone().or_else(|| {
                let (ns, name) = (std::env::var("POD_NAMESPACE").ok()?, std::env::var("POD_NAME").ok()?);
                Some(crate::model::ObjectRef {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    namespace: Some(ns),
                    name,
                })
            }),
            ..Default::default()
        }
    }
}

/// kreflex's own namespace: the flag, else the pod's (`POD_NAMESPACE`, if set and not
/// empty), else `kreflex-system`.
fn own_namespace(flag: Option<&str>, pod_namespace: Option<String>) -> String {
    flag.map(str::to_owned).or(pod_namespace.filter(|ns| !ns.is_empty())).unwrap_or_else(|| "kreflex-system".to_owned())
}

/// `kreflex run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory of plugins (`*.wasm`, optional `*.json` next to each).
    #[arg(long, env = "KREFLEX_PLUGINS")]
    pub plugins: PathBuf,
    /// Kubeconfig file (default: the files in $KUBECONFIG; else, in a pod, its service
    /// account; else ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, env = "KREFLEX_CONTEXT")]
    pub context: Option<String>,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `kreflex dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Directory of plugins; default: the example plugins, built from `plugins/rust`.
    #[arg(long, env = "KREFLEX_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// Port of the embedded API server.
    #[arg(long, default_value_t = 6443, env = "KREFLEX_DEV_PORT")]
    pub port: u16,
    /// Where to write the kubeconfig (default: `target/kreflex-dev.kubeconfig` of the source
    /// tree, where git ignores it).
    #[arg(long, env = "KREFLEX_KUBECONFIG_OUT")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Keep the API server's objects in this file across runs.
    #[arg(long, env = "KREFLEX_STATE")]
    pub state: Option<PathBuf>,
    /// Stop after this many seconds (for scripted demos and tests); default: until Ctrl-C.
    #[arg(long, env = "KREFLEX_DEV_SECONDS")]
    pub seconds: Option<u64>,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl DevArgs {
    /// The `kreflex dev` configuration these flags describe.
    pub fn dev_config(self) -> crate::dev::DevConfig {
        crate::dev::DevConfig {
            engine: self.engine.engine_config(self.plugins.clone().unwrap_or_default()),
            plugins: self.plugins,
            port: self.port,
            kubeconfig_out: self.kubeconfig_out,
            state: self.state,
            duration: self.seconds.map(Duration::from_secs),
        }
    }
}

/// `kreflex rbac`.
#[derive(Debug, Args)]
pub struct RbacArgs {
    /// Plugin components.
    #[arg(required = true)]
    pub plugins: Vec<PathBuf>,
    /// Namespace of kreflex and the plugin service accounts.
    #[arg(long, default_value = "kreflex-system", env = "KREFLEX_NAMESPACE")]
    pub namespace: String,
    /// Namespace of kreflex's Leases, as given to `kreflex run --lease-namespace`
    /// (default: `--namespace`).
    #[arg(long, env = "KREFLEX_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// The namespaces `kreflex run --watch-namespace` watches: Roles and RoleBindings in
    /// each instead of ClusterRoles. Repeatable (comma-separated in the environment).
    #[arg(long, value_delimiter = ',', env = "KREFLEX_WATCH_NAMESPACE")]
    pub watch_namespace: Vec<String>,
    /// Leave out the Namespace objects (the namespaces exist already).
    #[arg(long)]
    pub no_namespace: bool,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// `kreflex inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin component (`.wasm`).
    pub plugin: PathBuf,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// `kreflex precompile`.
#[derive(Debug, Args)]
pub struct PrecompileArgs {
    /// Plugin components (`.wasm`); `-` reads one from stdin.
    #[arg(required = true)]
    pub plugins: Vec<PathBuf>,
    /// Directory of precompiled plugin artifacts (default: ~/.cache/kreflex).
    #[arg(long, env = "KREFLEX_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Run at idle CPU priority (`SCHED_IDLE`, nice 10), using only CPU time nothing else
    /// wants, and exit if the process that started this one does (how the engine runs it).
    #[arg(long)]
    pub background: bool,
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
        Command::Run(args) => tokio_main(run_engine(args)),
        Command::Dev(args) => tokio_main(crate::dev::run(args.dev_config())),
        Command::Apiserver(args) => tokio_main(async move {
            let cancel = tokio_util::sync::CancellationToken::new();
            let c = cancel.clone();
            tokio::spawn(async move {
                crate::engine::shutdown_signal().await;
                c.cancel();
            });
            crate::apiserver::cli::run(args, cancel).await
        }),
        Command::Rbac(args) => rbac(args),
        Command::Precompile(args) => precompile(args),
        Command::Plugins(args) => plugins(args),
        Command::Componentize(args) => {
            let module =
                std::fs::read(&args.module).with_context(|| format!("cannot read {}", args.module.display()))?;
            let component = crate::toolchain::componentize(&module, args.wit.as_deref())
                .with_context(|| format!("{}", args.module.display()))?;
            std::fs::write(&args.out, &component).with_context(|| format!("cannot write {}", args.out.display()))?;
            eprintln!("{}: component of {} bytes", args.out.display(), component.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::New(args) => {
            let dir = crate::scaffold::new_plugin(&args.name, args.lang, args.dir.as_deref())?;
            println!("created {}\n\n{}", dir.display(), crate::scaffold::next_steps(&args.name, args.lang, &dir));
            Ok(ExitCode::SUCCESS)
        }
        Command::Bindgen(args) => {
            let files = match args.lang {
                BindgenLang::C => crate::toolchain::c_bindings(args.wit.as_deref())?,
            };
            std::fs::create_dir_all(&args.out_dir)
                .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
            for (name, bytes) in files {
                let path = args.out_dir.join(name);
                std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn tokio_main(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(f)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a kubeconfig (or the in-cluster configuration), as [`crate::kubeconfig`] orders
/// the sources.
pub async fn kube_config(path: Option<&Path>, context: Option<&str>) -> anyhow::Result<kube::Config> {
    Ok(crate::kubeconfig::load(path, context).await?)
}

async fn run_engine(args: RunArgs) -> anyhow::Result<()> {
    let config = kube_config(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let engine = crate::engine::Engine::start(config, args.engine.engine_config(args.plugins.clone())).await?;
    crate::engine::shutdown_signal().await;
    engine.shutdown().await;
    Ok(())
}

fn rbac(args: RbacArgs) -> anyhow::Result<ExitCode> {
    let mut infos = Vec::new();
    for p in &args.plugins {
        let plugin = load_plugin(p, &args.sandbox)?;
        judge(&plugin, p, &args.sandbox).with_context(|| format!("{}: no RBAC is written for it", p.display()))?;
        infos.push(plugin.info().clone());
    }
    let options = crate::rbac::manifests::Options {
        namespace: args.namespace,
        lease_namespace: args.lease_namespace,
        watch_namespaces: args.watch_namespace,
        with_namespace: !args.no_namespace,
    };
    for ns in std::iter::once(&options.namespace).chain(&options.lease_namespace).chain(&options.watch_namespaces) {
        anyhow::ensure!(crate::names::is_dns_label(ns), "{ns:?} is not a valid namespace name");
    }
    print!("{}", crate::rbac::manifests::rbac_yaml(&infos, &options, &guess_plural));
    Ok(ExitCode::SUCCESS)
}

fn guess_plural(g: &crate::model::Gvk) -> String {
    crate::model::guess_plural(&g.kind)
}

/// The load-time judgment of the engine ([`crate::rbac::check_declared`]): the flags'
/// allow list plus `allowSensitive` of the `NAME.json` next to the component, if any.
fn judge(plugin: &Plugin, path: &Path, sandbox: &SandboxArgs) -> anyhow::Result<()> {
    let side = crate::plugins::dir::config_path(path);
    let file: crate::plugins::PluginFile = match std::fs::read(&side) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).with_context(|| format!("{}: invalid plugin file", side.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", side.display())),
    };
    let allowed = sandbox.allowed().with_file(plugin.name(), &file.allow_sensitive);
    crate::rbac::check_declared(plugin.info(), &allowed, &guess_plural)?;
    Ok(())
}

fn plugins(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    let (list, readiness) = match &args.dir {
        Some(dir) => {
            let runtime = Runtime::new(args.sandbox.one_shot_config()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
            (crate::plugins::directory_status(&runtime, dir, &args.sandbox.allowed())?, None)
        }
        None => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let list = crate::plugins::status::fetch(&args.admin).await?;
                let readiness = crate::plugins::status::fetch_readiness(&args.admin).await?;
                anyhow::Ok((list, Some(readiness)))
            })?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        // Ready or why not, and the role: leader, standby, shards held.
        if let Some(r) = readiness {
            println!("kreflex at {}: {r}\n", args.admin);
        }
        print!("{}", crate::plugins::status::table(&list));
    }
    Ok(if crate::plugins::status::any_failed(&list) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn load_plugin(path: &Path, sandbox: &SandboxArgs) -> anyhow::Result<Plugin> {
    let runtime = Runtime::new(sandbox.one_shot_config()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // `NAME.wasm` or a zstd-compressed `NAME.wasm.zst`, as the engine reads them.
    let source = crate::plugins::load::PluginSource::read(path)?;
    Ok(Plugin::load(&runtime, &source.wasm, &path.display().to_string())?)
}

fn precompile(args: PrecompileArgs) -> anyhow::Result<ExitCode> {
    if args.background {
        // Before any other thread starts: the compile threads inherit it.
        crate::wasm::lower_this_thread_priority();
        crate::wasm::exit_with_parent();
    }
    let dir = args
        .cache_dir
        .or_else(ArtifactCache::default_dir)
        .context("no cache directory: pass --cache-dir or set KREFLEX_CACHE_DIR or HOME")?;
    let engine = crate::wasm::compile_engine().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let cache = ArtifactCache::new(dir, &engine);
    let mut failed = false;
    for path in &args.plugins {
        let (label, bytes) = if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).context("cannot read the component from stdin")?;
            ("-".to_owned(), bytes)
        } else {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read plugin {}", path.display()))?;
            (path.display().to_string(), bytes)
        };
        let report = crate::wasm::precompile_one(&engine, &cache, &label, &bytes);
        failed |= report.error.is_some();
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let plugin = load_plugin(&args.plugin, &args.sandbox)?;
    let sensitive: Vec<String> =
        crate::rbac::sensitive::sensitive(plugin.info(), &guess_plural).into_iter().map(|(what, _)| what).collect();
    let refused = judge(&plugin, &args.plugin, &args.sandbox).err();
    let mut out = serde_json::json!({
        "name": plugin.info().name,
        "version": plugin.info().version,
        "sha256": plugin.hash(),
        "subscriptions": plugin.info().subscriptions,
        "permissions": plugin.info().permissions,
        "sensitive": sensitive,
    });
    if let Some(e) = &refused {
        out["refused"] = serde_json::Value::String(format!("{e:#}"));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(match refused {
        Some(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    })
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let text = if args.event.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("cannot read events from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.event).with_context(|| format!("cannot read {}", args.event.display()))?
    };
    let events = offline::parse_events(&text).with_context(|| format!("{}", args.event.display()))?;
    let plugin = load_plugin(&args.plugin, &args.sandbox)?;
    judge(&plugin, &args.plugin, &args.sandbox).context("kreflex run would refuse to load it")?;
    let source: Arc<dyn ObjectSource> = match &args.objects {
        Some(dir) => Arc::new(DirObjects::load(dir)?),
        None => Arc::new(NoObjects),
    };
    let config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not valid JSON", p.display()))?;
            Some(Arc::from(text.as_str()))
        }
        None => None,
    };
    let ctx = CallContext { source, policy: offline::declared_reads(plugin.info()), config };
    let reports = offline::run(&plugin, &events, &ctx, !args.no_filter, &Limits::default());
    let mut failed = 0;
    for r in &reports {
        if let Some(e) = &r.error {
            eprintln!("error: {e}");
            failed += 1;
        }
        let line = if args.pretty { serde_json::to_string_pretty(r)? } else { serde_json::to_string(r)? };
        println!("{line}");
    }
    if failed > 0 {
        bail!("{failed} of {} events failed in plugin {}", reports.len(), plugin.name());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_is_the_flag_else_the_pods_else_kreflex_system() {
        assert_eq!(own_namespace(Some("ops"), Some("pod-ns".into())), "ops");
        assert_eq!(own_namespace(None, Some("pod-ns".into())), "pod-ns");
        assert_eq!(own_namespace(None, Some(String::new())), "kreflex-system");
        assert_eq!(own_namespace(None, None), "kreflex-system");
    }

    #[test]
    fn watch_namespace_is_repeatable_and_comma_separated() {
        let cli = Cli::try_parse_from([
            "kreflex",
            "run",
            "--plugins",
            "p",
            "--watch-namespace",
            "a,b",
            "--watch-namespace",
            "c",
        ])
        .expect("parses");
        let Command::Run(run) = cli.command else { panic!("run") };
        let scope = run.engine.engine_config(PathBuf::from("p")).watch_namespaces;
        assert_eq!(scope, crate::watch::WatchScope::namespaces(["a", "b", "c"]));
        let bad = Cli::try_parse_from(["kreflex", "run", "--plugins", "p", "--watch-namespace", "Bad_NS"]);
        assert!(bad.expect_err("refused").to_string().contains("is not a namespace name"));
    }
}
