//! kreflex: react to Kubernetes custom-resource changes with sandboxed WebAssembly plugins.
//!
//! Data path: `watch` (shared informers) → `route` (which plugins subscribe) → `queue`
//! (per-object order, coalescing) → `dispatch` (reconcile one event, error policy) → `wasm`
//! (sandboxed plugin call) → `actions` (validation) → `rbac` (permission check) → `apply`
//! (scoped clients, retry, finalizers). `plugins` loads and hot-reloads the plugin directory;
//! `apiserver` is the embedded Kubernetes API server used by `kreflex dev` and the tests.
#![warn(missing_docs)]

pub mod actions;
pub mod apiserver;
pub mod apply;
pub mod cli;
pub mod dev;
pub mod dispatch;
pub mod engine;
pub mod kubeconfig;
pub mod lease;
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
