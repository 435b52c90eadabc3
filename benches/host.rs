//! Per-event cost of the WASM host, against the same logic as a plain Rust function.
//!
//! For a ~2 KB `Database` object, in one run on the same machine:
//! - native: parse the object JSON, run `database_status::react`, serialize the bodies;
//! - kreflex: serialize the object, instantiate the plugin from its `InstancePre` in a fresh
//!   store, call `on-event` (the guest parses and decides), decode and validate the actions.
//!
//! Prints both, the overhead per event and the ratio. Run: `cargo bench --bench host`.

#[path = "../tests/guest/mod.rs"]
mod guest;
mod util;

use kreflex::actions::{self, EventContext, Limits};
use kreflex::model::{EventKind, ObjectRef, PluginInfo};
use kreflex::offline;
use kreflex::wasm::{CallContext, NoObjects, Plugin, RawEvent, Runtime, WasmConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use util::{database_object as object, mean, measure, pct};

fn main() {
    let obj = object();
    let text = obj.to_string();
    println!("object size: {} bytes of JSON", text.len());
    let n = 5_000;

    let native = measure(n, || {
        let v: Value = serde_json::from_str(&text).expect("json");
        let out = database_status::react(database_status::EventKind::Modified, &v);
        let bodies: Vec<String> = out
            .into_iter()
            .filter_map(|d| match d {
                database_status::Decision::Status(b) => Some(b.to_string()),
                _ => None,
            })
            .collect();
        std::hint::black_box(bodies);
    });

    let rt = Runtime::new(WasmConfig { cache_dir: None, ..WasmConfig::default() }).expect("runtime");
    let plugin = Plugin::load(&rt, &guest::wasm_bytes("database_status"), "database-status").expect("load");
    let info: &PluginInfo = plugin.info();
    let ctx = CallContext { source: Arc::new(NoObjects), policy: offline::declared_reads(info), config: None };
    let target = ObjectRef::of(&obj).expect("ref");
    let limits = Limits::default();
    let wasm = measure(n, || {
        let ev = RawEvent { kind: EventKind::Modified, object: obj.to_string(), old_object: None };
        let raw = plugin.call_blocking(&ev, ctx.clone()).expect("call").expect("ok");
        let ectx = EventContext { plugin: plugin.name(), event: EventKind::Modified, object: &target };
        std::hint::black_box(actions::validate(raw, &ectx, &limits).expect("valid"));
    });

    let row = |name: &str, s: &[Duration]| {
        println!(
            "{name:<10} mean {:>9.2?}  p50 {:>9.2?}  p99 {:>9.2?}  ({} events)",
            mean(s),
            pct(s, 0.5),
            pct(s, 0.99),
            s.len()
        )
    };
    row("native", &native);
    row("kreflex", &wasm);
    let overhead = mean(&wasm).saturating_sub(mean(&native));
    println!(
        "host overhead per event: {:.1} µs (goal ≤ 50 µs); kreflex/native ratio: {:.1}x",
        overhead.as_secs_f64() * 1e6,
        mean(&wasm).as_secs_f64() / mean(&native).as_secs_f64()
    );
}
