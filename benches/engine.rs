//! kreflex against a native kube-rs controller with the same logic, in one run on the same
//! embedded API server: throughput and change→status-patch latency for N new objects; then
//! resident memory per cached object at 10k and 100k objects of two sizes against their
//! compact JSON size. Run: `cargo bench --bench engine`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/guest/mod.rs"]
mod guest;
mod util;

use util::{pct, rss_bytes};

use common::*;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 2_000;

/// Creates N Databases named `<prefix>-i` and measures, through a watch, when each first
/// gets a status (the reaction's first status patch).
async fn measure(c: &kube::Client, prefix: &str) -> (f64, Vec<Duration>) {
    let api = databases(c);
    let rv = api.list(&Default::default()).await.expect("list").metadata.resource_version.expect("rv");
    let mut watch = api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
    let created: Arc<parking_lot::Mutex<HashMap<String, Instant>>> = Arc::default();
    let writer = {
        let api = api.clone();
        let created = created.clone();
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            for i in 0..N {
                let name = format!("{prefix}-{i:05}");
                let o: DynamicObject =
                    serde_json::from_value(database(&name, ["postgres", "mysql", "mariadb"][i % 3])).expect("obj");
                created.lock().insert(name, Instant::now());
                api.create(&PostParams::default(), &o).await.expect("create");
            }
        })
    };
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(N);
    let mut seen = std::collections::HashSet::new();
    while seen.len() < N {
        let ev = watch.next().await.expect("watch open").expect("event");
        if let WatchEvent::Modified(o) = ev {
            let name = o.metadata.name.clone().unwrap_or_default();
            if o.data.pointer("/status/state").is_some()
                && name.starts_with(prefix)
                && seen.insert(name.clone())
                && let Some(t) = created.lock().get(&name)
            {
                latencies.push(t.elapsed());
            }
        }
    }
    writer.await.expect("writer");
    let rate = N as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies)
}

/// The same logic as the plugin, as a kube-runtime Controller.
async fn native_controller(client: kube::Client) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &databases_resource());
    Controller::new_with(api, Default::default(), databases_resource())
        .run(
            |o: Arc<DynamicObject>, client: Arc<kube::Client>| async move {
                let v = serde_json::to_value(&*o).map_err(kube::Error::SerdeError)?;
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let api: Api<DynamicObject> = Api::namespaced_with((*client).clone(), &ns, &databases_resource());
                let mut requeue = None;
                for d in database_status::react(database_status::EventKind::Modified, &v) {
                    match d {
                        database_status::Decision::Status(body) => {
                            let name = o.metadata.name.clone().unwrap_or_default();
                            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(body)).await?;
                        }
                        database_status::Decision::Requeue(d) => requeue = Some(d),
                        database_status::Decision::Warning(..) => {}
                    }
                }
                Ok::<_, kube::Error>(requeue.map(Action::requeue).unwrap_or_else(Action::await_change))
            },
            |_, _: &kube::Error, _| Action::requeue(Duration::from_millis(100)),
            Arc::new(client),
        )
        .for_each(|_| async {})
        .await;
}

/// Set in the child process that measures one cache size: "OBJECTS,ANNOTATION_BYTES".
const MEMORY_CHILD: &str = "KREFLEX_BENCH_CACHE_MEMORY";

/// Fills a cache with `n` Databases, each with `pad` bytes of annotations, and prints
/// "RSS-per-object JSON-per-object". Run in a fresh process so that no earlier allocation
/// (freed memory the allocator would reuse) hides what the cache costs.
fn memory_child(n: usize, pad: usize) {
    let gvk = kreflex::model::Gvk::new("stable.example.com", "v1", "Database");
    let cache = kreflex::watch::Cache::default();
    let before = rss_bytes();
    let mut json_bytes = 0;
    for i in 0..n {
        let mut o = database(&format!("db-{i:06}"), "postgres");
        o["metadata"]["uid"] = Value::String(format!("00000000-0000-0000-0000-{i:012}"));
        o["metadata"]["resourceVersion"] = Value::String(i.to_string());
        o["metadata"]["labels"] = serde_json::json!({"team": "shop", "tier": "db"});
        if pad > 0 {
            o["metadata"]["annotations"] = serde_json::json!({"example.com/notes": "x".repeat(pad)});
        }
        o["status"] =
            serde_json::json!({"state": "Ready", "message": "postgres database is ready", "observedGeneration": 1});
        let obj = kreflex::watch::CachedObject::from_value(o).expect("named");
        json_bytes += obj.json().len();
        cache.apply(&gvk, Arc::new(obj));
    }
    let per_object = (rss_bytes().saturating_sub(before)) as f64 / n as f64;
    std::hint::black_box(&cache);
    println!("{per_object} {}", json_bytes as f64 / n as f64);
}

/// Runs [`memory_child`] in a child process: (RSS bytes, compact JSON bytes) per object.
fn memory(n: usize, pad: usize) -> (f64, f64) {
    let exe = std::env::current_exe().expect("own executable");
    let out = std::process::Command::new(exe).env(MEMORY_CHILD, format!("{n},{pad}")).output().expect("child");
    assert!(out.status.success(), "cache memory child ({n} objects): {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().expect("number"));
    (it.next().expect("rss"), it.next().expect("json"))
}

fn print_memory() {
    println!("cache memory (each size measured in a fresh process):");
    let mut fit = Vec::new();
    for pad in [0, 1600] {
        for n in [10_000, 100_000] {
            let (rss, json) = memory(n, pad);
            println!(
                "  {n:>6} objects of {json:>5.0} B compact JSON: {rss:>6.0} B RSS per object ({:.2}x)",
                rss / json
            );
            if n == 100_000 {
                fit.push((json, rss));
            }
        }
    }
    // Two sizes give the line RSS = slope * JSON + fixed: what one more byte of object costs,
    // and what every object costs regardless of its size.
    let ((j1, r1), (j2, r2)) = (fit[0], fit[1]);
    let slope = (r2 - r1) / (j2 - j1);
    println!(
        "  per object at 100k: {slope:.2} x compact JSON + {:.0} B fixed (goal <= 1.2x JSON + fixed overhead)",
        r1 - slope * j1
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Ok(spec) = std::env::var(MEMORY_CHILD) {
        let (n, pad) = spec.split_once(',').expect("OBJECTS,PAD");
        return memory_child(n.parse().expect("objects"), pad.parse().expect("pad"));
    }
    // (b) native controller.
    let s = server().await;
    let c = s.client();
    let native = tokio::spawn(native_controller(c.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (native_rate, native_lat) = measure(&c, "native").await;
    native.abort();
    s.shutdown().await;

    // (a) kreflex with the example plugin, on a fresh server.
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), &guest::wasm("database_status"), "database-status");
    let engine = util::start_engine(&s, dir.path()).await;
    let (k_rate, k_lat) = measure(&c, "kreflex").await;
    engine.shutdown().await;

    println!("{N} new Databases; change -> first status patch, seen through a watch");
    let row = |name: &str, rate: f64, l: &[Duration]| {
        println!("{name:<8} {rate:>8.0} events/s   p50 {:>9.2?}   p99 {:>9.2?}", pct(l, 0.5), pct(l, 0.99))
    };
    row("native", native_rate, &native_lat);
    row("kreflex", k_rate, &k_lat);
    println!(
        "kreflex/native throughput {:.2}x (goal >= 0.75x); p99 {:.2}x native (goal <= 2x)",
        k_rate / native_rate,
        pct(&k_lat, 0.99).as_secs_f64() / pct(&native_lat, 0.99).as_secs_f64()
    );
    print_memory();
}
