//! Latency of a well-behaved plugin beside hostile ones (issue 14, items 1–4).
//!
//! The example plugin (`database_status`) is called through `Plugin::call`, as the engine
//! does, first alone, then while hostile fixtures keep being called beside it: one that
//! sleeps in WASI until its deadline, one that computes until its deadline, one that floods
//! the log and one whose result would cost the host 100 MiB. Prints p50/p99 of both runs
//! and the process's resident memory before and after. The hostile calls must end at their
//! deadlines and fail contained, and the good plugin's latency should stay within a small
//! factor of its own. Run: `cargo bench --bench hostile`.

#[path = "../tests/guest/mod.rs"]
mod guest;
mod util;

use kreflex::model::{EventKind, PluginInfo};
use kreflex::offline;
use kreflex::wasm::{CallContext, NoObjects, Plugin, RawEvent, Runtime, WasmConfig};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use util::{database_object, mean, pct, rss_bytes};

/// Calls of the good plugin per run.
const N: usize = 2_000;

fn ctx() -> CallContext {
    let info = PluginInfo { name: "bench".into(), version: "0".into(), subscriptions: vec![], permissions: vec![] };
    CallContext { source: Arc::new(NoObjects), policy: offline::declared_reads(&info), config: None }
}

fn hostile_event(what: &str) -> RawEvent {
    let object = json!({
        "apiVersion": "stable.example.com/v1", "kind": "Database",
        "metadata": {"name": "victim", "namespace": "default", "generation": 1,
                     "annotations": {"kreflex.test/do": what}},
        "spec": {"name": "victim", "engine": "postgres", "size": "1Gi"}
    });
    RawEvent { kind: EventKind::Added, object: object.to_string(), old_object: None }
}

async fn good_latencies(good: &Plugin) -> Vec<Duration> {
    let object = database_object().to_string();
    let mut samples = Vec::with_capacity(N);
    for _ in 0..N {
        let ev = RawEvent { kind: EventKind::Modified, object: object.clone(), old_object: None };
        let t = Instant::now();
        good.call(ev, ctx()).await.expect("the good call succeeds").expect("ok");
        samples.push(t.elapsed());
    }
    samples.sort();
    samples
}

fn main() {
    let rt = Runtime::new(WasmConfig { cache_dir: None, ..WasmConfig::default() }).expect("runtime");
    let load = |name: &str| Plugin::load(&rt, &guest::wasm_bytes(name), name).expect("load");
    let good = load("database_status");
    let hostile = [
        (load("fixture_hostile_sleep"), "sleep:3600000"),
        (load("fixture_chaos"), "loop"),
        (load("fixture_hostile_log"), "flood:1000:16"),
        (load("fixture_hostile_lift"), "lift:100:1024"),
    ];
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let rss_before = rss_bytes();

    let alone = tokio.block_on(good_latencies(&good));

    let stop = Arc::new(AtomicBool::new(false));
    let (ended, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let beside = tokio.block_on(async {
        // Two callers per hostile plugin, each calling again as soon as a call ends.
        let loops: Vec<_> = hostile
            .iter()
            .flat_map(|(p, what)| [(p.clone(), *what), (p.clone(), *what)])
            .map(|(p, what)| {
                let (stop, ended, failed) = (stop.clone(), ended.clone(), failed.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if p.call(hostile_event(what), ctx()).await.is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        ended.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let samples = good_latencies(&good).await;
        stop.store(true, Ordering::Relaxed);
        for l in loops {
            l.await.expect("hostile caller");
        }
        samples
    });

    let row = |name: &str, s: &[Duration]| {
        println!(
            "{name:<22} mean {:>9.2?}  p50 {:>9.2?}  p99 {:>9.2?}  ({} calls)",
            mean(s),
            pct(s, 0.5),
            pct(s, 0.99),
            s.len()
        )
    };
    row("good plugin alone", &alone);
    row("beside hostile ones", &beside);
    println!(
        "hostile calls: {} ended, {} failed contained; log dropped {} bytes",
        ended.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        hostile[2].0.log_dropped_bytes()
    );
    println!("resident memory: {} MiB before, {} MiB after", rss_before >> 20, rss_bytes() >> 20);
}
