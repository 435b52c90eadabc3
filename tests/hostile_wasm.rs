//! The sandbox against a hostile plugin author (issue 14), with real compiled fixtures from
//! `plugins/rust/fixtures/hostile-*`: a plugin that sleeps in WASI, one whose memories add
//! up past the limit, one whose result would cost the host gigabytes, one that floods and
//! forges the log. Each test checks the contained outcome and that the
//! well-behaved example plugin, called alongside, still gets its correct result. Durations
//! are only bounded loosely (30× the deadline and more): the machine is shared.

mod guest;

use kreflex::model::{EventKind, PluginInfo};
use kreflex::offline;
use kreflex::wasm::{CallContext, CallError, LoadError, LoadOptions, NoObjects, Plugin, RawAction, RawEvent, Runtime};
use kreflex::wasm::{WasmConfig, wit};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a test waits for something that must end at a 200 ms deadline before calling
/// it stuck: generous, so that a loaded machine does not fail the test, and short enough
/// that the old code (which sleeps for an hour) fails instead of hanging.
const STUCK: Duration = Duration::from_secs(60);

const DEADLINE: Duration = Duration::from_millis(200);

use guest::load;

/// A runtime whose calls have [`DEADLINE`], changed by `f`.
fn runtime_with(f: impl FnOnce(&mut WasmConfig)) -> Runtime {
    guest::runtime_with(|c| {
        c.call_timeout = DEADLINE;
        f(c)
    })
}

fn runtime() -> Runtime {
    runtime_with(|_| {})
}

fn database(name: &str, what: &str) -> Value {
    json!({
        "apiVersion": "stable.example.com/v1", "kind": "Database",
        "metadata": {"name": name, "namespace": "default", "generation": 1,
                     "annotations": {"kreflex.test/do": what}},
        "spec": {"name": name, "engine": "postgres", "size": "1Gi"}
    })
}

fn event(what: &str) -> RawEvent {
    RawEvent { kind: EventKind::Added, object: database("victim", what).to_string(), old_object: None }
}

fn ctx() -> CallContext {
    let info = PluginInfo { name: "any".into(), version: "0".into(), subscriptions: vec![], permissions: vec![] };
    CallContext { source: Arc::new(NoObjects), policy: offline::declared_reads(&info), config: None }
}

type CallResult = Result<Result<Vec<RawAction>, wit::PluginError>, CallError>;

fn call(plugin: &Plugin, what: &str) -> CallResult {
    plugin.call_blocking(&event(what), ctx())
}

/// Runs `f` on its own thread and fails the test if it has not returned within [`STUCK`].
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(STUCK).unwrap_or_else(|_| panic!("{what}: still running after {STUCK:?}"))
}

/// The status the example plugin writes for a new Database, as a check that a
/// well-behaved plugin beside a hostile one still gets its correct result.
fn assert_database_status_works(rt: &Runtime) {
    let good = load(rt, "database_status");
    let actions = good
        .call_blocking(
            &RawEvent { kind: EventKind::Added, object: database("orders", "").to_string(), old_object: None },
            ctx(),
        )
        .expect("the good plugin's call succeeds")
        .expect("the good plugin returns ok");
    let state = actions.iter().find_map(|a| match a {
        wit::Action::Patch(p) => serde_json::from_str::<Value>(&p.body).ok()?.pointer("/status/state").cloned(),
        _ => None,
    });
    assert_eq!(state, Some(json!("Provisioning")), "{actions:?}");
}

// ---- 1. A call blocking in WASI ends at its deadline ----

