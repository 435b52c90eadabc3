//! The error policy as a decision table: every kind of failure, on ordinary events and on
//! `finalizing` ones before and after the finalizer timeout, with the clock injected.

use super::*;
use crate::actions::ActionError;
use crate::apply::ApplyError;
use crate::rbac::{Denied, Request};
use kube::core::Status;

const TIMEOUT: Duration = Duration::from_secs(300);
const FLOOR: Duration = Duration::from_secs(1);

fn object() -> ObjectRef {
    ObjectRef {
        api_version: "stable.example.com/v1".into(),
        kind: "Database".into(),
        namespace: Some("shop".into()),
        name: "orders".into(),
    }
}

fn now() -> jiff::Timestamp {
    "2026-12-01T12:00:00Z".parse().expect("timestamp")
}

/// An event of `kind` on an object whose deletion started `deleted_secs_ago` (negative:
/// in the future, as with a skewed clock).
fn ctx<'a>(object: &'a ObjectRef, event: EventKind, deleted_secs_ago: Option<i64>) -> PolicyContext<'a> {
    PolicyContext {
        plugin: "p",
        object,
        event,
        deleting_since: deleted_secs_ago.map(|s| now() - jiff::SignedDuration::from_secs(s)),
        now: now(),
        finalizer_timeout: TIMEOUT,
        requeue_floor: FLOOR,
    }
}

fn api(code: u16, reason: &str) -> kube::Error {
    kube::Error::Api(Status::failure("m", reason).with_code(code).boxed())
}

fn add_finalizer(code: u16, reason: &str) -> ReconcileError {
    ReconcileError::AddFinalizer { plugin: "p".into(), object: object(), source: api(code, reason) }
}

fn remove_finalizer(code: u16, reason: &str) -> ReconcileError {
    ReconcileError::RemoveFinalizer { plugin: "p".into(), object: object(), source: api(code, reason) }
}

fn trap() -> ReconcileError {
    ReconcileError::Call(CallError::Trap {
        plugin: "p".into(),
        event: EventKind::Modified,
        object: object().to_string(),
        detail: "unreachable".into(),
    })
}

fn unavailable() -> ReconcileError {
    ReconcileError::Call(CallError::Unavailable { plugin: "p".into(), detail: "shutting down".into() })
}

fn plugin_error(retryable: bool) -> ReconcileError {
    ReconcileError::Plugin {
        plugin: "p".into(),
        event: EventKind::Modified,
        object: object(),
        message: "no".into(),
        retryable,
    }
}

fn apply(code: u16, reason: &str) -> ReconcileError {
    let source = api(code, reason);
    ReconcileError::Apply(ApplyError {
        plugin: "p".into(),
        action: "patch",
        target: object().to_string(),
        decision: classify(&source),
        code: Some(code),
        source,
    })
}

fn invalid() -> ReconcileError {
    ReconcileError::InvalidAction(ActionError {
        plugin: "p".into(),
        event: EventKind::Modified,
        object: object().to_string(),
        index: 0,
        action: "patch",
        reason: "bad".into(),
    })
}

fn denied() -> ReconcileError {
    let request = Request {
        verb: "delete".into(),
        group: "".into(),
        resource: "secrets".into(),
        subresource: None,
        namespace: Some("shop".into()),
        name: Some("s".into()),
    };
    ReconcileError::Denied(Denied { plugin: "p".into(), request: Box::new(request), reason: "no".into() })
}

