//! Fair share between plugins: the example plugin's change→status latency alone, and beside
//! a hostile plugin on the same objects — one that asks to be called again after 1 ms
//! forever (requeue spinner), one whose every call runs out its CPU deadline of 900 ms
//! (deadline burner), and both — on the embedded API server, with the ratio to alone.
//! Run: `cargo bench --bench fairness`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/guest/mod.rs"]
mod guest;
mod util;

use common::*;
use futures::StreamExt;
use kube::api::{Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use util::pct;

/// Databases the hostile plugin works on besides the probe.
const BACKGROUND: usize = 50;
/// Changes of the probe measured per condition.
const CHANGES: usize = 200;

/// Puts `component` in `dir` as `file.wasm`, with `file.json` if given.
fn stage(dir: &Path, component: &str, file: &str, plugin_file: Option<Value>) {
    std::fs::copy(guest::wasm(component), dir.join(format!("{file}.wasm"))).expect("copy plugin");
    if let Some(json) = plugin_file {
        std::fs::write(dir.join(format!("{file}.json")), json.to_string()).expect("plugin file");
    }
}

/// Sorted change→status latencies of the example plugin with `hostile` plugins beside it
/// (`(file, NAME.json)`), on a fresh server and engine.
async fn latencies(hostile: &[(&str, Value)]) -> Vec<Duration> {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), "database_status", "database-status", None);
    for (file, plugin_file) in hostile {
        stage(dir.path(), "fixture_hostile_tenant", file, Some(plugin_file.clone()));
    }
    let engine = util::start_engine(&s, dir.path()).await;
    for i in 0..BACKGROUND {
        create_database(&c, database(&format!("bg-{i:03}"), "postgres")).await;
    }
    create_database(&c, database("probe", "postgres")).await;
    eventually("the probe is Ready", || async { state_of(&c, "probe").await.as_deref() == Some("Ready") }).await;

    let api = databases(&c);
    let mut out = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let rv = api.get("probe").await.expect("probe").metadata.resource_version.expect("rv");
        let mut watch = api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
        let size = format!("{}Gi", i + 2);
        let t0 = Instant::now();
        api.patch("probe", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": size}})))
            .await
            .expect("change");
        let wanted = format!("of size {size}");
        loop {
            match watch.next().await.expect("watch open").expect("event") {
                WatchEvent::Modified(o)
                    if o.metadata.name.as_deref() == Some("probe")
                        && o.data
                            .pointer("/status/message")
                            .and_then(Value::as_str)
                            .is_some_and(|m| m.contains(&wanted)) =>
                {
                    out.push(t0.elapsed());
                    break;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await;
    s.shutdown().await;
    out.sort();
    out
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let spinner = ("spinner", json!({"config": {"name": "spinner", "mode": "spin"}}));
    let burner = ("burner", json!({"config": {"name": "burner", "mode": "burn"}, "callTimeoutMs": 900}));
    let conditions: [(&str, Vec<(&str, Value)>); 4] = [
        ("alone", vec![]),
        ("beside a requeue spinner", vec![spinner.clone()]),
        ("beside a deadline burner", vec![burner.clone()]),
        ("beside both", vec![spinner, burner]),
    ];
    println!(
        "example plugin, change -> status patch seen through a watch; {CHANGES} changes, {BACKGROUND} other Databases"
    );
    let mut alone: Option<(Duration, Duration)> = None;
    for (name, hostile) in conditions {
        let l = latencies(&hostile).await;
        let (p50, p99) = (pct(&l, 0.5), pct(&l, 0.99));
        let base = *alone.get_or_insert((p50, p99));
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        println!(
            "{name:<26} p50 {p50:>9.2?} ({:>5.2}x)   p99 {p99:>9.2?} ({:>5.2}x)",
            ratio(p50, base.0),
            ratio(p99, base.1)
        );
    }
}
