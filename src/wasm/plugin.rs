//! A loaded plugin: its compiled component, its `InstancePre`, what it declared in
//! `describe()`, and the call path (fresh `Store` per event, limits, deadline).

use super::bindings::{Reactor, ReactorPre, kreflex::plugin::types as wit};
use super::cache::{CacheOutcome, content_hash};
use super::compiler::CompileError;
use super::engine::Runtime;
use super::host::{CallContext, HostState};
use crate::model::{EventKind, Gvk, ObjectRef, Permission, PluginInfo, Subscription};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap};

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
    /// `describe()` trapped or timed out.
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
    /// The call ran past its CPU deadline and was interrupted.
    #[error("plugin {plugin}: {event} event for {object}: exceeded its CPU deadline of {timeout:?} and was stopped")]
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
    /// The runtime is shutting down or the blocking pool failed.
    #[error("plugin {plugin}: call could not run: {detail}")]
    Unavailable {
        /// Plugin name.
        plugin: String,
        /// Why.
        detail: String,
    },
}

impl CallError {
    /// Short label for metrics: `timeout`, `oom`, `trap`, `unavailable`.
    pub fn label(&self) -> &'static str {
        match self {
            CallError::Timeout { .. } => "timeout",
            CallError::OutOfMemory { .. } => "oom",
            CallError::Trap { .. } => "trap",
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
        let mut store = new_store(runtime, &label, memory_limit, timeout, Some(describe_ctx));
        let described = pre.instantiate(&mut store).and_then(|reactor: Reactor| reactor.call_describe(&mut store));
        store.data().output.flush_to_log(source_name);
        let info = match described {
            Ok(info) => PluginInfo::from(info),
            Err(e) => {
                let reason = describe_trap(&e, store.data().limits.memory_denied, timeout, memory_limit);
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

    /// The call deadline in force for this plugin.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Runs `on-event` in a fresh instance on the current thread. Blocking (up to the
    /// deadline): use [`Plugin::call`] from async code.
    pub fn call_blocking(
        &self,
        event: &RawEvent,
        ctx: CallContext,
    ) -> Result<Result<Vec<RawAction>, wit::PluginError>, CallError> {
        let inner = &*self.inner;
        let mut store = new_store(&inner.runtime, &inner.name, inner.memory_limit, inner.timeout, Some(ctx));
        let wit_event =
            wit::Event { kind: event.kind.into(), object: event.object.clone(), old_object: event.old_object.clone() };
        let result = inner
            .pre
            .instantiate(&mut store)
            .and_then(|reactor: Reactor| reactor.call_on_event(&mut store, &wit_event));
        store.data().output.flush_to_log(&inner.name);
        result.map_err(|e| {
            let object = object_label(&event.object);
            let (plugin, kind) = (inner.name.to_string(), event.kind);
            if is_interrupt(&e) {
                CallError::Timeout { plugin, event: kind, object, timeout: inner.timeout }
            } else if store.data().limits.memory_denied {
                CallError::OutOfMemory {
                    plugin,
                    event: kind,
                    object,
                    limit_mib: inner.memory_limit >> 20,
                    detail: format!("{e:#}"),
                }
            } else {
                CallError::Trap { plugin, event: kind, object, detail: format!("{e:#}") }
            }
        })
    }

    /// Runs `on-event` on the blocking pool once an instance slot is free
    /// (`WasmConfig::max_instances` bounds how many run at once).
    pub async fn call(
        &self,
        event: RawEvent,
        ctx: CallContext,
    ) -> Result<Result<Vec<RawAction>, wit::PluginError>, CallError> {
        let unavailable = |detail: String| CallError::Unavailable { plugin: self.name().to_owned(), detail };
        let permit = self.inner.runtime.slots.clone().acquire_owned().await.map_err(|e| unavailable(e.to_string()))?;
        let plugin = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            plugin.call_blocking(&event, ctx)
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?
    }
}

fn new_store(
    runtime: &Runtime,
    name: &Arc<str>,
    memory_limit: usize,
    timeout: Duration,
    ctx: Option<CallContext>,
) -> Store<HostState> {
    let state = HostState::new(name.clone(), memory_limit, runtime.config.max_output, ctx);
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(runtime.deadline_ticks(timeout));
    store.epoch_deadline_trap();
    store
}

fn is_interrupt(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt))
}

fn describe_trap(e: &wasmtime::Error, memory_denied: bool, timeout: Duration, memory_limit: usize) -> String {
    if is_interrupt(e) {
        format!("exceeded its CPU deadline of {timeout:?}")
    } else if memory_denied {
        format!("exceeded its memory limit of {} MiB: {e:#}", memory_limit >> 20)
    } else {
        format!("{e:#}")
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
