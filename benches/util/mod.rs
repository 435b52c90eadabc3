//! Shared by the benchmarks: timing loops and percentiles.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// An engine as `kreflex run` starts it (default limits, workers and retries) on the
/// plugins in `dir`, with no resync and no directory watch, synced.
pub async fn start_engine(server: &kreflex::apiserver::ApiServer, dir: &std::path::Path) -> kreflex::engine::Engine {
    let config = kreflex::engine::EngineConfig {
        plugins_dir: dir.to_path_buf(),
        wasm: kreflex::wasm::WasmConfig { cache_dir: Some(dir.join(".cache")), ..Default::default() },
        resync: None,
        reload: None,
        ..Default::default()
    };
    let engine =
        kreflex::engine::Engine::start(server.kube_config(server.admin_token()), config).await.expect("engine");
    engine.wait_synced().await;
    engine
}

/// Runs `f` `n` times after a warm-up of `n / 10`; returns the durations, sorted.
pub fn measure(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

/// The `p` quantile of sorted samples.
pub fn pct(s: &[Duration], p: f64) -> Duration {
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

/// Mean of samples.
pub fn mean(s: &[Duration]) -> Duration {
    s.iter().sum::<Duration>() / s.len() as u32
}

/// A ~1.8 KB `Database` object, the size the per-event goals are stated for.
pub fn database_object() -> Value {
    let annotations: serde_json::Map<String, Value> =
        (0..12).map(|i| (format!("example.com/annotation-{i}"), Value::from("x".repeat(80)))).collect();
    json!({
        "apiVersion": "stable.example.com/v1", "kind": "Database",
        "metadata": {
            "name": "orders", "namespace": "default", "uid": "0b7e4c9a-6f1e-4a57-9c1e-3f0c2b6d8e11",
            "resourceVersion": "123456", "generation": 4, "creationTimestamp": "2026-11-24T10:00:00Z",
            "labels": {"team": "shop", "tier": "db", "env": "prod"},
            "annotations": annotations,
        },
        "spec": {"name": "orders", "engine": "postgres", "size": "10Gi"},
        "status": {"state": "Provisioning", "message": "provisioning postgres database \"orders\" of size 10Gi", "observedGeneration": 4}
    })
}

/// Resident memory of this process, bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}
