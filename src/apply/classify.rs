//! The one place that decides what to do with a failed API request. Everyone calls
//! [`classify`] (and [`reached`] for "the failure means it is already done"); nobody
//! matches on status codes anywhere else.
//!
//! A `kube::Error` in, a [`Decision`] out; pure. Callers: the appliers (retry in place or
//! report), the dispatcher's error policy (re-run, retry or give up), the finalizer
//! helpers and `kreflex dev`.

use std::time::Duration;

/// What to do with a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Transient (429, 5xx, 410, timeouts, connection errors): retry with backoff, or after
    /// the server's `retryAfterSeconds` when it gave one.
    Retry {
        /// The server's requested delay.
        after: Option<Duration>,
    },
    /// 409 Conflict: the object changed under us; re-read it and re-run the plugin.
    Conflict,
    /// 409 AlreadyExists on create: the object is there (e.g. created by an earlier
    /// attempt whose answer was lost), which is what was wanted.
    AlreadyExists,
    /// Permanent (400, 401, 403, 404, 405, 413, 415, 422, ...): do not retry; report.
    GiveUp {
        /// HTTP status, if the server answered.
        code: Option<u16>,
        /// The server's reason and message, or the client error.
        reason: String,
    },
}

impl Decision {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Retry { .. } => "retry",
            Decision::Conflict => "conflict",
            Decision::AlreadyExists => "exists",
            Decision::GiveUp { .. } => "failed",
        }
    }
}

/// What a request was meant to bring about, for [`reached`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// The object exists (a create).
    Exists,
    /// The object, or something on it, is gone (a delete, a finalizer removal, a read of
    /// an object that may have been deleted).
    Gone,
}

/// Whether a failed request leaves things the way it wanted them: the object a create
/// wanted is there (409 AlreadyExists), the object a delete wanted gone is gone (404).
pub fn reached(goal: Goal, decision: &Decision) -> bool {
    match goal {
        Goal::Exists => matches!(decision, Decision::AlreadyExists),
        Goal::Gone => matches!(decision, Decision::GiveUp { code: Some(404), .. }),
    }
}

/// The HTTP status of an error the server answered.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Classifies a kube client error.
pub fn classify(err: &kube::Error) -> Decision {
    match err {
        kube::Error::Api(status) => {
            let after = status
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s)));
            match status.code {
                409 if status.reason == "AlreadyExists" => Decision::AlreadyExists,
                409 => Decision::Conflict,
                410 | 429 | 500..=599 => Decision::Retry { after },
                0 => Decision::Retry { after },
                code => Decision::GiveUp { code: Some(code), reason: format!("{}: {}", status.reason, status.message) },
            }
        }
        // Transport-level failures: the request may not have reached the server.
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Decision::Retry { after: None }
        }
        other => Decision::GiveUp { code: None, reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure("m", reason).with_code(code).boxed())
    }

    #[test]
    fn transient_server_errors_are_retried() {
        for code in [410, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(&api(code, "x")), Decision::Retry { .. }), "{code}");
        }
        let service = kube::Error::Service("connection refused".into());
        assert_eq!(classify(&service), Decision::Retry { after: None });
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut s = Status::failure("slow down", "TooManyRequests").with_code(429);
        s.details = serde_json::from_value(serde_json::json!({"retryAfterSeconds": 3})).expect("details");
        assert_eq!(classify(&kube::Error::Api(s.boxed())), Decision::Retry { after: Some(Duration::from_secs(3)) });
    }

    #[test]
    fn conflicts_and_already_exists_are_distinguished() {
        assert_eq!(classify(&api(409, "Conflict")), Decision::Conflict);
        assert_eq!(classify(&api(409, "AlreadyExists")), Decision::AlreadyExists);
    }

    /// Every status a caller relies on, with the decision and what it means for a create
    /// and for a delete or finalizer removal: the table the appliers, the dispatcher and
    /// `kreflex dev` all read from.
    #[test]
    fn decision_table() {
        let retry = Decision::Retry { after: None };
        let give_up = |code: u16, reason: &str| Decision::GiveUp { code: Some(code), reason: format!("{reason}: m") };
        #[rustfmt::skip]
        let table = [
            // code, reason,             decision,                       exists, gone
            (400, "BadRequest",          give_up(400, "BadRequest"),     false,  false),
            (403, "Forbidden",           give_up(403, "Forbidden"),      false,  false),
            (404, "NotFound",            give_up(404, "NotFound"),       false,  true),
            (409, "AlreadyExists",       Decision::AlreadyExists,        true,   false),
            (409, "Conflict",            Decision::Conflict,             false,  false),
            (410, "Expired",             retry.clone(),                  false,  false),
            (422, "Invalid",             give_up(422, "Invalid"),        false,  false),
            (429, "TooManyRequests",     retry.clone(),                  false,  false),
            (500, "InternalError",       retry.clone(),                  false,  false),
            (503, "ServiceUnavailable",  retry.clone(),                  false,  false),
        ];
        for (code, reason, decision, exists, gone) in table {
            let err = api(code, reason);
            let got = classify(&err);
            assert_eq!(got, decision, "{code} {reason}");
            assert_eq!(reached(Goal::Exists, &got), exists, "{code} {reason}: exists");
            assert_eq!(reached(Goal::Gone, &got), gone, "{code} {reason}: gone");
            assert_eq!(status_code(&err), Some(code));
        }
        assert_eq!(status_code(&kube::Error::Service("refused".into())), None);
    }

    #[test]
    fn client_errors_are_permanent() {
        for code in [400, 401, 403, 404, 422] {
            assert!(matches!(classify(&api(code, "Invalid")), Decision::GiveUp { code: Some(c), .. } if c == code));
        }
    }
}
