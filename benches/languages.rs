//! `database-status` in every plugin language, in one run: component size, cold compile
//! (empty artifact cache), cached load, instantiate + trivial call, and the per-event call
//! latency on a ~2 KB object (p50/p99), with the Rust component as the baseline.
//! Languages whose toolchain is missing are skipped with a message.
//! Run: `cargo bench --bench languages`.

#[path = "../tests/guest/mod.rs"]
mod guest;
mod util;

use kreflex::model::EventKind;
use kreflex::offline;
use kreflex::wasm::{CallContext, NoObjects, Plugin, RawEvent, Runtime, WasmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{database_object, measure, pct};

fn build(lang: &str) -> Result<PathBuf, String> {
    if lang == "rust" {
        return Ok(guest::wasm("database_status"));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kreflex = root.join("target/release/kreflex");
    let mut cmd = Command::new("bash");
    cmd.arg(root.join(format!("plugins/{lang}/build.sh"))).arg("database-status");
    if kreflex.exists() {
        cmd.env("KREFLEX", kreflex);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    match out.status.code() {
        Some(0) => Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("database-status.wasm")),
        _ => Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("build failed").to_owned()),
    }
}

fn runtime(cache: &Path) -> Runtime {
    Runtime::new(WasmConfig { cache_dir: Some(cache.to_path_buf()), ..WasmConfig::default() }).expect("runtime")
}

fn main() {
    let text = database_object().to_string();
    println!("database-status per language; event object {} bytes of JSON\n", text.len());
    println!(
        "{:<8} {:>10} {:>12} {:>12} {:>14} {:>10} {:>10} {:>8}",
        "lang", "size", "cold load", "cached load", "inst.+no-op", "call p50", "call p99", "vs rust"
    );
    let mut rust_p50 = None;
    for lang in ["rust", "c", "go", "js", "python"] {
        let wasm = match build(lang) {
            Ok(w) => w,
            Err(why) => {
                println!("{lang:<8} skipped: {why}");
                continue;
            }
        };
        let bytes = std::fs::read(&wasm).expect("read");
        let cache = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let cold = Plugin::load(&runtime(cache.path()), &bytes, lang).expect("cold load");
        let cold_time = t.elapsed();
        assert!(!cold.loaded_from_cache());
        drop(cold);
        let rt = runtime(cache.path());
        let t = Instant::now();
        let plugin = Plugin::load(&rt, &bytes, lang).expect("cached load");
        let cached_time = t.elapsed();
        assert!(plugin.loaded_from_cache(), "{lang}: second load must come from the cache");

        let ctx =
            CallContext { source: Arc::new(NoObjects), policy: offline::declared_reads(plugin.info()), config: None };
        // Large interpreters cost more per instance: fewer samples keep the run short.
        let n = if bytes.len() > 1 << 20 { 300 } else { 3_000 };
        let noop = measure(n, || {
            let ev = RawEvent { kind: EventKind::Deleted, object: text.clone(), old_object: None };
            std::hint::black_box(plugin.call_blocking(&ev, ctx.clone()).expect("call").expect("ok"));
        });
        let calls = measure(n, || {
            let ev = RawEvent { kind: EventKind::Modified, object: text.clone(), old_object: None };
            let actions = plugin.call_blocking(&ev, ctx.clone()).expect("call").expect("ok");
            assert_eq!(actions.len(), 1, "{lang}: Provisioning at the current generation → one status patch");
        });
        let p50 = pct(&calls, 0.5);
        let base = *rust_p50.get_or_insert(p50);
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
        println!(
            "{lang:<8} {:>10} {:>12} {:>12} {:>14} {:>10} {:>10} {:>7.1}x",
            format!("{:.1} MB", bytes.len() as f64 / 1e6),
            ms(cold_time),
            ms(cached_time),
            us(pct(&noop, 0.5)),
            us(p50),
            us(pct(&calls, 0.99)),
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }
}
