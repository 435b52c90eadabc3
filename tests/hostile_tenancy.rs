//! Hostile tenants of a shared kreflex, in the engine against the embedded API server: a
//! file squatting another plugin's name, oversized declarations and plugin files, a plugin
//! spinning on requeues and one burning its CPU deadline on every call (all played by the
//! `hostile-tenant` fixture, told what to do by its `NAME.json`). Each test asserts that the
//! hostile plugin is contained and that the well-behaved example plugin beside it keeps its
//! results. What the hostile ones cost the example's latency is measured by
//! `benches/fairness.rs`, never here.

mod common;
mod guest;

use common::*;
use kreflex::engine::Engine;
use kreflex::wasm::{Runtime, WasmConfig};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Puts the built `component` in `dir` as `file.wasm`, with `file.json` if given.
fn stage_plugin(dir: &Path, component: &str, file: &str, plugin_file: Option<Value>) {
    if let Some(json) = plugin_file {
        stage_config(dir, file, &json);
    }
    stage(dir, &guest::wasm(component), file);
}

/// The well-behaved example plugin, as it is installed.
fn stage_example(dir: &Path) {
    stage_plugin(dir, "database_status", "database-status", None);
}

/// Why each file of `dir` is not in service (file name → error), as `kreflex plugins` says.
fn refusals(dir: &Path) -> Vec<(String, String)> {
    let runtime =
        Runtime::new(WasmConfig { cache_dir: Some(dir.join(".cache")), ..WasmConfig::default() }).expect("runtime");
    let list = kreflex::plugins::directory_status(&runtime, dir, &kreflex::rbac::Allowed::default()).expect("scan");
    list.into_iter()
        .filter_map(|p| {
            let file = Path::new(&p.file).file_name()?.to_string_lossy().into_owned();
            Some((file, p.last_error?))
        })
        .collect()
}

fn loaded(e: &Engine) -> Vec<String> {
    e.registry.load().plugins.keys().cloned().collect()
}

