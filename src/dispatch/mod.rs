//! Dispatch: informer events are routed to the plugins that subscribe to them, queued per
//! (plugin, object), and worked off by a bounded pool: plugin call, action validation,
//! permission check, apply, and what follows (requeue, retry, re-run on conflict,
//! finalizer bookkeeping, Warning Events for failures).

mod worker;

pub use worker::{Dispatcher, DispatcherConfig, QueueKey};
