//! The one place that decides what to do with a failed API request. Everyone calls
//! [`classify`]; nobody matches on status codes anywhere else.

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

    #[test]
    fn client_errors_are_permanent() {
        for code in [400, 401, 403, 404, 422] {
            assert!(matches!(classify(&api(code, "Invalid")), Decision::GiveUp { code: Some(c), .. } if c == code));
        }
    }
}
