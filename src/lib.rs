//! kreflex: react to Kubernetes custom-resource changes with sandboxed WebAssembly plugins.
//!
//! Data path: `watch` (shared informers) → `dispatch` (routing) → `queue` (per-object order,
//! coalescing) → `wasm` (sandboxed plugin call) → `actions` (validation) → `apply` (scoped
//! clients, retry). `apiserver` is the embedded Kubernetes API server used by `kreflex dev`
//! and the tests.
#![warn(missing_docs)]

pub mod actions;
pub mod apiserver;
pub mod apply;
pub mod cli;
pub mod dev;
pub mod dispatch;
pub mod engine;
pub mod model;
pub mod names;
pub mod offline;
pub mod ops;
pub mod plugins;
pub mod queue;
pub mod rbac;
pub mod repo;
pub mod retry;
pub mod route;
pub mod scaffold;
pub mod selector;
pub mod telemetry;
pub mod toolchain;
pub mod wasm;
pub mod watch;
