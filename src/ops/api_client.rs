//! Counts every request kreflex sends to the API server: a tower [`Layer`] on the kube
//! client ([`kube::client::ClientBuilder::with_layer`]), so informers, discovery, applies,
//! finalizers, Events and Leases are all counted once, in one place, whatever sends them.
//!
//! In: each HTTP request (method and path) and its response status or error; out:
//! `kreflex_rest_client_requests_total{verb,group,resource,code}` and
//! `kreflex_rest_client_request_duration_seconds{verb,group,resource}` (client-go's
//! `rest_client_*` metrics, with the verb and resource the API server's authorizer would
//! see instead of the URL, so that no object name reaches a label). The latency runs until
//! the response headers: for a watch, until the stream is open, not while it streams.

use super::{ApiRequestLabels, Metrics};
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Adds [`ApiMetrics`] around a client's service stack.
#[derive(Clone, Debug)]
pub struct ApiMetricsLayer {
    metrics: Metrics,
}

impl ApiMetricsLayer {
    /// A layer counting into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for ApiMetricsLayer {
    type Service = ApiMetrics<S>;

    fn layer(&self, inner: S) -> ApiMetrics<S> {
        ApiMetrics { inner, metrics: self.metrics.clone() }
    }
}

/// A client service that counts and times each request it passes on.
#[derive(Clone, Debug)]
pub struct ApiMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, RB> Service<Request<B>> for ApiMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let request = RequestKind::of(req.method(), req.uri().path(), req.uri().query());
        let metrics = self.metrics.clone();
        let start = tokio::time::Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(r) => r.status().as_str().to_owned(),
                Err(_) => "<error>".to_owned(),
            };
            let labels = ApiRequestLabels {
                verb: request.verb.to_owned(),
                group: request.group,
                resource: request.resource,
                code,
            };
            metrics.api_request(labels, start.elapsed());
            result
        })
    }
}

/// What a request is, in the API server's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKind {
    /// get, list, watch, create, update, patch, delete, deletecollection, or `other`.
    pub verb: &'static str,
    /// API group; empty for the core group and for paths that are not resources.
    pub group: String,
    /// Resource with its subresource (`databases/status`); empty for discovery and other
    /// paths that are not resources.
    pub resource: String,
}

impl RequestKind {
    /// Reads a request URL as kube-apiserver's `RequestInfoFactory` does:
    /// `/api/v1/…` or `/apis/GROUP/VERSION/…`, then `[watch/][namespaces/NS/]RESOURCE[/NAME[/SUB]]`
    /// (`namespaces/NS/status` and `namespaces/NS/finalize` are subresources of the
    /// namespace). The name and namespace are read past, never kept.
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> Self {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (group, mut rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => ("", &[][..]),
        };
        let mut watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        if let ["watch", tail @ ..] = rest {
            watch = true;
            rest = tail;
        }
        if let ["namespaces", _ns, tail @ ..] = rest
            && let [first, ..] = tail
            && *first != "status"
            && *first != "finalize"
        {
            rest = tail;
        }
        let (resource, named) = match rest {
            [] => {
                let verb = if *method == Method::GET { "get" } else { "other" };
                return Self { verb, group: String::new(), resource: String::new() };
            }
            [resource] => (resource.to_string(), false),
            [resource, _name] => (resource.to_string(), true),
            [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
        };
        let verb = match *method {
            Method::GET if watch => "watch",
            Method::GET if named => "get",
            Method::GET => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if named => "delete",
            Method::DELETE => "deletecollection",
            _ => "other",
        };
        Self { verb, group: group.to_owned(), resource }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, url: &str) -> (&'static str, String, String) {
        let (path, query) = url.split_once('?').map_or((url, None), |(p, q)| (p, Some(q)));
        let k = RequestKind::of(&method, path, query);
        (k.verb, k.group, k.resource)
    }

    fn is(verb: &'static str, group: &str, resource: &str) -> (&'static str, String, String) {
        (verb, group.to_owned(), resource.to_owned())
    }

    #[test]
    fn reads_verb_group_and_resource_as_the_api_server_does_and_never_a_name() {
        let db = "/apis/stable.example.com/v1/namespaces/default/databases";
        let cases = [
            (Method::GET, format!("{db}?limit=500"), is("list", "stable.example.com", "databases")),
            (Method::GET, format!("{db}?watch=true&resourceVersion=5"), is("watch", "stable.example.com", "databases")),
            (
                Method::GET,
                "/apis/stable.example.com/v1/watch/databases".into(),
                is("watch", "stable.example.com", "databases"),
            ),
            (Method::GET, format!("{db}/orders"), is("get", "stable.example.com", "databases")),
            (Method::PATCH, format!("{db}/orders/status"), is("patch", "stable.example.com", "databases/status")),
            (
                Method::PATCH,
                "/apis/stable.example.com/v1/databases/x".into(),
                is("patch", "stable.example.com", "databases"),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/default/events".into(),
                is("create", "events.k8s.io", "events"),
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kreflex-system/leases/kreflex".into(),
                is("update", "coordination.k8s.io", "leases"),
            ),
            (Method::DELETE, "/api/v1/namespaces/default/configmaps/a".into(), is("delete", "", "configmaps")),
            (Method::DELETE, "/api/v1/namespaces/default/configmaps".into(), is("deletecollection", "", "configmaps")),
            (Method::GET, "/api/v1/namespaces".into(), is("list", "", "namespaces")),
            (Method::GET, "/api/v1/namespaces/default".into(), is("get", "", "namespaces")),
            (Method::PUT, "/api/v1/namespaces/default/finalize".into(), is("update", "", "namespaces/finalize")),
            (Method::GET, "/api/v1/nodes/n1/proxy/metrics".into(), is("get", "", "nodes/proxy")),
            (Method::GET, "/apis/apps/v1".into(), is("get", "", "")),
            (Method::GET, "/apis".into(), is("get", "", "")),
            (Method::GET, "/version".into(), is("get", "", "")),
            (Method::HEAD, format!("{db}/orders"), is("other", "stable.example.com", "databases")),
        ];
        for (method, url, want) in cases {
            assert_eq!(kind(method.clone(), &url), want, "{method} {url}");
        }
    }
}
