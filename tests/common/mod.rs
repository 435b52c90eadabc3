//! Shared fixtures for integration tests: an embedded API server on a free port with the
//! example CRD, helpers to create objects, and bounded polling.

#![allow(dead_code)]

use kreflex::apiserver::{ApiServer, ApiServerConfig};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The Database resource.
pub fn databases_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("stable.example.com", "v1", "Database"), "databases")
}

/// Starts a server with `config` (listening on a free loopback port).
pub async fn server_with(config: ApiServerConfig) -> ApiServer {
    ApiServer::start(config).await.expect("embedded API server starts")
}

/// A server with the Database CRD installed.
pub async fn server() -> ApiServer {
    let s = server_with(ApiServerConfig::default()).await;
    install_crd(&s.client()).await;
    s
}

/// Creates the example CRD and waits until its resource is served.
pub async fn install_crd(client: &kube::Client) {
    let crd_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/crds");
    kreflex::dev::apply_dir(client, &crd_dir).await.expect("CRD applies");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &databases_resource());
    eventually("the Database resource is served", || async { api.list(&Default::default()).await.is_ok() }).await;
}

/// A Database object.
pub fn database(name: &str, engine: &str) -> Value {
    json!({"apiVersion": "stable.example.com/v1", "kind": "Database",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"name": name, "engine": engine, "size": "1Gi"}})
}

/// Api for Databases in `default`.
pub fn databases(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), "default", &databases_resource())
}

/// Creates a Database.
pub async fn create_database(client: &kube::Client, obj: Value) -> DynamicObject {
    let o: DynamicObject = serde_json::from_value(obj).expect("valid object");
    databases(client).create(&PostParams::default(), &o).await.expect("create database")
}

/// Polls `check` until it holds; panics with `what` after a generous bound (the bound is a
/// safety net against hangs, not a performance assertion).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// [`eventually`], printing `context()` on failure.
pub async fn eventually_or<F, Fut>(what: &str, context: impl Fn() -> String, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}: {}", context());
}

/// `status.state` of a Database, if any.
pub async fn state_of(client: &kube::Client, name: &str) -> Option<String> {
    let o = databases(client).get(name).await.ok()?;
    o.data.pointer("/status/state").and_then(Value::as_str).map(str::to_owned)
}

/// Events (events.k8s.io/v1) in `default` about the object named `name`.
pub async fn events_about(client: &kube::Client, name: &str) -> Vec<Value> {
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
        "events",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|e| e.data)
                .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
                .collect()
        })
        .unwrap_or_default()
}
