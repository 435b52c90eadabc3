//! A loaded plugin: its compiled component, its `InstancePre`, what it declared in
//! `describe()`, and the call path (fresh `Store` per event, limits, deadline).
//!
//! Every call — `describe` at load and `on-event` — is one future run on the host's
//! executor (`executor.rs`): instantiate, call the export, all under one wall-clock
//! deadline. When the deadline fires the future is dropped, wherever the plugin is:
//! computing (guest code yields at every epoch tick), in a host call, or waiting in WASI.

use super::bindings::{Reactor, ReactorPre, kreflex::plugin::types as wit};
use super::cache::{CacheOutcome, content_hash};
use super::compiler::CompileError;
use super::engine::Runtime;
use super::host::{CallContext, HostState};
use super::log::{CallLog, LogBudget};
use crate::model::{EventKind, Gvk, ObjectRef, Permission, PluginInfo, Subscription};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime::Store;

/// Per-plugin settings applied at load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Memory limit override (bytes).
    pub memory_limit: Option<usize>,
    /// Call deadline override.
    pub timeout: Option<Duration>,
    /// Configuration JSON for `get-config`.
    pub config: Option<Arc<str>>,
}

/// An action exactly as the plugin returned it, before validation (see [`crate::actions`]).
pub type RawAction = wit::Action;

/// One event as handed to a plugin: the kind and the objects as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    /// Why the plugin is called.
    pub kind: EventKind,
    /// The object, as JSON.
    pub object: String,
    /// The previous object the plugin saw, as JSON.
    pub old_object: Option<String>,
}

/// Why a plugin file could not be loaded. Nothing of a plugin that fails to load runs.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component (a core module, or not wasm at all).
    #[error("{source_name}: not a WebAssembly component: {reason}")]
    NotAComponent {
        /// File or label the bytes came from.
        source_name: String,
        /// What wasmtime said.
        reason: String,
    },
    /// Compiling failed for a reason other than the bytes: the compiler process crashed, was
    /// killed (e.g. out of memory) or ran past its deadline.
    #[error("{source_name}: cannot compile: {reason}")]
    CompileFailed {
        /// File or label the bytes came from.
        source_name: String,
        /// What happened to the compiler.
        reason: String,
    },
    /// A component, but not of the `kreflex:plugin/reactor` world.
    #[error("{source_name}: not a kreflex plugin (world kreflex:plugin/reactor@0.1.0): {reason}")]
    WrongWorld {
        /// File or label the bytes came from.
        source_name: String,
        /// What is missing or mismatched.
        reason: String,
    },
    /// `describe()` trapped or ran past its deadline.
    #[error("{source_name}: describe() failed: {reason}")]
    DescribeFailed {
        /// File or label the bytes came from.
        source_name: String,
        /// The trap.
        reason: String,
    },
    /// `describe()` returned something unusable (empty name, no subscription, bad permission).
    #[error("{source_name}: plugin {plugin:?} declares an invalid plugin-info: {reason}")]
    InvalidInfo {
        /// File or label the bytes came from.
        source_name: String,
        /// The name the plugin gave.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a call did not produce a result. The plugin's own `plugin-error` is not a
/// `CallError`: it is the `Err` inside a successful call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline (computing, in a host call or waiting in WASI) and
    /// was stopped.
    #[error("plugin {plugin}: {event} event for {object}: ran past its deadline of {timeout:?} and was stopped")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// Event kind.
        event: EventKind,
        /// Object of the event.
        object: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The plugin tried to grow its memory past the limit and then failed.
    #[error("plugin {plugin}: {event} event for {object}: exceeded its memory limit of {limit_mib} MiB: {detail}")]
    OutOfMemory {
        /// Plugin name.
        plugin: String,
        /// Event kind.
        event: EventKind,
        /// Object of the event.
        object: String,
        /// The limit.
        limit_mib: usize,
        /// The resulting trap.
        detail: String,
    },
    /// The plugin trapped (a panic, an unreachable, a bad memory access, ...).
    #[error("plugin {plugin}: {event} event for {object}: trapped: {detail}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// Event kind.
        event: EventKind,
        /// Object of the event.
        object: String,
        /// The trap, with the guest backtrace when there is one.
        detail: String,
    },
    /// The plugin tried to hand the host more than `WasmConfig::max_transfer` bytes at once
    /// (its result, or a host call's arguments); stopped while lifting, before the host
    /// allocated it.
    #[error(
        "plugin {plugin}: {event} event for {object}: tried to pass the host more than {} at once and was stopped",
        size(*limit_bytes)
    )]
    TooMuchData {
        /// Plugin name.
        plugin: String,
        /// Event kind.
        event: EventKind,
        /// Object of the event.
        object: String,
        /// The limit.
        limit_bytes: usize,
    },
    /// The runtime is shutting down or the executor failed.
    #[error("plugin {plugin}: call could not run: {detail}")]
    Unavailable {
        /// Plugin name.
        plugin: String,
        /// Why.
        detail: String,
    },
}

