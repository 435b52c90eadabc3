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

/// Applies the `kreflex rbac` output for `plugins` (run through the real binary), minus
/// rules matching `drop`.
async fn apply_generated_rbac(c: &kube::Client, plugins: &[&str], drop: Option<&str>) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .arg("rbac")
        .args(plugins.iter().map(|p| guest::wasm(p)))
        .args(["--namespace", "kreflex-system", "--no-cache"])
        .output()
        .expect("kreflex rbac runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    kreflex::dev::apply_object(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kreflex-system"}}),
    )
    .await
    .expect("ns");
    for mut doc in kreflex::offline::parse_documents(&String::from_utf8_lossy(&out.stdout)).expect("yaml") {
        if let (Some(d), Some(rules)) = (drop, doc.get_mut("rules").and_then(Value::as_array_mut)) {
            rules.retain(|r| !r.to_string().contains(d));
        }
        kreflex::dev::apply_object(c, doc).await.expect("apply rbac");
    }
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
