//! A scripted API server for unit tests of code that talks to Kubernetes: a real
//! `kube::Client` whose every request is answered by a function of (method, path) and
//! recorded, so that an error the embedded server never produces (a 503 on a read, a 409
//! Conflict on a create) can be put in front of the code under test.

use bytes::Bytes;
use http_body_util::Full;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::Arc;

/// Requests seen, as `METHOD path`.
pub(crate) type Seen = Arc<Mutex<Vec<String>>>;

/// A client answered by `answer(method, path) -> (status, JSON body)`.
pub(crate) fn client(answer: impl Fn(&str, &str) -> (u16, Value) + Send + Sync + 'static) -> (kube::Client, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let answer = Arc::new(answer);
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let (code, body) = answer(req.method().as_str(), req.uri().path());
        log.lock().push(format!("{} {}", req.method(), req.uri().path()));
        async move {
            http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
        }
    });
    (kube::Client::new(service, "default"), seen)
}

/// A failure `Status` with `code` and `reason`.
pub(crate) fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code}),
    )
}

/// Discovery of `stable.example.com/v1`, serving the namespaced `databases`.
pub(crate) const DISCOVERY_PATH: &str = "/apis/stable.example.com/v1";

/// The `APIResourceList` answered at [`DISCOVERY_PATH`].
pub(crate) fn discovery() -> (u16, Value) {
    (
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "stable.example.com/v1", "resources": [
            {"name": "databases", "singularName": "database", "namespaced": true, "kind": "Database",
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]}),
    )
}

/// A `Database` `shop/orders` (uid `u1`, resourceVersion `7`) with `finalizers`.
pub(crate) fn database(finalizers: &[&str]) -> Value {
    json!({"apiVersion": "stable.example.com/v1", "kind": "Database",
        "metadata": {"name": "orders", "namespace": "shop", "uid": "u1", "resourceVersion": "7", "finalizers": finalizers}})
}
