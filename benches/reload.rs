//! Hot reload, in one run on the embedded API server: activation latency (plugin file fully
//! written → first event handled by it, seen as its status patch through a watch) from a
//! cold compile and from the precompiled cache, for the Rust example and for a large
//! (JS/Python, ≥ 10 MB) component when one is built; then change→status p50/p99 of a
//! steady stream of changes with no reload, with one idle-priority busy loop per core (the
//! floor for any background work on the machine), and with back-to-back cold loads of
//! another plugin, interleaved over rounds.
//! Run: `cargo bench --bench reload` (`KREFLEX_BENCH_LARGE=FILE` picks the large component,
//! `KREFLEX_BENCH_IN_PROCESS=1` compiles in this process instead of a child).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/guest/mod.rs"]
mod guest;
mod util;

use util::{pct, rss_bytes};

use common::*;
use futures::StreamExt;
use kreflex::engine::{Engine, EngineConfig};
use kreflex::ops::ReloadLabels;
use kreflex::wasm::{Compiler, DEFAULT_COMPILE_TIMEOUT, WasmConfig, compile_in_background};
use kube::api::{Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
/// Rounds of (no reload, busy loops, reloads) in the latency part.
const STREAM_ROUNDS: usize = 3;

/// `bytes` with a custom section appended that makes its hash (and so its cache key) unique.
fn unique(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = b"kreflex-bench";
    let payload = format!("{n}-{:?}", Instant::now());
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    let mut len = body.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        out.push(if len == 0 { b } else { b | 0x80 });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&body);
    out
}

/// Writes a plugin the way users are told to: to a temporary name, then renamed into place.
fn install(dir: &Path, file: &str, bytes: &[u8]) -> Instant {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
    Instant::now()
}

/// Time from `t0` until the watch shows a status on `name`.
async fn until_status(
    watch: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<kube::api::DynamicObject>>> + Unpin),
    name: &str,
    t0: Instant,
) -> Duration {
    loop {
        match tokio::time::timeout(Duration::from_secs(120), watch.next()).await {
            Ok(Some(Ok(WatchEvent::Modified(o))))
                if o.metadata.name.as_deref() == Some(name) && o.data.pointer("/status/state").is_some() =>
            {
                return t0.elapsed();
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("watch ended or timed out: {other:?}"),
        }
    }
}

/// Activation latency of `bytes` (cold, then cached), each round: unload, clear the probe's
/// status, install, wait for the status.
async fn activation(e: &Engine, c: &kube::Client, dir: &Path, bytes: &[u8]) -> (Vec<Duration>, Vec<Duration>) {
    let api = databases(c);
    let (mut cold, mut cached) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let fresh = unique(bytes, round);
        for (i, out) in [&mut cold, &mut cached].into_iter().enumerate() {
            let _ = std::fs::remove_file(dir.join("database-status.wasm"));
            eventually("unloaded", || async { e.registry.load().plugins.is_empty() }).await;
            api.patch_status("probe", &PatchParams::default(), &Patch::Merge(json!({"status": null})))
                .await
                .expect("clear status");
            let rv = api.get("probe").await.expect("probe").metadata.resource_version.expect("rv");
            let mut watch = api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
            let t0 = install(dir, "database-status.wasm", &fresh);
            out.push(until_status(&mut watch, "probe", t0).await);
            let from_cache = e.registry.load().get("database-status").is_some_and(|p| p.plugin.loaded_from_cache());
            assert_eq!(from_cache, i == 1, "round {round}: expected a {} load", ["cold", "cached"][i]);
        }
    }
    cold.sort();
    cached.sort();
    (cold, cached)
}

