//! Shared fixtures for integration tests: an embedded API server on a free port with the
//! example CRD, helpers to create objects and read what plugins wrote, components (built by
//! `tests/guest`) staged in plugin directories, an engine started on them, and bounded polling.

#![allow(dead_code)]

pub mod replica;

use kreflex::apiserver::{ApiServer, ApiServerConfig};
use kreflex::engine::{Engine, EngineConfig};
use kreflex::wasm::WasmConfig;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;
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

/// Reasons of the Events in `default` about the object named `name`.
pub async fn event_reasons(client: &kube::Client, name: &str) -> Vec<String> {
    events_about(client, name).await.iter().filter_map(|e| e["reason"].as_str().map(str::to_owned)).collect()
}

/// What a test plugin reported on the Database `name`: the JSON text in its `status.message`,
/// parsed (`Null` when there is none).
pub async fn report(client: &kube::Client, name: &str) -> Value {
    databases(client)
        .get(name)
        .await
        .ok()
        .and_then(|o| {
            o.data.pointer("/status/message").and_then(Value::as_str).and_then(|m| serde_json::from_str(m).ok())
        })
        .unwrap_or(Value::Null)
}

/// The reports `kreflex test` printed: one JSON object per line of its stdout.
pub fn test_reports(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report per line"))
        .collect()
}

/// Puts the component `wasm` into the plugin directory `dir` as `<name>.wasm`: copied beside
/// it, then renamed, so a watching engine never reads half a file.
pub fn stage(dir: &Path, wasm: &Path, name: &str) {
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::copy(wasm, &tmp).expect("copy plugin");
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).expect("rename plugin");
}

/// Writes `<name>.json`, the configuration file of the plugin `<name>.wasm` in `dir`.
pub fn stage_config(dir: &Path, name: &str, config: &Value) {
    std::fs::write(dir.join(format!("{name}.json")), config.to_string()).expect("plugin configuration");
}

/// A temporary plugin directory with `(component, name, configuration file)` staged.
pub fn plugin_dir(plugins: &[(PathBuf, &str, Option<Value>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (wasm, name, config) in plugins {
        if let Some(c) = config {
            stage_config(dir.path(), name, c);
        }
        stage(dir.path(), wasm, name);
    }
    dir
}

/// The engine settings the integration tests share: plugins and their compile cache in `dir`,
/// no periodic resync, 16 instance slots (a small pooling reservation), and fast retries
/// (10 ms up to 1 s) so that retried work finishes within a test.
pub fn engine_config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig {
        plugins_dir: dir.to_path_buf(),
        wasm: WasmConfig { cache_dir: Some(dir.join(".cache")), max_instances: 16, ..WasmConfig::default() },
        resync: None,
        ..EngineConfig::default()
    };
    config.dispatcher.backoff.min = Duration::from_millis(10);
    config.dispatcher.backoff.max = Duration::from_secs(1);
    config
}

/// Starts an engine on `server` (as its admin) with [`engine_config`] changed by `tweak`, and
/// waits until its informers synced.
pub async fn start_engine(server: &ApiServer, dir: &Path, tweak: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = engine_config(dir);
    tweak(&mut config);
    let e = Engine::start(server.kube_config(server.admin_token()), config).await.expect("engine starts");
    tokio::time::timeout(Duration::from_secs(60), e.wait_synced()).await.expect("informers sync");
    e
}

/// Whether `kubectl` is on PATH. Without it, tests of `what` skip with a message, unless
/// `KREFLEX_REQUIRE_KUBECTL=1` (CI), where a missing kubectl fails them.
pub fn have_kubectl(what: &str) -> bool {
    let ok =
        std::process::Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var("KREFLEX_REQUIRE_KUBECTL").is_ok_and(|v| v == "1");
        assert!(!required, "kubectl is not on PATH and KREFLEX_REQUIRE_KUBECTL=1: {what} must run");
        eprintln!("SKIP: kubectl is not on PATH; {what} did not run");
    }
    ok
}

/// The first line of an engine's metrics exposition starting with `prefix`, as a number (0
/// if absent).
pub fn metric(e: &Engine, prefix: &str) -> f64 {
    e.metrics
        .encode()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

/// Runs the real `kubectl` with `kubeconfig` (and a discovery cache beside it), in the
/// repository root.
pub fn kubectl<S: AsRef<std::ffi::OsStr>>(kubeconfig: &Path, args: &[S]) -> Output {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(kubeconfig.with_extension("cache"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("kubectl runs")
}
