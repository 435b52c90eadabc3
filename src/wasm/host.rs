//! The state of one plugin call (the `Store` data) and the host interface the plugin
//! imports (`kreflex:plugin/host`): log, get, list-objects, get-config.
//!
//! The sandbox is decided here: WASI is linked but given nothing (no preopened
//! directories, no environment, no arguments, no sockets, no stdin); stdout and stderr are
//! captured into a bounded buffer and logged with the plugin's name after the call, and
//! `log` messages are bounded and escaped (`log.rs`); memory is capped by a
//! `ResourceLimiter` (`limits.rs`).

use super::bindings::kreflex::plugin::{host, types};
use super::limits::Limiter;
use super::log::{CallLog, CapturedOutput};
use crate::model::{Gvk, ObjectRef};
use crate::selector::SelectorError;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Where the host's `get` and `list-objects` read from: the informer cache in the engine,
/// a directory of YAML/JSON objects in `kreflex test`.
pub trait ObjectSource: Send + Sync {
    /// One object, or `None` if it does not exist.
    fn get(&self, target: &ObjectRef) -> Option<String>;
    /// Objects of a kind, optionally in one namespace and matching a label selector.
    /// `Err` for a malformed selector.
    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, SelectorError>;
    /// Whether the source can hold objects of `namespace` at all. The engine's cache holds
    /// only the namespaces kreflex watches; a read elsewhere would find nothing and say
    /// nothing, so it is refused with the reason instead. Default: every namespace.
    fn watches(&self, namespace: &str) -> Result<(), Unwatched> {
        let _ = namespace;
        Ok(())
    }
}

/// A namespace kreflex does not watch, so no object of it can be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kreflex watches only {watched} (--watch-namespace)")]
pub struct Unwatched {
    /// What is watched, e.g. `namespaces a, b`.
    pub watched: String,
}

/// Why a host read (`get`, `list-objects`) fails. The plugin receives the message as the
/// error of the WIT result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// `describe()` runs before any object is in scope.
    #[error("no objects can be read while the plugin is being described")]
    Describing,
    /// The plugin may not read this.
    #[error("{reason}")]
    Denied {
        /// Why, naming the plugin and the request.
        reason: String,
    },
    /// The read is in a namespace kreflex does not watch.
    #[error("plugin {plugin} may not {verb} {kind} in namespace {namespace}: {source}")]
    NotWatched {
        /// Plugin name.
        plugin: String,
        /// `get` or `list`.
        verb: String,
        /// Kind read, with the object's name for `get`.
        kind: String,
        /// The namespace asked for.
        namespace: String,
        /// What is watched instead.
        source: Unwatched,
    },
    /// The label selector does not parse.
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

/// An empty object source: every `get` finds nothing, every `list` is empty.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObjects;

impl ObjectSource for NoObjects {
    fn get(&self, _: &ObjectRef) -> Option<String> {
        None
    }
    fn list(&self, _: &Gvk, _: Option<&str>, _: Option<&str>) -> Result<Vec<String>, SelectorError> {
        Ok(Vec::new())
    }
}

/// The policy while a plugin describes itself: no object is in scope yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct NothingReadable;

impl AccessPolicy for NothingReadable {
    fn check_read(&self, _: &ReadRequest<'_>) -> Result<(), ReadError> {
        Err(ReadError::Describing)
    }
    fn visible(&self, _: &ReadRequest<'_>, _: &str) -> bool {
        false
    }
}

/// A read the plugin asks the host for, to be checked against its permissions.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest<'a> {
    /// `get` or `list`.
    pub verb: &'a str,
    /// Kind read.
    pub gvk: &'a Gvk,
    /// Namespace, if any.
    pub namespace: Option<&'a str>,
    /// Name for `get`.
    pub name: Option<&'a str>,
}

