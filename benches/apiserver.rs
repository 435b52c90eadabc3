//! Embedded API server throughput over real HTTPS with kube-rs, in one run: writes/s
//! (concurrent creates and patches), a list of 10,000 objects, and watch fan-out to 10
//! watchers. Run: `cargo bench --bench apiserver`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use std::time::Instant;

const OBJECTS: usize = 10_000;
const CONCURRENCY: usize = 32;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let s = server().await;
    let c = s.client();
    let api = databases(&c);

    let started = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                let o: DynamicObject =
                    serde_json::from_value(database(&format!("db-{i:05}"), "postgres")).expect("object");
                api.create(&PostParams::default(), &o).await.map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("creates");
    let creates = OBJECTS as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let list = api.list(&ListParams::default()).await.expect("list");
    let list_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(list.items.len(), OBJECTS);
    let rv = list.metadata.resource_version.expect("rv");

    let watchers = 10;
    let patches = 2_000;
    let mut streams = Vec::new();
    for _ in 0..watchers {
        streams.push(api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed());
    }
    let counters: Vec<_> = streams
        .into_iter()
        .map(|mut st| {
            tokio::spawn(async move {
                let mut n = 0;
                while n < patches {
                    match st.next().await {
                        Some(Ok(WatchEvent::Modified(_))) => n += 1,
                        Some(Ok(_)) => {}
                        other => panic!("watch ended after {n} events: {other:?}"),
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(0..patches)
        .map(|i| {
            let api = api.clone();
            async move {
                let p = serde_json::json!({"spec": {"size": format!("{}Gi", 100_000 + i)}});
                api.patch(&format!("db-{:05}", i % OBJECTS), &PatchParams::default(), &Patch::Merge(p))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .expect("patches");
    let patch_secs = started.elapsed().as_secs_f64();
    for c in counters {
        c.await.expect("watcher");
    }
    let fanout_secs = started.elapsed().as_secs_f64();

    println!("embedded API server, kube-rs over HTTPS, {CONCURRENCY} concurrent requests");
    println!("creates:            {creates:>10.0} writes/s ({OBJECTS} Databases, schema-validated)");
    println!("patches:            {:>10.0} writes/s ({patches} merge patches)", patches as f64 / patch_secs);
    println!("list {OBJECTS} objects: {list_ms:>10.1} ms");
    println!(
        "watch fan-out:      {:>10.0} events/s delivered ({watchers} watchers x {patches} events in {fanout_secs:.2} s)",
        (watchers * patches) as f64 / fanout_secs
    );
    println!("targets: >= 5,000 writes/s, >= 20,000 watch events/s");
}