#[test]
fn a_describe_sleeping_in_wasi_fails_the_load_at_its_deadline() {
    let rt = runtime();
    let bytes = guest::wasm_bytes("fixture_hostile_sleep");
    let opts = LoadOptions { config: Some(Arc::from(r#"{"sleepInDescribeMs": 3600000}"#)), ..LoadOptions::default() };
    let started = Instant::now();
    let err = within("a describe sleeping for an hour", move || {
        Plugin::load_with(&rt, &bytes, "sleepy.wasm", &opts).expect_err("refused")
    });
    assert!(matches!(err, LoadError::DescribeFailed { .. }), "{err}");
    assert!(err.to_string().contains("200ms"), "the deadline is named: {err}");
    assert!(started.elapsed() < DEADLINE * 30 + Duration::from_secs(30), "{:?}", started.elapsed());
    assert_database_status_works(&runtime());
}

#[test]
fn an_event_call_sleeping_in_wasi_is_stopped_at_its_deadline() {
    let rt = runtime();
    let p = load(&rt, "fixture_hostile_sleep");
    for what in ["sleep:3600000", "naps"] {
        let p = p.clone();
        let err = within(what, move || call(&p, what).expect_err("stopped"));
        assert!(matches!(err, CallError::Timeout { timeout, .. } if timeout == DEADLINE), "{what}: {err}");
        assert!(err.to_string().contains("plugin hostile-sleep"), "{err}");
    }
    assert!(call(&p, "").expect("a quick call is served").is_ok());
    assert_database_status_works(&rt);
}

#[test]
fn sleeping_calls_do_not_hold_the_instance_slots() {
    let rt = runtime_with(|c| c.max_instances = 2);
    let sleepy = load(&rt, "fixture_hostile_sleep");
    let good = load(&rt, "database_status");
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    tokio.block_on(async {
        let sleepers: Vec<_> = (0..4)
            .map(|_| {
                let p = sleepy.clone();
                tokio::spawn(async move { p.call(event("sleep:3600000"), ctx()).await })
            })
            .collect();
        let good_call = tokio::spawn(async move { good.call(event(""), ctx()).await });
        let all = async {
            for s in sleepers {
                let err = s.await.expect("join").expect_err("stopped");
                assert!(matches!(err, CallError::Timeout { .. }), "{err}");
            }
            good_call.await.expect("join").expect("the good call is served").expect("ok")
        };
        let actions = tokio::time::timeout(STUCK, all).await.expect("sleepers held the two slots");
        assert!(!actions.is_empty());
    });
    assert_database_status_works(&rt);
}

#[test]
fn wall_clock_time_stays_readable() {
    let rt = runtime();
    let p = load(&rt, "fixture_hostile_sleep");
    let actions = call(&p, "clock").expect("call").expect("ok");
    let message = match &actions[0] {
        wit::Action::Patch(p) => serde_json::from_str::<Value>(&p.body).expect("json")["status"]["message"].clone(),
        other => panic!("{other:?}"),
    };
    let now: Value = serde_json::from_str(message.as_str().expect("text")).expect("json");
    assert!(now["now"].as_u64().expect("seconds") > 1_700_000_000, "{now}");
}

// ---- 2. The memory limit bounds all memories of an instance together ----

/// `component` with `count` more core instances, each of a module defining one memory of
/// `mib` MiB. Appended sections are valid anywhere in a component, and instantiating a
/// module with no imports needs nothing from the rest of the component.
fn with_extra_memories(component: &[u8], count: u32, mib: u32) -> Vec<u8> {
    fn leb(mut n: u32, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len() as u32, out);
        out.extend_from_slice(body);
    }
    // The index the new module gets: the core modules already in the top-level index space,
    // defined (section 1) or aliased (section 6, sort 0x00 0x11). Nested modules and
    // components are skipped whole.
    fn read_leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut n, mut shift) = (0, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            n |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return n;
            }
            shift += 7;
        }
    }
    assert_eq!(&component[4..8], b"\x0d\0\x01\0", "a component");
    let (mut at, mut modules) = (8, 0u32);
    while at < component.len() {
        let id = component[at];
        at += 1;
        let size = read_leb(component, &mut at);
        let end = at + size;
        match id {
            1 => modules += 1,
            6 => {
                let mut p = at;
                for _ in 0..read_leb(component, &mut p) {
                    let sort = (component[p], component[p + 1]);
                    p += if sort.0 == 0 { 2 } else { 1 };
                    let target = component[p];
                    p += 1;
                    read_leb(component, &mut p);
                    let name_or_index = read_leb(component, &mut p);
                    if target != 2 {
                        p += name_or_index;
                    }
                    if sort == (0x00, 0x11) {
                        modules += 1;
                    }
                }
            }
            _ => {}
        }
        at = end;
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    let mut memory = vec![1, 0x00];
    leb(mib * 16, &mut memory);
    section(5, &memory, &mut module);
    let mut out = component.to_vec();
    section(1, &module, &mut out);
    let mut instances = Vec::new();
    leb(count, &mut instances);
    for _ in 0..count {
        instances.push(0x00);
        leb(modules, &mut instances);
        instances.push(0);
    }
    section(2, &instances, &mut out);
    out
}

