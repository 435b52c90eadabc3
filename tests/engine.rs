//! The reaction engine end to end: the real example plugin (and hostile fixtures) running
//! in the engine against the embedded API server over real HTTPS.

mod common;
mod guest;

use common::*;
use kreflex::engine::Engine;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

async fn status(client: &kube::Client, name: &str) -> Value {
    databases(client).get(name).await.map(|o| o.data["status"].clone()).unwrap_or(Value::Null)
}

fn dispatched(e: &Engine, plugin: &str) -> u64 {
    e.metrics.dispatched.get_or_create(&kreflex::ops::PluginLabel { plugin: plugin.into() }).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_becomes_ready_and_spec_changes_rerun_the_plugin() {
    let s = server().await;
    let c = s.client();
    let dir = plugin_dir(&[(guest::wasm("database_status"), "database-status", None)]);
    let e = start_engine(&s, dir.path(), |_| {}).await;
    create_database(&c, database("orders", "postgres")).await;
    eventually("orders is Ready", || async { state_of(&c, "orders").await.as_deref() == Some("Ready") }).await;
    assert_eq!(status(&c, "orders").await["message"], "postgres database \"orders\" of size 1Gi is ready");

    // The plugin's own status patches do not retrigger it (generation filter): once Ready,
    // nothing more is dispatched.
    let settled = dispatched(&e, "database-status");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dispatched(&e, "database-status"), settled, "status patches retriggered the plugin");

    databases(&c)
        .patch("orders", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "20Gi"}})))
        .await
        .expect("spec change");
    eventually("orders is Ready at the new size", || async {
        status(&c, "orders").await["message"] == "postgres database \"orders\" of size 20Gi is ready"
    })
    .await;
    assert_eq!(status(&c, "orders").await["observedGeneration"], 2);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_engine_fails_with_a_warning_event() {
    let s = server().await;
    let c = s.client();
    let dir = plugin_dir(&[(guest::wasm("database_status"), "database-status", None)]);
    let e = start_engine(&s, dir.path(), |_| {}).await;
    create_database(&c, database("legacy", "oracle")).await;
    eventually("legacy is Failed", || async { state_of(&c, "legacy").await.as_deref() == Some("Failed") }).await;
    eventually("a Warning Event is recorded", || async {
        events_about(&c, "legacy").await.iter().any(|ev| ev["type"] == "Warning" && ev["reason"] == "UnsupportedEngine")
    })
    .await;
    let ev = events_about(&c, "legacy").await.remove(0);
    assert_eq!(ev["reportingController"], "kreflex");
    assert_eq!(ev["reportingInstance"], "kreflex/database-status");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finalizer_is_added_then_removed_after_finalizing() {
    let s = server().await;
    let c = s.client();
    let cfg = json!({"config": {"name": "keeper", "finalizer": true}});
    let dir = plugin_dir(&[(guest::wasm("fixture_chaos"), "keeper", Some(cfg))]);
    let e = start_engine(&s, dir.path(), |_| {}).await;
    create_database(&c, database("held", "postgres")).await;
    let api = databases(&c);
    eventually("the finalizer is added", || async {
        api.get("held")
            .await
            .ok()
            .and_then(|o| o.metadata.finalizers)
            .is_some_and(|f| f.contains(&"kreflex.io/keeper".to_owned()))
    })
    .await;
    api.delete("held", &DeleteParams::default()).await.expect("delete");
    eventually("the object is gone once finalized", || async { api.get("held").await.is_err() }).await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_that_keeps_failing_to_finalize_is_released_after_the_timeout() {
    let s = server().await;
    let c = s.client();
    let cfg = json!({"config": {"name": "stubborn", "finalizer": true, "failFinalize": true}});
    let dir = plugin_dir(&[(guest::wasm("fixture_chaos"), "stubborn", Some(cfg))]);
    let e = start_engine(&s, dir.path(), |c| c.dispatcher.finalizer_timeout = Duration::from_secs(1)).await;
    create_database(&c, database("stuck", "postgres")).await;
    let api = databases(&c);
    eventually("the finalizer is added", || async {
        api.get("stuck").await.ok().and_then(|o| o.metadata.finalizers).is_some_and(|f| !f.is_empty())
    })
    .await;
    api.delete("stuck", &DeleteParams::default()).await.expect("delete");
    eventually("the object is released after the timeout", || async { api.get("stuck").await.is_err() }).await;
    assert!(events_about(&c, "stuck").await.iter().any(|ev| ev["reason"] == "FinalizerTimeout"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rapid_updates_while_the_plugin_is_busy_are_coalesced_and_the_last_wins() {
    let s = server().await;
    let c = s.client();
    let dir = plugin_dir(&[(guest::wasm("fixture_chaos"), "chaos", None)]);
    let e = start_engine(&s, dir.path(), |_| {}).await;
    let mut o = database("busy", "postgres");
    o["metadata"]["annotations"] = json!({"kreflex.test/do": "sleep:200"});
    create_database(&c, o).await;
    let api = databases(&c);
    for i in 1..=50 {
        api.patch("busy", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": format!("{i}Gi")}})))
            .await
            .expect("update");
    }
    let last_generation = api.get("busy").await.expect("get").metadata.generation;
    eventually("the plugin saw the last generation", || async {
        report(&c, "busy").await["seenGeneration"].as_i64() == last_generation
    })
    .await;
    let calls = e.dispatcher().queue().stats().delivered;
    assert!(calls < 25, "50 updates while busy should coalesce into far fewer calls, got {calls}");
    assert!(e.dispatcher().queue().stats().coalesced > 20);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trapping_plugin_keeps_serving_others_and_other_plugins_are_unaffected() {
    let s = server().await;
    let c = s.client();
    let dir = plugin_dir(&[
        (guest::wasm("fixture_chaos"), "chaos", None),
        (guest::wasm("database_status"), "database-status", None),
    ]);
    let e = start_engine(&s, dir.path(), |_| {}).await;
    let mut bad = database("bad", "postgres");
    bad["metadata"]["annotations"] = json!({"kreflex.test/do": "panic"});
    create_database(&c, bad).await;
    create_database(&c, database("good", "mysql")).await;
    eventually("chaos served the good object", || async {
        e.metrics.action_count(|l| l.plugin == "chaos" && l.outcome == "applied") > 0
    })
    .await;
    eventually("database-status made both Ready", || async {
        state_of(&c, "good").await.as_deref() == Some("Ready") && state_of(&c, "bad").await.as_deref() == Some("Ready")
    })
    .await;
    eventually("the trap is counted", || async {
        e.metrics
            .plugin_errors
            .get_or_create(&kreflex::ops::PluginErrorLabels { plugin: "chaos".into(), kind: "trap".into() })
            .get()
            > 0
    })
    .await;
    eventually("the trap is recorded as a Warning Event on the object", || async {
        events_about(&c, "bad").await.iter().any(|ev| ev["reason"] == "PluginFailed")
    })
    .await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_reruns_the_plugin_on_the_fresh_object() {
    let s = server().await;
    let c = s.client();
    let dir = plugin_dir(&[(guest::wasm("database_status"), "database-status", None)]);
    let e = start_engine(&s, dir.path(), |_| {}).await;
    s.faults().conflict_next_updates(2);
    create_database(&c, database("contested", "mariadb")).await;
    eventually("contested is Ready despite conflicts", || async {
        state_of(&c, "contested").await.as_deref() == Some("Ready")
    })
    .await;
    assert!(s.faults().injected() >= 2);
    let conflicts = e.metrics.action_count(|l| l.plugin == "database-status" && l.outcome == "conflict");
    assert!(conflicts >= 1, "conflicts were not seen by the engine");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_suite_every_object_converges_with_nothing_lost_or_duplicated() {
    let s = server().await;
    let c = s.client();
    let dir = plugin_dir(&[
        (guest::wasm("database_status"), "database-status", None),
        (
            guest::wasm("fixture_chaos"),
            "creator",
            Some(json!({"config": {"name": "creator", "generationChangedOnly": true}})),
        ),
    ]);
    let e = start_engine(&s, dir.path(), |c| c.dispatcher.workers = 32).await;
    let n = 500;
    // The faults, from the start: 30% of writes fail with 429/503, watches drop at random,
    // and one watch gets a forced 410.
    let f = s.faults();
    f.fail_writes(0.3, &[429, 503]);
    f.drop_watches(0.02);
    f.force_gone(1);
    let api = databases(&c);
    for i in 0..n {
        let mut o = database(&format!("db-{i:03}"), ["postgres", "mysql", "mariadb"][i % 3]);
        o["metadata"]["annotations"] = json!({"kreflex.test/do": "create-cm"});
        let obj: DynamicObject = serde_json::from_value(o).expect("object");
        // The test's own writes meet the same faults: retry them until they land.
        loop {
            match api.create(&Default::default(), &obj).await {
                Ok(_) => break,
                Err(kube::Error::Api(st)) if st.code == 409 => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    eventually("every object converged", || async {
        let all = databases(&c).list(&ListParams::default()).await;
        all.is_ok_and(|l| {
            l.items.len() == n && l.items.iter().all(|o| o.data.pointer("/status/state") == Some(&json!("Ready")))
        })
    })
    .await;
    f.clear();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(c.clone(), "default");
    eventually("every object got exactly one ConfigMap", || async {
        cms.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().filter(|cm| cm.metadata.name.as_deref().is_some_and(|n| n.ends_with("-cm"))).count() == n
        })
    })
    .await;
    let retries: u64 = ["database-status", "creator"]
        .iter()
        .map(|p| e.metrics.retries.get_or_create(&kreflex::ops::PluginLabel { plugin: (*p).into() }).get())
        .sum();
    eprintln!(
        "fault suite: {n} objects converged; {} faults injected; {retries} in-place API retries; queue {:?}",
        f.injected(),
        e.dispatcher().queue().stats()
    );
    assert!(f.injected() > 0);
    e.shutdown().await;
}
