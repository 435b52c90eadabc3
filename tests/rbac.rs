//! Every plugin can touch only what it declared: host-side checks before any request, and
//! (with impersonation) the API server's RBAC enforcing the same boundary, granted by the
//! output of `kreflex rbac`.

mod common;
mod guest;

use common::*;
use kreflex::engine::EngineConfig;
use serde_json::{Value, json};
use std::time::Duration;

/// Each plugin's writes impersonate its own service account; the plugin set is fixed.
fn impersonating(config: &mut EngineConfig) {
    config.reload = None;
    config.impersonation = Some((kreflex::rbac::DEFAULT_USER_TEMPLATE.into(), "kreflex-system".into()));
}

/// The `kreflex rbac` output for `plugins` with `extra` arguments (run through the real
/// binary), as JSON documents.
fn generated_rbac(plugins: &[&str], extra: &[&str]) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .arg("rbac")
        .args(plugins.iter().map(|p| guest::wasm(p)))
        .args(["--namespace", "kreflex-system", "--no-cache"])
        .args(extra)
        .output()
        .expect("kreflex rbac runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    kreflex::offline::parse_documents(&String::from_utf8_lossy(&out.stdout)).expect("yaml")
}

/// Applies the `kreflex rbac` output for `plugins` as it is (its Namespace first), minus
/// rules matching `drop`.
async fn apply_generated_rbac(c: &kube::Client, plugins: &[&str], drop: Option<&str>) {
    apply_all(c, generated_rbac(plugins, &[]), drop).await;
}

async fn apply_all(c: &kube::Client, docs: Vec<Value>, drop: Option<&str>) {
    for mut doc in docs {
        if let (Some(d), Some(rules)) = (drop, doc.get_mut("rules").and_then(Value::as_array_mut)) {
            rules.retain(|r| !r.to_string().contains(d));
        }
        kreflex::dev::apply_object(c, doc).await.expect("apply rbac");
    }
}

/// The user kreflex's pods run as, and a token for it.
const KREFLEX_SA: &str = "system:serviceaccount:kreflex-system:kreflex";

fn as_kreflex(s: &kreflex::apiserver::ApiServer) -> kube::Client {
    s.add_user("kreflex-token", KREFLEX_SA, &["system:serviceaccounts", "system:authenticated"]);
    s.client_with_token("kreflex-token")
}