impl CallError {
    /// Short label for metrics: `timeout`, `oom`, `trap`, `too_much_data`, `unavailable`.
    pub fn label(&self) -> &'static str {
        match self {
            CallError::Timeout { .. } => "timeout",
            CallError::OutOfMemory { .. } => "oom",
            CallError::Trap { .. } => "trap",
            CallError::TooMuchData { .. } => "too_much_data",
            CallError::Unavailable { .. } => "unavailable",
        }
    }
}

/// A plugin ready to be called: compiled, linked, described and validated. Cheap to clone;
/// clones share the compiled code.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    info: PluginInfo,
    hash: String,
    pre: ReactorPre<HostState>,
    runtime: Runtime,
    memory_limit: usize,
    timeout: Duration,
    /// The plugin's log allowance, shared by all its calls.
    log_budget: Arc<LogBudget>,
    from_cache: bool,
    load_time: Duration,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.inner.name).field("hash", &self.inner.hash).finish()
    }
}

impl Plugin {
    /// Compiles (or loads from the artifact cache), links and describes a plugin. Blocking:
    /// call it from `spawn_blocking` on an async runtime. `source_name` (usually the file
    /// path) names the plugin in errors until it has told its name.
    pub fn load(runtime: &Runtime, bytes: &[u8], source_name: &str) -> Result<Self, LoadError> {
        Self::load_with(runtime, bytes, source_name, &LoadOptions::default())
    }

    /// [`Plugin::load`] with per-plugin overrides of the memory limit and the call deadline,
    /// and the plugin's configuration (readable with `get-config`, also during `describe`).
    pub fn load_with(
        runtime: &Runtime,
        bytes: &[u8],
        source_name: &str,
        opts: &LoadOptions,
    ) -> Result<Self, LoadError> {
        let (memory_limit, timeout) = (opts.memory_limit, opts.timeout);
        let started = Instant::now();
        let hash = content_hash(bytes);
        if !wasmparser::Parser::is_component(bytes) {
            return Err(LoadError::NotAComponent {
                source_name: source_name.to_owned(),
                reason: if wasmparser::Parser::is_core_wasm(bytes) {
                    "this is a core WebAssembly module; build a component (e.g. target wasm32-wasip2, or `kreflex componentize`)".into()
                } else {
                    "the file is not WebAssembly (no component or module header)".into()
                },
            });
        }
        let (component, outcome) =
            super::compiler::obtain(&runtime.engine, runtime.cache(), &runtime.config().compiler, bytes, &hash)
                .map_err(|e| match e {
                    CompileError::Invalid(reason) => {
                        LoadError::NotAComponent { source_name: source_name.to_owned(), reason }
                    }
                    CompileError::Failed(reason) => {
                        LoadError::CompileFailed { source_name: source_name.to_owned(), reason }
                    }
                })?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            source_name: source_name.to_owned(),
            reason: format!("{e:#}"),
        };
        let instance_pre = runtime.linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = ReactorPre::new(instance_pre).map_err(wrong_world)?;
        let memory_limit = memory_limit.unwrap_or(runtime.config.memory_limit).min(runtime.config.memory_ceiling);
        let timeout = timeout.unwrap_or(runtime.config.call_timeout);

        let label: Arc<str> = Arc::from(source_name);
        let describe_ctx = CallContext {
            source: Arc::new(super::host::NoObjects),
            policy: Arc::new(super::host::NothingReadable),
            config: opts.config.clone(),
        };
        let log_budget = Arc::new(LogBudget::new(runtime.config.max_log_per_second));
        let store = new_store(runtime, &label, memory_limit, &log_budget, Some(describe_ctx));
        let call = in_fresh_instance(pre.clone(), store, timeout, |reactor, store| {
            Box::pin(async move { reactor.call_describe(store).await })
        });
        let described = runtime.executor.run_blocking(call.instrument(tracing::Span::current()));
        let info = match described {
            Ok(Ended { result: Some(Ok(info)), .. }) => PluginInfo::from(info),
            Ok(Ended { result: None, .. }) => {
                let reason = format!("ran past its deadline of {timeout:?} and was stopped");
                return Err(LoadError::DescribeFailed { source_name: source_name.to_owned(), reason });
            }
            Ok(Ended { result: Some(Err(e)), memory_denied }) => {
                let reason = if memory_denied {
                    format!("exceeded its memory limit of {} MiB: {e:#}", memory_limit >> 20)
                } else if is_transfer_exhausted(&e) {
                    format!("tried to pass the host more than {} at once", size(runtime.config.max_transfer))
                } else {
                    format!("{e:#}")
                };
                return Err(LoadError::DescribeFailed { source_name: source_name.to_owned(), reason });
            }
            Err(e) => {
                let reason = format!("the call could not run: {e}");
                return Err(LoadError::DescribeFailed { source_name: source_name.to_owned(), reason });
            }
        };
        info.validate().map_err(|e| LoadError::InvalidInfo {
            source_name: source_name.to_owned(),
            plugin: info.name.clone(),
            reason: e.reason,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: Arc::from(info.name.as_str()),
                info,
                hash,
                pre,
                runtime: runtime.clone(),
                memory_limit,
                timeout,
                log_budget,
                from_cache: outcome == CacheOutcome::Hit,
                load_time: started.elapsed(),
            }),
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the plugin declared.
    pub fn info(&self) -> &PluginInfo {
        &self.inner.info
    }