#[test]
fn memories_of_all_core_instances_count_against_one_limit() {
    for pooling in [true, false] {
        let rt = runtime_with(|c| {
            c.memory_limit = 64 << 20;
            c.call_timeout = Duration::from_secs(10);
            c.pooling = pooling;
        });
        // Main memory (a few MiB) plus one more core instance with 40 MiB: under the limit.
        let bytes = with_extra_memories(&guest::wasm_bytes("fixture_hostile_memories"), 1, 40);
        let p = Plugin::load(&rt, &bytes, "two-memories.wasm").expect("loads: 40 MiB in all is under 64 MiB");
        assert!(call(&p, "grow:8").expect("8 MiB more is fine").is_ok());
        // 32 MiB more in the main memory: each memory stays under 64 MiB, their sum does not.
        let err = call(&p, "grow:32").expect_err("contained");
        assert!(matches!(err, CallError::OutOfMemory { limit_mib: 64, .. }), "pooling {pooling}: {err}");
        assert!(call(&p, "grow:0").expect("the next call is fine").is_ok());
        assert_database_status_works(&rt);
    }
}

#[test]
fn a_component_with_many_memories_is_refused() {
    for pooling in [true, false] {
        let rt = runtime_with(|c| c.pooling = pooling);
        // Eight more core instances of 8 MiB each: no memory near the limit, 64 MiB more in all.
        let bytes = with_extra_memories(&guest::wasm_bytes("fixture_hostile_memories"), 8, 8);
        let err = Plugin::load(&rt, &bytes, "many-memories.wasm").expect_err("refused");
        // The pool refuses the component when it is loaded; without the pool the limiter
        // refuses the memories when `describe` instantiates it.
        let expected = if pooling {
            matches!(err, LoadError::NotAComponent { .. })
        } else {
            matches!(err, LoadError::DescribeFailed { .. })
        };
        assert!(expected, "pooling {pooling}: {err}");
        assert!(err.to_string().contains("many-memories.wasm"), "{err}");
        assert!(err.to_string().contains("memor"), "the reason is memory: {err}");
        assert_database_status_works(&rt);
    }
}

// ---- 3. What a call can make the host allocate is bounded while lifting ----

#[test]
fn a_result_that_would_cost_the_host_gigabytes_fails_while_lifting() {
    let rt = runtime_with(|c| c.call_timeout = Duration::from_secs(10));
    let p = load(&rt, "fixture_hostile_lift");
    // 100 Events pointing at one 40 MiB string: 4 GiB if lifted.
    let err = within("lifting 4 GiB", move || call(&p, "lift:100:40960").expect_err("refused"));
    assert!(matches!(err, CallError::TooMuchData { .. }), "{err}");
    assert!(err.to_string().contains("plugin hostile-lift"), "{err}");
    assert!(err.to_string().contains("8 MiB"), "the limit is named: {err}");
    assert_database_status_works(&rt);
}