fn lease(name: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
        "spec": {"holderIdentity": "kreflex-0", "leaseDurationSeconds": 15}})
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(e)) if e.code == 403)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_generated_rbac_applies_to_a_fresh_cluster_and_lets_kreflex_hold_leases_there_only() {
    use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
    let s = server().await;
    apply_generated_rbac(&s.client(), &["database_status"], None).await;
    let k = as_kreflex(&s);
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(k.clone(), "kreflex-system");
    let created =
        leases.create(&PostParams::default(), &serde_json::from_value(lease("kreflex")).expect("lease")).await;
    assert!(created.is_ok(), "create: {created:?}");
    leases.list(&ListParams::default()).await.expect("list");
    let mut renewed = lease("kreflex");
    renewed["spec"]["holderIdentity"] = json!("kreflex-1");
    leases
        .patch("kreflex", &PatchParams::apply("kreflex-lease").force(), &Patch::Apply(&renewed))
        .await
        .expect("server-side apply");
    leases
        .patch("kreflex", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"leaseTransitions": 1}})))
        .await
        .expect("strategic-merge patch");
    leases
        .replace("kreflex", &PostParams::default(), &leases.get("kreflex").await.expect("get"))
        .await
        .expect("update");
    assert!(forbidden(leases.delete("kreflex", &Default::default()).await), "leases are never deleted");
    let elsewhere = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(k.clone(), "default");
    assert!(forbidden(elsewhere.list(&ListParams::default()).await), "leases outside the lease namespace");
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::all(k.clone());
    assert!(forbidden(secrets.list(&ListParams::default()).await));
    let all = Api::<DynamicObject>::all_with(k, &databases_resource());
    all.list(&ListParams::default()).await.expect("kreflex reads what the plugin subscribes to, everywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_watched_namespaces_kreflex_reads_only_there() {
    use kube::api::{Api, DynamicObject, ListParams};
    let s = server().await;
    let c = s.client();
    for ns in ["shop", "other"] {
        kreflex::dev::apply_object(&c, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .await
            .expect("namespace");
    }
    let docs = generated_rbac(&["database_status"], &["--watch-namespace", "shop"]);
    assert!(docs.iter().all(|d| d["kind"] != "ClusterRole"), "{docs:?}");
    apply_all(&c, docs, None).await;
    let k = as_kreflex(&s);
    let db = |ns: &str| Api::<DynamicObject>::namespaced_with(k.clone(), ns, &databases_resource());
    db("shop").list(&ListParams::default()).await.expect("reads in the watched namespace");
    assert!(forbidden(db("other").list(&ListParams::default()).await));
    let all = Api::<DynamicObject>::all_with(k, &databases_resource());
    assert!(forbidden(all.list(&ListParams::default()).await), "no all-namespace read");
}

/// kreflex as its own service account, with exactly the generated RBAC: the example
/// plugin converges, its writes impersonate the plugin's account.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kreflex_runs_on_nothing_but_the_generated_rbac() {
    let s = server().await;
    let c = s.client();
    apply_generated_rbac(&c, &["database_status"], None).await;
    as_kreflex(&s);
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), &guest::wasm("database_status"), "database-status");
    let mut config = engine_config(dir.path());
    impersonating(&mut config);
    let e = kreflex::engine::Engine::start(s.kube_config("kreflex-token"), config).await.expect("engine starts");
    tokio::time::timeout(Duration::from_secs(60), e.wait_synced()).await.expect("informers sync");
    create_database(&c, database("orders", "postgres")).await;
    eventually("orders is Ready", || async { state_of(&c, "orders").await.as_deref() == Some("Ready") }).await;
    assert_eq!(s.stats().count(|k| k.user == KREFLEX_SA && k.code == 403), 0, "kreflex lacked a permission");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_generated_rbac_is_enough_for_the_example_plugin_with_impersonation() {
    let s = server().await;
    let c = s.client();
    apply_generated_rbac(&c, &["database_status"], None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), &guest::wasm("database_status"), "database-status");
    let e = start_engine(&s, dir.path(), impersonating).await;
    create_database(&c, database("orders", "postgres")).await;
    create_database(&c, database("legacy", "oracle")).await;
    eventually("orders is Ready", || async { state_of(&c, "orders").await.as_deref() == Some("Ready") }).await;
    eventually("legacy Failed with its event", || async {
        state_of(&c, "legacy").await.as_deref() == Some("Failed")
            && event_reasons(&c, "legacy").await.contains(&"UnsupportedEngine".to_owned())
    })
    .await;
    let sa = "system:serviceaccount:kreflex-system:kreflex-database-status";
    assert!(
        s.stats().count(|k| k.user == sa && k.subresource == "status" && k.code == 200) > 0,
        "status writes were not made as the plugin"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permission_declared_but_not_granted_gets_a_real_403_without_retries() {
    let s = server().await;
    let c = s.client();
    // The plugin's status permission is left out of what the cluster grants.
    apply_generated_rbac(&c, &["database_status"], Some("databases/status")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), &guest::wasm("database_status"), "database-status");
    let e = start_engine(&s, dir.path(), impersonating).await;
    create_database(&c, database("orders", "postgres")).await;
    eventually("the 403 becomes a Warning Event", || async {
        event_reasons(&c, "orders").await.contains(&"ActionFailed".to_owned())
    })
    .await;
    let sa = "system:serviceaccount:kreflex-system:kreflex-database-status";
    let forbidden = s.stats().count(|k| k.user == sa && k.code == 403);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.stats().count(|k| k.user == sa && k.code == 403), forbidden, "a 403 was retried");
    assert!(forbidden >= 1);
    assert!(e.metrics.action_count(|l| l.outcome == "failed") >= 1);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undeclared_actions_and_escapes_are_denied_before_any_request() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), &guest::wasm("fixture_chaos"), "chaos");
    let e = start_engine(&s, dir.path(), impersonating).await;
    for (name, escape) in
        [("esc-main", "main"), ("esc-ns", "other-ns"), ("esc-cluster", "cluster"), ("esc-secret", "secret")]
    {
        let mut o = database(name, "postgres");
        o["metadata"]["annotations"] = json!({"kreflex.test/do": format!("escape:{escape}")});
        create_database(&c, o).await;
    }
    for name in ["esc-main", "esc-ns", "esc-cluster", "esc-secret"] {
        eventually("each attempt is denied with a Warning Event", || async {
            event_reasons(&c, name).await.contains(&"ActionDenied".to_owned())
        })
        .await;
    }
    assert_eq!(e.metrics.action_count(|l| l.plugin == "chaos" && l.outcome == "denied"), 4);
    let sa = "system:serviceaccount:kreflex-system:kreflex-chaos";
    assert_eq!(s.stats().count(|k| k.user == sa && k.verb == "patch"), 0, "a denied action reached the server");
    e.shutdown().await;
}