/// The example plugin does its job on `names`: each Database becomes Ready, and a spec
/// change is followed.
async fn example_keeps_its_results(c: &kube::Client, names: &[&str]) {
    for name in names {
        create_database(c, database(name, "postgres")).await;
    }
    for name in names {
        eventually(&format!("{name} is Ready"), || async { state_of(c, name).await.as_deref() == Some("Ready") }).await;
    }
    databases(c)
        .patch(names[0], &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "20Gi"}})))
        .await
        .expect("spec change");
    eventually("the spec change is followed", || async {
        let o = databases(c).get(names[0]).await.ok();
        o.and_then(|o| o.data.pointer("/status/message").and_then(Value::as_str).map(str::to_owned))
            .is_some_and(|m| m.contains("of size 20Gi is ready"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_cannot_take_another_plugins_name() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    // Sorted first, so it would be loaded first and take the name.
    stage_plugin(dir.path(), "fixture_hostile_tenant", "a-squat", Some(json!({"config": {"name": "database-status"}})));
    stage_example(dir.path());
    let e = start_engine(&s, dir.path(), |_| {}).await;

    assert_eq!(loaded(&e), ["database-status"]);
    let source = e.registry.load().get("database-status").map(|p| p.source.clone()).expect("loaded");
    assert_eq!(source, dir.path().join("database-status.wasm"), "the real plugin serves its name");
    let refused = refusals(dir.path());
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "a-squat.wasm");
    assert!(refused[0].1.contains("a-squat.wasm: the plugin declares the name \"database-status\""), "{refused:?}");

    example_keeps_its_results(&c, &["orders", "billing"]).await;
    for name in ["orders", "billing"] {
        assert_eq!(state_of(&c, name).await.as_deref(), Some("Ready"), "the squatter never acted on {name}");
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_declarations_and_plugin_files_are_refused() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    stage_plugin(
        d,
        "fixture_hostile_tenant",
        "flood",
        Some(json!({"config": {"name": "flood", "subscriptions": 20000}})),
    );
    stage_plugin(
        d,
        "fixture_hostile_tenant",
        "verbose",
        Some(json!({"config": {"name": "verbose", "versionLength": 100000}})),
    );
    stage_plugin(
        d,
        "fixture_hostile_tenant",
        "hog",
        Some(json!({"config": {"name": "hog"}, "callTimeoutMs": 3_600_000})),
    );
    stage_plugin(d, "fixture_hostile_tenant", "fat", Some(json!({"config": {"name": "fat"}, "memoryLimitMib": 65536})));
    stage_plugin(
        d,
        "fixture_hostile_tenant",
        "big",
        Some(json!({"config": {"name": "big", "pad": "x".repeat(100_000)}})),
    );
    stage_example(d);
    let e = start_engine(&s, d, |_| {}).await;

    assert_eq!(loaded(&e), ["database-status"]);
    let refused = refusals(d);
    let why = |file: &str| refused.iter().find(|(f, _)| f == file).map(|(_, e)| e.clone()).unwrap_or_default();
    assert!(why("flood.wasm").contains("it declares 20001 subscriptions; at most 64 are allowed"), "{refused:?}");
    assert!(why("verbose.wasm").contains("the version is longer than 63 bytes"), "{refused:?}");
    assert!(
        why("hog.wasm").contains("hog.json: callTimeoutMs is 3600000; it must be between 1 and 10000"),
        "{refused:?}"
    );
    assert!(why("fat.wasm").contains("fat.json: memoryLimitMib is 65536; it must be between 1 and 512"), "{refused:?}");
    assert!(why("big.wasm").contains("big.json: the plugin file is larger than 65536 bytes"), "{refused:?}");
    assert_eq!(refused.len(), 5, "{refused:?}");

    example_keeps_its_results(&c, &["orders", "billing"]).await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_requeue_spinner_is_held_to_the_floor() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    stage_plugin(
        dir.path(),
        "fixture_hostile_tenant",
        "spinner",
        Some(json!({"config": {"name": "spinner", "mode": "spin"}})),
    );
    stage_example(dir.path());
    let e = start_engine(&s, dir.path(), |_| {}).await;
    // The default floor (`DispatcherConfig::requeue_floor`).
    let floor = Duration::from_millis(500);
    let names = ["orders", "billing", "audit", "search"];
    let spins = || metric(&e, "kreflex_plugin_call_duration_seconds_count{plugin=\"spinner\"}");

    let changes = || metric(&e, "kreflex_events_dispatched_total{plugin=\"spinner\"}");

    let (before, changed_before, started) = (spins(), changes(), Instant::now());
    example_keeps_its_results(&c, &names).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (spun, changed, elapsed) = (spins() - before, changes() - changed_before, started.elapsed());
    // A call is for a change of the object (the example's status patches included) or for
    // a requeue, and requeues come at most once per floor per object: a bound on the count
    // that a slower machine only makes looser.
    let most = changed + names.len() as f64 * (elapsed.as_secs_f64() / floor.as_secs_f64() + 1.0);
    assert!(spun > 0.0, "the spinner runs");
    assert!(spun <= most, "{spun} calls in {elapsed:?} for {} objects (at most {most})", names.len());
    assert!(
        metric(&e, "kreflex_requeue_delays_raised_total{plugin=\"spinner\"}") >= spun,
        "raised requeues are counted"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deadline_burner_is_paused_while_others_keep_their_results() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let burner = json!({"config": {"name": "burner", "mode": "burn"}, "callTimeoutMs": 100});
    stage_plugin(dir.path(), "fixture_hostile_tenant", "burner", Some(burner));
    stage_example(dir.path());
    let started = Instant::now();
    let e = start_engine(&s, dir.path(), |c| c.dispatcher.workers = 4).await;
    // A plugin's default share: half the workers.
    let share = 2.0;

    example_keeps_its_results(&c, &["orders", "billing", "audit", "search"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let burned = metric(&e, "kreflex_plugin_errors_total{plugin=\"burner\",kind=\"timeout\"}");
    let elapsed = started.elapsed().as_secs_f64();
    // Pauses of 1 s, 2 s, 4 s, ... from its first call: at most `share` calls each time one
    // ends, and a bound that a slower machine only makes looser.
    let most = share * ((elapsed + 1.0).log2() + 2.0);
    assert!(burned >= 1.0, "the burner ran");
    assert!(burned <= most, "{burned} calls ran out their deadline in {elapsed:.1} s (at most {most:.1})");
    assert!(metric(&e, "kreflex_plugin_pauses_total{plugin=\"burner\"}") >= 1.0, "pauses are counted");
    e.shutdown().await;
}