fn next(then: Then, warnings: &[&'static str], release_finalizer: bool) -> (Then, Vec<&'static str>, bool) {
    (then, warnings.to_vec(), release_finalizer)
}

#[test]
fn error_policy_decision_table() {
    use EventKind::{Finalizing as Fin, Modified as Mod};
    use Then::{Completed, Retry, RetryOnFreshObject};
    let past = Some(301);
    let within = Some(299);
    #[rustfmt::skip]
    let table: Vec<(ReconcileError, EventKind, Option<i64>, _)> = vec![
        // Finalizer writes: transient and conflicting ones are retried, the rest reported.
        (add_finalizer(503, "ServiceUnavailable"), Mod, None,  next(Retry, &[], false)),
        (add_finalizer(409, "Conflict"),           Mod, None,  next(Retry, &[], false)),
        (add_finalizer(422, "Invalid"),            Mod, None,  next(Completed, &["AddFinalizerFailed"], false)),
        (remove_finalizer(429, "TooManyRequests"), Fin, past,  next(Retry, &[], false)),
        (remove_finalizer(403, "Forbidden"),       Fin, None,  next(Completed, &["RemoveFinalizerFailed"], false)),
        // Calls: unavailable is not the plugin's fault; traps are reported and retried.
        (unavailable(),                            Mod, None,  next(Retry, &[], false)),
        (unavailable(),                            Fin, past,  next(Retry, &[], false)),
        (trap(),                                   Mod, None,  next(Retry, &["PluginFailed"], false)),
        (trap(),                                   Fin, within, next(Retry, &["PluginFailed"], false)),
        (trap(),                                   Fin, past,  next(Completed, &["PluginFailed", "FinalizerTimeout"], true)),
        (trap(),                                   Fin, Some(-600), next(Retry, &["PluginFailed"], false)),
        (trap(),                                   Fin, None,  next(Retry, &["PluginFailed"], false)),
        // The plugin's own errors: retried quietly if it says so, else reported.
        (plugin_error(true),                       Mod, None,  next(Retry, &[], false)),
        (plugin_error(true),                       Mod, past,  next(Retry, &[], false)),
        (plugin_error(true),                       Fin, past,  next(Completed, &["FinalizerTimeout"], true)),
        (plugin_error(false),                      Mod, None,  next(Completed, &["PluginError"], false)),
        (plugin_error(false),                      Fin, past,  next(Completed, &["PluginError"], false)),
        // Nothing applied.
        (invalid(),                                Mod, None,  next(Completed, &["InvalidAction"], false)),
        (denied(),                                 Mod, None,  next(Completed, &["ActionDenied"], false)),
        (ReconcileError::NoApplier { plugin: "p".into() }, Mod, None, next(Completed, &[], false)),
        // Failed requests, as classified.
        (apply(409, "Conflict"),                   Mod, None,  next(RetryOnFreshObject, &[], false)),
        (apply(409, "AlreadyExists"),              Mod, None,  next(Completed, &["ActionFailed"], false)),
        (apply(429, "TooManyRequests"),            Mod, None,  next(Retry, &[], false)),
        (apply(503, "ServiceUnavailable"),         Mod, None,  next(Retry, &[], false)),
        (apply(400, "BadRequest"),                 Mod, None,  next(Completed, &["ActionFailed"], false)),
        (apply(403, "Forbidden"),                  Mod, None,  next(Completed, &["ActionFailed"], false)),
        (apply(404, "NotFound"),                   Mod, None,  next(Completed, &["ActionFailed"], false)),
        (apply(422, "Invalid"),                    Mod, None,  next(Completed, &["ActionFailed"], false)),
        (apply(500, "InternalError"),              Fin, past,  next(Retry, &[], false)),
    ];
    let o = object();
    for (i, (err, event, deleted, want)) in table.into_iter().enumerate() {
        let n = error_policy(&err, &ctx(&o, event, deleted));
        let got = (n.then, n.warnings.iter().map(|w| w.reason).collect::<Vec<_>>(), n.release_finalizer);
        assert_eq!(got, want, "case {i}: {err} ({event}, deleted {deleted:?} s ago)");
    }
}

#[test]
fn warnings_name_the_plugin_the_object_and_the_error() {
    let o = object();
    let n = error_policy(&add_finalizer(422, "Invalid"), &ctx(&o, EventKind::Modified, None));
    let source = api(422, "Invalid");
    assert_eq!(n.warnings[0].message, format!("plugin p: AddFinalizerFailed on Database shop/orders: {source}"));
    let n = error_policy(&plugin_error(false), &ctx(&o, EventKind::Modified, None));
    assert_eq!(n.warnings[0].message, "plugin p: modified event for Database shop/orders: no");
    let n = error_policy(&plugin_error(true), &ctx(&o, EventKind::Finalizing, Some(301)));
    assert_eq!(
        n.warnings[0].message,
        "plugin p did not finalize Database shop/orders within 300s; removing its finalizer anyway. \
         Last error: plugin p: modified event for Database shop/orders: no"
    );
}

#[test]
fn requeue_after_only_while_the_object_exists() {
    let o = object();
    let d = Duration::from_secs(5);
    let asked = ReconcileOk { requeue_after: Some(d) };
    for (ok, event, then) in [
        (&asked, EventKind::Modified, Then::RequeueAfter(d)),
        (&asked, EventKind::Finalizing, Then::RequeueAfter(d)),
        (&asked, EventKind::Deleted, Then::Completed),
        (&ReconcileOk { requeue_after: None }, EventKind::Added, Then::Completed),
    ] {
        let n = requeue_policy(ok, &ctx(&o, event, None));
        assert_eq!(n, Next { then, warnings: vec![], release_finalizer: false, conduct: Conduct::Ordinary }, "{event}");
    }
}

#[test]
fn a_requeue_below_the_floor_is_raised_to_it_and_noted() {
    let o = object();
    for (asked, then, conduct) in [
        (
            Duration::from_millis(1),
            Then::RequeueAfter(FLOOR),
            Conduct::RequeueRaised { asked: Duration::from_millis(1) },
        ),
        (Duration::ZERO, Then::RequeueAfter(FLOOR), Conduct::RequeueRaised { asked: Duration::ZERO }),
        (FLOOR, Then::RequeueAfter(FLOOR), Conduct::Ordinary),
        (Duration::from_secs(30), Then::RequeueAfter(Duration::from_secs(30)), Conduct::Ordinary),
    ] {
        let n = requeue_policy(&ReconcileOk { requeue_after: Some(asked) }, &ctx(&o, EventKind::Modified, None));
        assert_eq!((n.then, n.conduct), (then, conduct), "{asked:?}");
    }
    let gone = requeue_policy(&ReconcileOk { requeue_after: Some(Duration::ZERO) }, &ctx(&o, EventKind::Deleted, None));
    assert_eq!((gone.then, gone.conduct), (Then::Completed, Conduct::Ordinary));
}

#[test]
fn an_exhausted_deadline_is_retried_and_pauses_the_plugin() {
    let o = object();
    let timeout = || {
        ReconcileError::Call(CallError::Timeout {
            plugin: "p".into(),
            event: EventKind::Modified,
            object: o.to_string(),
            timeout: Duration::from_secs(1),
        })
    };
    let n = error_policy(&timeout(), &ctx(&o, EventKind::Modified, None));
    assert_eq!((n.then, n.conduct), (Then::Retry, Conduct::DeadlineExhausted));
    assert_eq!(n.warnings.iter().map(|w| w.reason).collect::<Vec<_>>(), ["PluginFailed"]);
    let released = error_policy(&timeout(), &ctx(&o, EventKind::Finalizing, Some(301)));
    assert_eq!(
        (released.then, released.conduct, released.release_finalizer),
        (Then::Completed, Conduct::DeadlineExhausted, true)
    );
    for other in [trap(), unavailable(), plugin_error(true), apply(500, "InternalError")] {
        assert_eq!(error_policy(&other, &ctx(&o, EventKind::Modified, None)).conduct, Conduct::Ordinary, "{other}");
    }
}