    /// SHA-256 of the component bytes.
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }

    /// Whether the compiled code came from the artifact cache.
    pub fn loaded_from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// How long loading took (compile or cache load, link, describe).
    pub fn load_time(&self) -> Duration {
        self.inner.load_time
    }

    /// Bytes of `log` messages and stdout/stderr dropped so far because the plugin passed
    /// `WasmConfig::max_log_per_call`, `max_output` or `max_log_per_second` (including
    /// while it was described). A counter for `kreflex_plugin_log_dropped_bytes_total`.
    pub fn log_dropped_bytes(&self) -> u64 {
        self.inner.log_budget.dropped()
    }

    /// The call deadline in force for this plugin.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Runs `on-event` in a fresh instance and waits for it (up to the deadline). Blocking,
    /// from any thread: use [`Plugin::call`] from async code.
    pub fn call_blocking(
        &self,
        event: &RawEvent,
        ctx: CallContext,
    ) -> Result<Result<Vec<RawAction>, wit::PluginError>, CallError> {
        let call = self.on_event(event, ctx).instrument(tracing::Span::current());
        let ended = self.inner.runtime.executor.run_blocking(call);
        self.outcome(event, ended)
    }

    /// Runs `on-event` in a fresh instance once an instance slot is free
    /// (`WasmConfig::max_instances` bounds how many run at once).
    pub async fn call(
        &self,
        event: RawEvent,
        ctx: CallContext,
    ) -> Result<Result<Vec<RawAction>, wit::PluginError>, CallError> {
        let runtime = &self.inner.runtime;
        let permit = runtime
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CallError::Unavailable { plugin: self.name().to_owned(), detail: e.to_string() })?;
        let call = self.on_event(&event, ctx);
        // The slot is held until the instance is gone, also when the caller stops waiting.
        let call = async move {
            let ended = call.await;
            drop(permit);
            ended
        };
        let ended = runtime.executor.run(call.instrument(tracing::Span::current())).await;
        self.outcome(&event, ended)
    }

    /// The `on-event` call of `event`, ready to run on the executor.
    fn on_event(
        &self,
        event: &RawEvent,
        ctx: CallContext,
    ) -> impl Future<Output = Ended<Result<Vec<RawAction>, wit::PluginError>>> + Send + 'static {
        let inner = &*self.inner;
        let store = new_store(&inner.runtime, &inner.name, inner.memory_limit, &inner.log_budget, Some(ctx));
        let wit_event =
            wit::Event { kind: event.kind.into(), object: event.object.clone(), old_object: event.old_object.clone() };
        in_fresh_instance(inner.pre.clone(), store, inner.timeout, move |reactor, store| {
            Box::pin(async move { reactor.call_on_event(store, &wit_event).await })
        })
    }

    /// What a finished (or stopped) `on-event` call means for the caller.
    fn outcome(
        &self,
        event: &RawEvent,
        ended: Result<Ended<Result<Vec<RawAction>, wit::PluginError>>, tokio::task::JoinError>,
    ) -> Result<Result<Vec<RawAction>, wit::PluginError>, CallError> {
        let inner = &*self.inner;
        let (plugin, kind) = (inner.name.to_string(), event.kind);
        let ended = ended.map_err(|e| CallError::Unavailable { plugin: plugin.clone(), detail: e.to_string() })?;
        match ended.result {
            Some(Ok(result)) => Ok(result),
            None => Err(CallError::Timeout {
                plugin,
                event: kind,
                object: object_label(&event.object),
                timeout: inner.timeout,
            }),
            Some(Err(e)) if ended.memory_denied => Err(CallError::OutOfMemory {
                plugin,
                event: kind,
                object: object_label(&event.object),
                limit_mib: inner.memory_limit >> 20,
                detail: format!("{e:#}"),
            }),
            Some(Err(e)) if is_transfer_exhausted(&e) => Err(CallError::TooMuchData {
                plugin,
                event: kind,
                object: object_label(&event.object),
                limit_bytes: inner.runtime.config.max_transfer,
            }),
            Some(Err(e)) => Err(CallError::Trap {
                plugin,
                event: kind,
                object: object_label(&event.object),
                detail: format!("{e:#}"),
            }),
        }
    }
}

