//! The garbage collector task: like kube-controller-manager's, it follows the store's
//! changes and, after any that can call for it (a deletion, an object being deleted, an
//! object with owner references), runs a collection pass (`Store::collect_garbage`,
//! where the decisions are). In: the store's change broadcast; out: the collector's
//! writes. Runs until the server stops.

use super::store::{Change, Store};
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Whether a change can leave garbage or release an owner: a deletion, an object being
/// deleted, a new object with owners (they may be gone already), changed owners.
fn relevant(c: &Change) -> bool {
    let owners = |o: &serde_json::Value| o.pointer("/metadata/ownerReferences").cloned();
    match c.kind {
        "DELETED" => true,
        _ if c.object.pointer("/metadata/deletionTimestamp").is_some() => true,
        "ADDED" => owners(&c.object).is_some(),
        _ => c.old.as_deref().map(owners) != Some(owners(&c.object)),
    }
}

/// Runs the collector until `cancel`.
pub async fn run(store: Arc<Mutex<Store>>, cancel: CancellationToken) {
    let mut rx = store.lock().subscribe();
    // Objects restored from a state file may already be garbage.
    store.lock().collect_garbage();
    loop {
        let pass = tokio::select! {
            _ = cancel.cancelled() => return,
            msg = rx.recv() => match msg {
                Ok(change) => relevant(&change),
                // Missed changes: a pass over everything covers them.
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
        };
        if !pass {
            continue;
        }
        // One pass for a burst of changes.
        while rx.try_recv().is_ok() {}
        let writes = store.lock().collect_garbage();
        if writes > 0 {
            tracing::debug!(writes, "garbage collection pass");
        }
    }
}
