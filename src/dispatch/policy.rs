//! What happens after one reconcile: a pure decision from its result (and the event, the
//! object's deletion time, the clock, the finalizer timeout and the requeue floor) to what
//! the queue does next, which Warning Events are recorded, whether the plugin's finalizer
//! is released and what the plugin's conduct means for its share ([`Conduct`]).
//!
//! No I/O: the dispatcher executes the [`Next`]. Like kube-runtime's `error_policy`, this
//! is where retry, re-run on a fresh object (409), give-up and the finalizer timeout are
//! decided, and only here.

use super::reconcile::{ReconcileError, ReconcileOk};
use crate::apply::classify::{Decision, classify};
use crate::model::{EventKind, ObjectRef};
use crate::wasm::CallError;
use std::time::Duration;

/// What the policy needs to know besides the result.
#[derive(Debug, Clone)]
pub struct PolicyContext<'a> {
    /// Plugin name.
    pub plugin: &'a str,
    /// The event's object.
    pub object: &'a ObjectRef,
    /// The event's kind.
    pub event: EventKind,
    /// The object's `metadata.deletionTimestamp`, if it is terminating.
    pub deleting_since: Option<jiff::Timestamp>,
    /// The current time.
    pub now: jiff::Timestamp,
    /// How long a `finalizing` plugin may keep failing before its finalizer is removed.
    pub finalizer_timeout: Duration,
    /// The shortest requeue delay: a plugin asking for less gets this.
    pub requeue_floor: Duration,
}

/// What the queue does with the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Deliver it again after the key's backoff.
    Retry,
    /// The object changed under the plugin (409): read it fresh and deliver that, after
    /// the backoff.
    RetryOnFreshObject,
    /// Done; call the plugin again (as a resync) after the delay.
    RequeueAfter(Duration),
    /// Done.
    Completed,
}

/// A Warning Event to record on the event's object, with kreflex's own identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// CamelCase reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// What the reconcile says about the plugin's use of its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conduct {
    /// Nothing to note.
    Ordinary,
    /// It asked to be called again after `asked`, less than the floor (counted).
    RequeueRaised {
        /// The delay it asked for.
        asked: Duration,
    },
    /// The call exhausted its CPU deadline: the plugin is paused.
    DeadlineExhausted,
}

/// The decision about one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// What the queue does.
    pub then: Then,
    /// Warning Events to record, in order.
    pub warnings: Vec<Warning>,
    /// Remove the plugin's finalizer (the finalizer timeout has passed). If that fails,
    /// the event is retried instead.
    pub release_finalizer: bool,
    /// What it means for the plugin's share.
    pub conduct: Conduct,
}

impl Next {
    fn then(then: Then) -> Self {
        Self { then, warnings: Vec::new(), release_finalizer: false, conduct: Conduct::Ordinary }
    }

    fn give_up(reason: &'static str, message: String) -> Self {
        Self { warnings: vec![Warning { reason, message }], ..Self::then(Then::Completed) }
    }
}

/// After a success: requeue if the plugin asked for it, unless the object is gone; never
/// sooner than the floor.
pub fn requeue_policy(ok: &ReconcileOk, ctx: &PolicyContext<'_>) -> Next {
    match ok.requeue_after {
        Some(asked) if ctx.event != EventKind::Deleted && asked < ctx.requeue_floor => {
            Next { conduct: Conduct::RequeueRaised { asked }, ..Next::then(Then::RequeueAfter(ctx.requeue_floor)) }
        }
        Some(d) if ctx.event != EventKind::Deleted => Next::then(Then::RequeueAfter(d)),
        _ => Next::then(Then::Completed),
    }
}

/// After a failure: transient failures and retryable plugin errors are retried; a 409 re-runs
/// the plugin on the fresh object; permanent failures become a Warning Event and are not
/// retried; a terminating object is released once the plugin has failed to finalize it for
/// longer than the timeout.
pub fn error_policy(err: &ReconcileError, ctx: &PolicyContext<'_>) -> Next {
    match err {
        ReconcileError::AddFinalizer { source, .. } | ReconcileError::RemoveFinalizer { source, .. } => {
            match classify(source) {
                Decision::Retry { .. } | Decision::Conflict => Next::then(Then::Retry),
                Decision::AlreadyExists | Decision::GiveUp { .. } => {
                    let reason = if matches!(err, ReconcileError::AddFinalizer { .. }) {
                        "AddFinalizerFailed"
                    } else {
                        "RemoveFinalizerFailed"
                    };
                    Next::give_up(reason, format!("plugin {}: {reason} on {}: {source}", ctx.plugin, ctx.object))
                }
            }
        }
        // Not the plugin's fault (shutdown, a failed blocking pool): no Warning.
        ReconcileError::Call(CallError::Unavailable { .. }) => Next::then(Then::Retry),
        ReconcileError::Call(e) => {
            let next = failed(ctx, vec![Warning { reason: "PluginFailed", message: e.to_string() }], &err.to_string());
            match e {
                CallError::Timeout { .. } => Next { conduct: Conduct::DeadlineExhausted, ..next },
                _ => next,
            }
        }
        ReconcileError::Plugin { retryable: true, .. } => failed(ctx, Vec::new(), &err.to_string()),
        ReconcileError::Plugin { retryable: false, .. } => Next::give_up("PluginError", err.to_string()),
        ReconcileError::InvalidAction(e) => Next::give_up("InvalidAction", e.to_string()),
        ReconcileError::Denied(d) => Next::give_up("ActionDenied", d.to_string()),
        ReconcileError::NoApplier { .. } | ReconcileError::NotOwner { .. } => Next::then(Then::Completed),
        ReconcileError::Apply(e) => match &e.decision {
            Decision::Conflict => Next::then(Then::RetryOnFreshObject),
            Decision::Retry { .. } => Next::then(Then::Retry),
            Decision::AlreadyExists | Decision::GiveUp { .. } => Next::give_up("ActionFailed", e.to_string()),
        },
    }
}

/// A failed call or a retryable plugin error: retry with backoff, except that a
/// terminating object is released once its finalizer has been held past the timeout.
fn failed(ctx: &PolicyContext<'_>, mut warnings: Vec<Warning>, last_error: &str) -> Next {
    let age = ctx.deleting_since.and_then(|ts| Duration::try_from(ctx.now.duration_since(ts)).ok());
    if ctx.event == EventKind::Finalizing && age.is_some_and(|age| age > ctx.finalizer_timeout) {
        let message = format!(
            "plugin {} did not finalize {} within {:?}; removing its finalizer anyway. Last error: {last_error}",
            ctx.plugin, ctx.object, ctx.finalizer_timeout
        );
        warnings.push(Warning { reason: "FinalizerTimeout", message });
        return Next { warnings, release_finalizer: true, ..Next::then(Then::Completed) };
    }
    Next { warnings, ..Next::then(Then::Retry) }
}

#[cfg(test)]
mod tests;