/// How a call in a fresh instance ended.
struct Ended<R> {
    /// What the export returned, or why it failed; `None` if the deadline came first.
    result: Option<wasmtime::Result<R>>,
    /// A memory grow was refused on the way.
    memory_denied: bool,
}

/// Instantiates the plugin in `store` and calls one export, all within `timeout`; the
/// plugin's captured output is logged however it ends. Run it on the executor.
async fn in_fresh_instance<R, F>(
    pre: ReactorPre<HostState>,
    mut store: Store<HostState>,
    timeout: Duration,
    export: F,
) -> Ended<R>
where
    R: Send + 'static,
    F: for<'s> FnOnce(Reactor, &'s mut Store<HostState>) -> BoxFuture<'s, wasmtime::Result<R>> + Send + 'static,
{
    let result = {
        let call = async {
            let reactor = pre.instantiate_async(&mut store).await?;
            export(reactor, &mut store).await
        };
        tokio::time::timeout(timeout, call).await.ok()
    };
    let state = store.data_mut();
    state.finish_log();
    Ended { result, memory_denied: state.limits.memory_denied }
}

fn new_store(
    runtime: &Runtime,
    name: &Arc<str>,
    memory_limit: usize,
    log_budget: &Arc<LogBudget>,
    ctx: Option<CallContext>,
) -> Store<HostState> {
    let log = CallLog::new(name.clone(), log_budget.clone(), runtime.config.max_log_per_call);
    let state = HostState::new(memory_limit, runtime.config.max_output, log, ctx);
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_hostcall_fuel(runtime.config.max_transfer);
    // Guest code yields to the executor at every epoch tick: that is where a computing
    // plugin meets its deadline, and how plugins sharing the executor's threads take turns.
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store
}

/// Whether `e` is wasmtime stopping a transfer from the guest past the store's host-call
/// fuel (`Store::set_hostcall_fuel`). wasmtime's error type for it is private; its message
/// is stable within a wasmtime version, and `tests/hostile_wasm.rs` checks it.
fn is_transfer_exhausted(e: &wasmtime::Error) -> bool {
    e.chain().any(|cause| cause.to_string().contains("fuel allocated for hostcalls has been exhausted"))
}

/// `8 MiB`, `512 KiB`, `100 bytes`: a limit as people read it.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// `Kind namespace/name` of an event object, for error messages; tolerant of bad JSON.
pub(crate) fn object_label(object_json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(object_json)
        .ok()
        .and_then(|v| ObjectRef::of(&v))
        .map(|r| r.to_string())
        .unwrap_or_else(|| "<object without apiVersion/kind/metadata.name>".to_owned())
}

impl From<wit::Gvk> for Gvk {
    fn from(g: wit::Gvk) -> Self {
        Gvk { group: g.group, version: g.version, kind: g.kind }
    }
}

impl From<wit::ObjectRef> for ObjectRef {
    fn from(r: wit::ObjectRef) -> Self {
        ObjectRef { api_version: r.api_version, kind: r.kind, namespace: r.namespace, name: r.name }
    }
}

impl From<wit::PluginInfo> for PluginInfo {
    fn from(i: wit::PluginInfo) -> Self {
        PluginInfo {
            name: i.name,
            version: i.version,
            subscriptions: i
                .subscriptions
                .into_iter()
                .map(|s| Subscription {
                    gvk: s.gvk.into(),
                    namespaces: s.namespaces,
                    label_selector: s.label_selector,
                    field_selector: s.field_selector,
                    generation_changed_only: s.generation_changed_only,
                    finalizer: s.finalizer,
                })
                .collect(),
            permissions: i
                .permissions
                .into_iter()
                .map(|p| Permission { group: p.group, resource: p.resource, verbs: p.verbs, namespaces: p.namespaces })
                .collect(),
        }
    }
}

impl From<EventKind> for wit::EventKind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Added => wit::EventKind::Added,
            EventKind::Modified => wit::EventKind::Modified,
            EventKind::Deleted => wit::EventKind::Deleted,
            EventKind::Resync => wit::EventKind::Resync,
            EventKind::Finalizing => wit::EventKind::Finalizing,
        }
    }
}