/// change→status latencies of `n` spec changes, one every `gap`, spread over the `load-NN`
/// objects. A change counts as handled when the plugin's status patch for it is seen: the
/// status is at the object's current generation and the object carries that change's size
/// (or a later one: changes that arrived while the plugin was busy are coalesced, and the one
/// status covers them all — each then counts from its own write).
async fn stream_latency(c: &kube::Client, n: usize, gap: Duration) -> Vec<Duration> {
    use std::collections::HashMap;
    let api = databases(c);
    let rv = api.list(&Default::default()).await.expect("list").metadata.resource_version.expect("rv");
    let mut watch = api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
    // size → (object, sequence number, time written)
    let sent = std::sync::Arc::new(parking_lot::Mutex::new(HashMap::<String, (String, usize, Instant)>::new()));
    let writer = {
        let sent = sent.clone();
        let api = api.clone();
        tokio::spawn(async move {
            for i in 0..n {
                let name = format!("load-{:02}", i % 20);
                let size = format!("{}Gi", 1000 + i);
                sent.lock().insert(size.clone(), (name.clone(), i, Instant::now()));
                api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": size}})))
                    .await
                    .expect("patch");
                tokio::time::sleep(gap).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} changes handled within 120 s", out.len());
        let ev = tokio::time::timeout(Duration::from_secs(60), watch.next()).await.expect("in time");
        let Some(Ok(WatchEvent::Modified(o))) = ev else { continue };
        let current = o.data.pointer("/status/observedGeneration").and_then(Value::as_i64) == o.metadata.generation;
        let (Some(name), Some(size)) =
            (o.metadata.name.as_deref(), o.data.pointer("/spec/size").and_then(Value::as_str))
        else {
            continue;
        };
        let mut sent = sent.lock();
        let Some(&(_, seq, _)) = sent.get(size).filter(|_| current) else { continue };
        let covered: Vec<String> =
            sent.iter().filter(|(_, (obj, s, _))| obj == name && *s <= seq).map(|(k, _)| k.clone()).collect();
        for k in covered {
            let (_, _, t) = sent.remove(&k).expect("present");
            out.push(t.elapsed());
        }
    }
    writer.await.expect("writer");
    out.sort();
    out
}

fn row(label: &str, s: &[Duration]) {
    println!("{label:<44} p50 {:>10.2?}   p99/max {:>10.2?}", pct(s, 0.5), pct(s, 0.99));
}

/// A large component that implements `database-status`: a built JS or Python one.
fn large_component() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("KREFLEX_BENCH_LARGE")
        .map(PathBuf::from)
        .into_iter()
        .chain(["python", "js"].map(|l| root.join(format!("plugins/{l}/target/database-status.wasm"))))
        .find(|p| p.exists())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    // Compiled as the `kreflex` binary compiles: in a `kreflex precompile` child process.
    // KREFLEX_BENCH_IN_PROCESS=1 compiles on idle-priority threads of this process instead.
    let in_process = std::env::var_os("KREFLEX_BENCH_IN_PROCESS").is_some();
    let compiler = if in_process {
        Compiler::InProcess
    } else {
        Compiler::Process { exe: env!("CARGO_BIN_EXE_kreflex").into(), timeout: DEFAULT_COMPILE_TIMEOUT }
    };
    let config = EngineConfig {
        plugins_dir: plugins.clone(),
        wasm: WasmConfig { cache_dir: Some(dir.path().join("cache")), compiler, ..WasmConfig::default() },
        resync: None,
        ..EngineConfig::default()
    };
    let e = Engine::start(s.kube_config(s.admin_token()), config).await.expect("engine");
    create_database(&c, database("probe", "postgres")).await;

    println!("activation: file renamed into the plugin directory -> first status patch by it ({ROUNDS} rounds)");
    let rust = guest::wasm_bytes("database_status");
    let (cold, cached) = activation(&e, &c, &plugins, &rust).await;
    row(&format!("rust database-status ({} KB), cold compile", rust.len() / 1024), &cold);
    row(&format!("rust database-status ({} KB), from cache", rust.len() / 1024), &cached);
    println!("  goals: cold < 1 s, cached < 50 ms");
    let large = large_component();
    match &large {
        Some(path) => {
            let bytes = std::fs::read(path).expect("read");
            let (cold, cached) = activation(&e, &c, &plugins, &bytes).await;
            let name = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).display();
            row(&format!("{name} ({:.1} MB), cold", bytes.len() as f64 / 1e6), &cold);
            row(&format!("{name} ({:.1} MB), cached", bytes.len() as f64 / 1e6), &cached);
        }
        None => println!("  large component: skipped, none built (run plugins/python/build.sh or plugins/js/build.sh)"),
    }

    // Event handling during reloads: the Rust plugin serves a stream of changes while a
    // second plugin file is recompiled from scratch over and over.
    std::fs::remove_file(plugins.join("database-status.wasm")).ok();
    eventually("unloaded", || async { e.registry.load().plugins.is_empty() }).await;
    install(&plugins, "database-status.wasm", &rust);
    for i in 0..20 {
        create_database(&c, database(&format!("load-{i:02}"), "postgres")).await;
    }
    eventually("load objects ready", || async {
        let l = databases(&c).list(&Default::default()).await.expect("list");
        l.items.iter().filter(|o| o.data.pointer("/status/state").and_then(Value::as_str) == Some("Ready")).count()
            >= 20
    })
    .await;
    // Three conditions, interleaved over rounds so that drifts in the (shared) machine's load
    // spread over all of them; long enough that several cold compiles overlap (a large one
    // takes seconds).
    let n = if large.is_some() { 1500 } else { 500 };
    let gap = Duration::from_millis(5);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (reloader_bytes, what) = match &large {
        Some(p) => {
            let b = std::fs::read(p).expect("read");
            let what = format!("{:.1} MB component", b.len() as f64 / 1e6);
            (b, what)
        }
        None => (guest::wasm_bytes("fixture_chaos"), "small Rust component".to_owned()),
    };
    // A different plugin name, so both stay loaded (the chaos fixture reads its name from its
    // configuration; a large database-status is refused as `other.wasm` after compiling, which
    // still puts the whole compile on the machine).
    std::fs::write(plugins.join("other.json"), json!({"config": {"name": "other"}}).to_string()).expect("config");
    let reloads = e.metrics.reloads.clone();
    let loads = move || {
        ["ok", "error"].iter().map(|r| reloads.get_or_create(&ReloadLabels { result: (*r).into() }).get()).sum::<u64>()
    };
    let (mut quiet, mut floor, mut busy) = (Vec::new(), Vec::new(), Vec::new());
    let mut compiles = 0;
    let rss_before = rss_bytes() as f64 / (1 << 20) as f64;
    let mut unique_n = 1000;
    for _ in 0..STREAM_ROUNDS {
        quiet.extend(stream_latency(&c, n, gap).await);

        // The floor for any background work on this machine: one idle-priority busy loop per
        // core, at the priority compiles run at.
        let spinning = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let spinners: Vec<_> = (0..cores)
            .map(|_| {
                let spinning = spinning.clone();
                std::thread::spawn(move || {
                    compile_in_background(|| {
                        while spinning.load(std::sync::atomic::Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    })
                })
            })
            .collect();
        floor.extend(stream_latency(&c, n, gap).await);
        spinning.store(false, std::sync::atomic::Ordering::Relaxed);
        for t in spinners {
            t.join().expect("spinner").expect("thread");
        }

        // Back-to-back cold loads: each file is written (off the async workers: 12+ MB), and
        // the next as soon as the previous one is loaded or refused.
        let stop = tokio_util::sync::CancellationToken::new();
        let reloader = {
            let (stop, plugins, loads, bytes) = (stop.clone(), plugins.clone(), loads.clone(), reloader_bytes.clone());
            tokio::spawn(async move {
                let mut written = 0;
                while !stop.is_cancelled() {
                    let done = loads();
                    let (dir, bytes) = (plugins.clone(), unique(&bytes, unique_n + written));
                    tokio::task::spawn_blocking(move || install(&dir, "other.wasm", &bytes)).await.expect("install");
                    written += 1;
                    while loads() == done {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                written
            })
        };
        busy.extend(stream_latency(&c, n, gap).await);
        stop.cancel();
        // The load in flight finishes before the next quiet phase starts.
        let written = reloader.await.expect("reloader");
        compiles += written;
        unique_n += written;
    }
    let rss_after = rss_bytes() as f64 / (1 << 20) as f64;
    for s in [&mut quiet, &mut floor, &mut busy] {
        s.sort();
    }
    let ratio = |a: &[Duration], b: &[Duration]| pct(a, 0.99).as_secs_f64() / pct(b, 0.99).as_secs_f64();
    println!(
        "\nchange -> status patch by the Rust plugin, {} changes per condition (one per {gap:?} + the write), {STREAM_ROUNDS} interleaved rounds:",
        n * STREAM_ROUNDS
    );
    row("no reload", &quiet);
    row(&format!("{cores} idle-priority busy loops meanwhile"), &floor);
    let how = if in_process { "in process" } else { "child process" };
    row(&format!("{compiles} cold loads of a {what} overlapping ({how})"), &busy);
    println!("p99 with reloads / without: {:.2}x", ratio(&busy, &quiet));
    println!("p99 with reloads / with idle-priority busy loops: {:.2}x", ratio(&busy, &floor));
    println!(
        "resident memory of this process (engine + API server): {rss_before:.0} MiB after the activation rounds, {rss_after:.0} MiB after the reload rounds"
    );
    e.shutdown().await;
}