#[test]
fn a_result_past_the_transfer_limit_fails_and_one_within_it_is_served() {
    let rt = runtime_with(|c| c.call_timeout = Duration::from_secs(10));
    let p = load(&rt, "fixture_hostile_lift");
    // 100 Events pointing at one 1 MiB string: 100 MiB of host strings, under wasmtime's
    // own 128 MiB but far past what any valid result needs.
    let err = call(&p, "lift:100:1024").expect_err("refused");
    assert!(matches!(err, CallError::TooMuchData { .. }), "{err}");
    let fine = call(&p, "lift:3:256").expect("served").expect("ok");
    assert_eq!(fine.len(), 3);
    assert!(matches!(&fine[0], wit::Action::EmitEvent(e) if e.message.len() == 256 << 10));
    assert_database_status_works(&rt);
}

// ---- 4. The host log is capped and cannot be forged ----

/// Everything logged in this test binary, as text and as JSON lines.
struct Logs {
    text: Arc<Mutex<Vec<u8>>>,
    json: Arc<Mutex<Vec<u8>>>,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log sink").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let (text, json) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let (t, j) = (Sink(text.clone()), Sink(json.clone()));
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || t.clone()))
            .with(tracing_subscriber::fmt::layer().json().with_writer(move || j.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");
        Logs { text, json }
    })
}

/// The lines of `log` that name `plugin`.
fn lines_of(log: &Mutex<Vec<u8>>, plugin: &str) -> Vec<String> {
    let bytes = log.lock().expect("log").clone();
    String::from_utf8_lossy(&bytes).lines().filter(|l| l.contains(plugin)).map(str::to_owned).collect()
}

#[test]
fn a_log_flood_is_capped_per_call_and_per_plugin_and_counted() {
    let logs = logs();
    let rt = runtime_with(|c| c.call_timeout = Duration::from_secs(10));
    let p = load(&rt, "fixture_hostile_log");
    let started = Instant::now();
    // 1000 messages of 16 KiB (16 MB) in each of 5 calls, then 1000 stdout lines of 16 KiB.
    for what in ["flood:1000:16", "print:1000:16"] {
        for _ in 0..5 {
            assert!(call(&p, what).expect("the call itself succeeds").is_ok());
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    let logged: usize = lines_of(&logs.text, "hostile-log").iter().map(String::len).sum();
    let cap = rt.config().max_log_per_call.max(rt.config().max_output);
    assert!(logged <= 10 * (cap + 2048), "at most the per-call cap per call: {logged} bytes");
    let per_second = rt.config().max_log_per_second;
    assert!(logged <= per_second * (seconds as usize + 1) + 10 * 2048, "{logged} bytes in {seconds} s");
    // Attempted: 5 × 1000 messages of 16 KiB, 5 × 1000 lines of 16 KiB and a newline.
    let attempted: u64 = 5 * 1000 * (16 << 10) + 5 * 1000 * ((16 << 10) + 1);
    let dropped = p.log_dropped_bytes();
    assert!(dropped >= attempted - logged as u64, "dropped bytes are counted: {dropped}, {logged} logged");
    assert_database_status_works(&rt);
}

#[test]
fn log_messages_and_output_cannot_forge_log_lines() {
    let logs = logs();
    let rt = runtime();
    let p = load(&rt, "fixture_hostile_log");
    assert!(call(&p, "forge").expect("call").is_ok());
    for log in [&logs.text, &logs.json] {
        let all = String::from_utf8_lossy(&log.lock().expect("log")).into_owned();
        for line in all.lines() {
            assert!(!line.starts_with("1999-12-31T23:59:59"), "a forged line: {line:?}");
            if line.contains("kreflex::audit") || line.contains("forged") {
                assert!(line.contains("hostile-log"), "a forged line: {line:?}");
            }
        }
        for bad in ['\r', '\x1b', '\u{85}', '\u{2028}'] {
            assert!(!all.contains(bad), "{bad:?} reached the log");
        }
        let forged = lines_of(log, "hostile-log");
        assert!(forged.iter().any(|l| l.contains("hello") && l.contains("kreflex::audit")), "{forged:?}");
        assert!(forged.iter().any(|l| l.contains("stdout")), "{forged:?}");
    }
    assert_database_status_works(&rt);
}
