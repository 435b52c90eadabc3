//! The state of one plugin call (the `Store` data) and the host interface the plugin
//! imports (`kreflex:plugin/host`): log, get, list-objects, get-config.
//!
//! The sandbox is decided here: WASI is linked but given nothing (no preopened
//! directories, no environment, no arguments, no sockets, no stdin); stdout and stderr are
//! captured into a bounded buffer and logged with the plugin's name after the call; memory
//! is capped by a `ResourceLimiter`.

use super::bindings::kreflex::plugin::{host, types};
use super::limits::Limiter;
use crate::model::{Gvk, ObjectRef};
use crate::selector::SelectorError;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
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
    plugin: Arc<str>,
    ctx: Option<CallContext>,
    pub(crate) output: CapturedOutput,
}

impl HostState {
    /// A sandboxed store state for `plugin`. `ctx` is `None` while the plugin is being
    /// described (loading), when no object is in scope.
    pub(crate) fn new(plugin: Arc<str>, memory_limit: usize, max_output: usize, ctx: Option<CallContext>) -> Self {
        let output = CapturedOutput::new(max_output);
        let mut b = WasiCtx::builder();
        // Nothing is inherited: no env, args, preopens or stdin. Sockets are refused even
        // though the interfaces are linked (the default address check denies every
        // address; these make the intent explicit).
        b.stdout(output.clone()).stderr(output.clone()).allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        let limits = Limiter::new(memory_limit);
        Self { wasi: b.build(), table: ResourceTable::new(), limits, plugin, ctx, output }
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
        Ok(ctx.source.get(target).filter(|o| ctx.policy.visible(&req, o)))
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
        let plugin = &*self.plugin;
        match level {
            types::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            types::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            types::LogLevel::Info => tracing::info!(plugin, "{message}"),
            types::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            types::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
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

/// Guest stdout/stderr for one call, bounded: output past the limit is dropped (and
/// counted) rather than failing the guest's write, so a chatty plugin cannot crash itself
/// or flood the host.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    buf: BytesMut,
    capacity: usize,
    dropped: usize,
}

impl CapturedOutput {
    fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Captured { buf: BytesMut::new(), capacity, dropped: 0 })) }
    }

    /// Logs what the guest printed, line by line, tagged with the plugin name.
    pub(crate) fn flush_to_log(&self, plugin: &str) {
        let mut c = self.inner.lock();
        if c.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&c.buf).into_owned();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(target: "kreflex::plugin_output", plugin, "{line}");
        }
        if c.dropped > 0 {
            tracing::warn!(plugin, dropped_bytes = c.dropped, "plugin output exceeded the per-call limit");
        }
        c.buf.clear();
        c.dropped = 0;
    }

    fn append(&self, bytes: &[u8]) {
        let mut c = self.inner.lock();
        let room = c.capacity.saturating_sub(c.buf.len());
        let take = room.min(bytes.len());
        c.buf.extend_from_slice(&bytes[..take]);
        c.dropped += bytes.len() - take;
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
