//! The WebAssembly host: runs plugins (components of the `reactor` world in
//! `wit/kreflex.wit`) in a sandbox.
//!
//! In the data path this sits between the queues and the action validation: it takes one
//! event for one plugin and returns that plugin's raw actions. One [`Runtime`] per process
//! holds the wasmtime `Engine` and a `Linker` built once; each loaded [`Plugin`] holds an
//! `InstancePre`; every call gets a fresh `Store` with a memory limit and a deadline, and
//! no filesystem, network, environment or arguments, and runs on the host's own executor.

#[allow(missing_docs)] // generated from wit/kreflex.wit, where the documentation lives
mod bindings;
mod cache;
mod compiler;
mod engine;
mod executor;
mod host;
mod limits;
mod log;
mod plugin;

pub use cache::ArtifactCache;
pub use compiler::{Compiler, DEFAULT_COMPILE_TIMEOUT};
pub(crate) use compiler::{exit_with_parent, precompile_one};
pub use engine::{COMPILE_NICE, Runtime, WasmConfig, compile_in_background};
pub(crate) use engine::{compile_engine, lower_this_thread_priority};
pub use host::{
    AccessPolicy, CallContext, NoObjects, NothingReadable, ObjectSource, ReadError, ReadRequest, Unwatched,
};
pub use plugin::{CallError, LoadError, LoadOptions, Plugin, RawAction, RawEvent};

/// The generated types of the plugin contract, as the guest sees them.
pub use bindings::kreflex::plugin::types as wit;