/// Decides whether the plugin may read what it asks for.
pub trait AccessPolicy: Send + Sync {
    /// Checks one read; [`ReadError::Denied`] carries the reason given back to the plugin.
    fn check_read(&self, req: &ReadRequest<'_>) -> Result<(), ReadError>;
    /// Whether one object (JSON) found for an allowed read is handed to the plugin: a
    /// subscription grants reads of what it selects, not of its whole resource. Objects
    /// that are not visible are left out as if they did not exist.
    fn visible(&self, req: &ReadRequest<'_>, object: &str) -> bool;
}

/// What a call may reach beyond its event: objects to read, the policy deciding which,
/// and the plugin's configuration.
#[derive(Clone)]
pub struct CallContext {
    /// Objects visible to `get`/`list-objects`.
    pub source: Arc<dyn ObjectSource>,
    /// Permission check for `get`/`list-objects`.
    pub policy: Arc<dyn AccessPolicy>,
    /// The plugin's configuration (JSON), returned by `get-config`.
    pub config: Option<Arc<str>>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The data of one `Store`: one plugin call.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: Limiter,
    ctx: Option<CallContext>,
    output: CapturedOutput,
    log: CallLog,
}

impl HostState {
    /// A sandboxed store state for one call: memory capped at `memory_limit`, stdout and
    /// stderr captured up to `max_output` bytes, host `log` messages written to `log`. `ctx`
    /// is `None` while the plugin is being described (loading), when no object is in scope.
    pub(crate) fn new(memory_limit: usize, max_output: usize, log: CallLog, ctx: Option<CallContext>) -> Self {
        let output = CapturedOutput::new(max_output);
        let mut b = WasiCtx::builder();
        // Nothing is inherited: no env, args, preopens or stdin. Sockets are refused even
        // though the interfaces are linked (the default address check denies every
        // address; these make the intent explicit).
        b.stdout(output.clone()).stderr(output.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        let limits = Limiter::new(memory_limit);
        Self { wasi: b.build(), table: ResourceTable::new(), limits, ctx, output, log }
    }

    /// Logs what the plugin printed and what its log lost; called when the call ends.
    pub(crate) fn finish_log(&mut self) {
        self.log.finish(&self.output);
    }

    fn call_ctx(&self) -> Result<&CallContext, ReadError> {
        self.ctx.as_ref().ok_or(ReadError::Describing)
    }

    fn read_one(&self, target: &ObjectRef) -> Result<Option<String>, ReadError> {
        let ctx = self.call_ctx()?;
        let gvk = target.gvk();
        let req =
            ReadRequest { verb: "get", gvk: &gvk, namespace: target.namespace.as_deref(), name: Some(&target.name) };
        ctx.policy.check_read(&req)?;
        self.check_watched(ctx, &req)?;
        Ok(ctx.source.get(target).filter(|o| ctx.policy.visible(&req, o)))
    }

    /// Refuses a read in a namespace the source does not hold. A read across all
    /// namespaces goes through: it finds only what is watched.
    fn check_watched(&self, ctx: &CallContext, req: &ReadRequest<'_>) -> Result<(), ReadError> {
        let Some(namespace) = req.namespace else { return Ok(()) };
        ctx.source.watches(namespace).map_err(|source| ReadError::NotWatched {
            plugin: self.log.plugin().to_owned(),
            verb: req.verb.to_owned(),
            kind: match req.name {
                Some(name) => format!("{} {name}", req.gvk.kind),
                None => format!("{} objects", req.gvk.kind),
            },
            namespace: namespace.to_owned(),
            source,
        })
    }

    fn read_list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, ReadError> {
        let ctx = self.call_ctx()?;
        let req = ReadRequest { verb: "list", gvk, namespace, name: None };
        ctx.policy.check_read(&req)?;
        self.check_watched(ctx, &req)?;
        let mut found = ctx.source.list(gvk, namespace, label_selector)?;
        found.retain(|o| ctx.policy.visible(&req, o));
        Ok(found)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: types::LogLevel, message: String) {
        let level = match level {
            types::LogLevel::Trace => tracing::Level::TRACE,
            types::LogLevel::Debug => tracing::Level::DEBUG,
            types::LogLevel::Info => tracing::Level::INFO,
            types::LogLevel::Warn => tracing::Level::WARN,
            types::LogLevel::Error => tracing::Level::ERROR,
        };
        self.log.message(level, &message);
    }

    fn get(&mut self, target: types::ObjectRef) -> Result<Option<String>, String> {
        self.read_one(&ObjectRef::from(target)).map_err(|e| e.to_string())
    }

    fn list_objects(
        &mut self,
        gvk: types::Gvk,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<String>, String> {
        self.read_list(&Gvk::from(gvk), namespace.as_deref(), label_selector.as_deref()).map_err(|e| e.to_string())
    }

    fn get_config(&mut self) -> Option<String> {
        self.ctx.as_ref().and_then(|c| c.config.as_deref().map(str::to_owned))
    }
}
