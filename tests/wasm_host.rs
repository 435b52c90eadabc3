//! The WASM host with real compiled plugins: the example plugin, and hostile fixtures that
//! loop, hog memory, panic, snoop, return garbage or are not plugins at all.

mod guest;

use kreflex::actions::{self, Action, EventContext, Limits};
use kreflex::model::{EventKind, ObjectRef};
use kreflex::offline::{self, DirObjects};
use kreflex::wasm::{CallContext, CallError, Compiler, LoadError, NoObjects, Plugin, RawEvent, Runtime};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guest::{load, runtime_with};

fn runtime() -> Runtime {
    runtime_with(|_| {})
}

fn database(name: &str, engine: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "stable.example.com/v1", "kind": "Database",
        "metadata": {"name": name, "namespace": "default", "generation": 1, "annotations": annotations},
        "spec": {"name": name, "engine": engine, "size": "1Gi"}
    })
}

fn chaos_object(what: &str) -> Value {
    database("victim", "postgres", json!({"kreflex.test/do": what}))
}

fn ctx() -> CallContext {
    let plugin_info = kreflex::model::PluginInfo {
        name: "chaos".into(),
        version: "0".into(),
        subscriptions: vec![],
        permissions: vec![],
    };
    CallContext { source: Arc::new(NoObjects), policy: offline::declared_reads(&plugin_info), config: None }
}

fn ctx_for(plugin: &Plugin, objects: DirObjects) -> CallContext {
    CallContext { source: Arc::new(objects), policy: offline::declared_reads(plugin.info()), config: None }
}

fn call(
    plugin: &Plugin,
    object: &Value,
    c: CallContext,
) -> Result<Result<Vec<kreflex::wasm::RawAction>, kreflex::wasm::wit::PluginError>, CallError> {
    plugin.call_blocking(&RawEvent { kind: EventKind::Added, object: object.to_string(), old_object: None }, c)
}

fn validated(plugin: &Plugin, object: &Value, c: CallContext) -> Result<Vec<Action>, actions::ActionError> {
    let raw = call(plugin, object, c).expect("call succeeds").expect("plugin returns ok");
    let r = ObjectRef::of(object).expect("object ref");
    actions::validate(
        raw,
        &EventContext { plugin: plugin.name(), event: EventKind::Added, object: &r },
        &Limits::default(),
    )
}

fn status_of(actions: &[Action]) -> Value {
    actions
        .iter()
        .find_map(|a| match a {
            // chaos reports as JSON text in status.message; database-status in status.
            Action::Patch { body, .. } => body.get("status").cloned().map(|st| {
                match st.get("message").and_then(Value::as_str).and_then(|m| serde_json::from_str::<Value>(m).ok()) {
                    Some(inner @ Value::Object(_)) => inner,
                    _ => st,
                }
            }),
            _ => None,
        })
        .expect("a status patch")
}

#[test]
fn database_status_provisions_then_reports_ready() {
    let rt = runtime();
    let p = load(&rt, "database_status");
    assert_eq!(p.info().name, "database-status");
    let obj = database("orders", "postgres", json!({}));
    let first = validated(&p, &obj, ctx()).expect("valid");
    assert_eq!(status_of(&first)["state"], "Provisioning");
    assert!(first.iter().any(|a| a.requeue_delay() == Some(Duration::from_millis(500))));

    let mut provisioned = obj.clone();
    provisioned["status"] = status_of(&first);
    let second = validated(&p, &provisioned, ctx()).expect("valid");
    assert_eq!(status_of(&second)["state"], "Ready");
    assert_eq!(status_of(&second)["message"], "postgres database \"orders\" of size 1Gi is ready");
}

#[test]
fn database_status_rejects_unknown_engine_with_warning_event() {
    let rt = runtime();
    let p = load(&rt, "database_status");
    let out = validated(&p, &database("legacy", "oracle", json!({})), ctx()).expect("valid");
    assert_eq!(status_of(&out)["state"], "Failed");
    assert!(out.iter().any(|a| matches!(a, Action::EmitEvent { reason, severity: actions::Severity::Warning, .. } if reason == "UnsupportedEngine")));
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let rt = runtime();
    let garbage = Plugin::load(&rt, b"definitely not wasm", "garbage.wasm").expect_err("refused");
    assert!(matches!(garbage, LoadError::NotAComponent { .. }), "{garbage}");
    assert!(garbage.to_string().contains("garbage.wasm"));
    // The smallest valid core module: magic + version 1.
    let core = Plugin::load(&rt, b"\0asm\x01\0\0\0", "core.wasm").expect_err("refused");
    assert!(core.to_string().contains("core WebAssembly module"), "{core}");
    let truncated = &guest::wasm_bytes("database_status")[..4096];
    let err = Plugin::load(&rt, truncated, "half-written.wasm").expect_err("refused");
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let rt = runtime();
    let err = Plugin::load(&rt, &guest::wasm_bytes("fixture_other_world"), "greeter.wasm").expect_err("refused");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    assert!(err.to_string().contains("kreflex:plugin/reactor"), "{err}");
}

#[test]
fn a_trapping_or_nameless_describe_is_refused() {
    let rt = runtime();
    let err = Plugin::load(&rt, &guest::wasm_bytes("fixture_bad_describe"), "bad.wasm").expect_err("refused");
    assert!(matches!(err, LoadError::DescribeFailed { .. }), "{err}");
    let err = Plugin::load(&rt, &guest::wasm_bytes("fixture_empty_name"), "nameless.wasm").expect_err("refused");
    assert!(matches!(err, LoadError::InvalidInfo { .. }), "{err}");
    assert!(err.to_string().contains("name is empty"), "{err}");
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline_and_the_host_keeps_serving() {
    let rt = runtime_with(|c| c.call_timeout = Duration::from_millis(200));
    let p = load(&rt, "fixture_chaos");
    let looping = std::thread::spawn({
        let p = p.clone();
        move || {
            let started = Instant::now();
            (call(&p, &chaos_object("loop"), ctx()), started.elapsed())
        }
    });
    // While one call spins, others are served.
    for _ in 0..3 {
        assert!(call(&p, &chaos_object(""), ctx()).expect("served").is_ok());
    }
    let (result, elapsed) = looping.join().expect("thread");
    let err = result.expect_err("interrupted");
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("plugin chaos"), "{err}");
    assert!(err.to_string().contains("Database default/victim"), "{err}");
    assert!(elapsed < Duration::from_secs(30), "deadline did not fire: {elapsed:?}");
}

#[test]
fn a_memory_hog_is_contained_and_named() {
    let rt = runtime_with(|c| c.memory_limit = 16 << 20);
    let p = load(&rt, "fixture_chaos");
    let err = call(&p, &chaos_object("oom"), ctx()).expect_err("contained");
    assert!(matches!(err, CallError::OutOfMemory { limit_mib: 16, .. }), "{err}");
    assert!(err.to_string().contains("plugin chaos"), "{err}");
    assert!(call(&p, &chaos_object(""), ctx()).expect("next call fine").is_ok());
}

#[test]
fn a_panic_is_a_contained_trap_naming_the_plugin() {
    let rt = runtime();
    let p = load(&rt, "fixture_chaos");
    let err = call(&p, &chaos_object("panic"), ctx()).expect_err("trap");
    assert!(matches!(err, CallError::Trap { .. }), "{err}");
    assert!(err.to_string().contains("plugin chaos: added event for Database default/victim"), "{err}");
}

#[test]
fn a_plugin_gets_no_files_env_args_or_network() {
    let rt = runtime();
    let p = load(&rt, "fixture_chaos");
    let out = validated(&p, &chaos_object("snoop"), ctx()).expect("valid");
    let s = status_of(&out);
    assert!(s["file"].as_str().expect("file").starts_with("denied"), "{s}");
    assert!(s["dir"].as_str().expect("dir").starts_with("Err"), "{s}");
    assert_eq!(s["env"], 0, "{s}");
    assert_eq!(s["args"], 0, "{s}");
    assert!(s["net"].as_str().expect("net").starts_with("Err"), "{s}");
}

#[test]
fn instances_are_fresh_for_every_call() {
    let rt = runtime();
    let p = load(&rt, "fixture_chaos");
    for _ in 0..3 {
        let out = validated(&p, &chaos_object(""), ctx()).expect("valid");
        assert_eq!(status_of(&out)["calls"], 1, "state leaked between calls");
    }
}

#[test]
fn malformed_actions_fail_validation_naming_plugin_event_and_object() {
    let rt = runtime();
    let p = load(&rt, "fixture_chaos");
    let err = validated(&p, &chaos_object("malformed"), ctx()).expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.contains("plugin chaos") && text.contains("added event") && text.contains("Database default/victim"),
        "{text}"
    );
}

#[test]
fn host_reads_are_limited_to_declared_permissions() {
    let rt = runtime();
    let p = load(&rt, "fixture_chaos");
    let mut objects = DirObjects::default();
    objects.insert(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}}),
    );
    objects.insert(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "password", "namespace": "default"}}),
    );
    let get = |what: &str| status_of(&validated(&p, &chaos_object(what), ctx_for(&p, objects.clone())).expect("valid"));
    assert_eq!(get("get:v1:ConfigMap:default:settings")["get"], "Ok(true)");
    assert_eq!(get("get:v1:ConfigMap:default:absent")["get"], "Ok(false)");
    assert!(get("get:v1:Secret:default:password")["get"].as_str().expect("str").starts_with("Err"));
    assert!(get("get:v1:ConfigMap:kube-system:x")["get"].as_str().expect("str").starts_with("Err"));
    assert_eq!(get("list::v1:ConfigMap:default")["list"], "Ok(1)");
    assert!(get("list::v1:Secret:default")["list"].as_str().expect("str").starts_with("Err"));
}

#[test]
fn precompiled_artifacts_are_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime_with(|c| c.cache_dir = Some(dir.path().to_path_buf()));
    let bytes = guest::wasm_bytes("database_status");
    let first = Plugin::load(&rt, &bytes, "a").expect("load");
    assert!(!first.loaded_from_cache());
    let second = Plugin::load(&rt, &bytes, "a").expect("load");
    assert!(second.loaded_from_cache());
    drop((first, second));
    // A corrupt artifact is replaced, not trusted. (Written as a new file: artifacts are
    // memory-mapped, which is why the cache itself only ever renames new files into place.)
    for entry in std::fs::read_dir(dir.path()).expect("read") {
        let path = entry.expect("entry").path();
        std::fs::remove_file(&path).expect("remove");
        std::fs::write(&path, b"garbage").expect("corrupt");
    }
    let third = Plugin::load(&rt, &bytes, "a").expect("recompiled");
    assert!(!third.loaded_from_cache());
    assert!(validated(&third, &database("x", "mysql", json!({})), ctx()).is_ok());
}

/// A runtime that compiles in a child process, as the `kreflex` binary does.
fn child_compiling(cache: Option<&std::path::Path>, exe: &std::path::Path, timeout: Duration) -> Runtime {
    runtime_with(|c| {
        c.cache_dir = cache.map(std::path::Path::to_path_buf);
        c.compiler = Compiler::Process { exe: exe.to_path_buf(), timeout };
    })
}

#[test]
fn a_child_process_compiles_into_the_cache_and_the_engine_loads_its_artifact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_kreflex"));
    let rt = child_compiling(Some(dir.path()), exe, Duration::from_secs(120));
    let bytes = guest::wasm_bytes("database_status");
    let first = Plugin::load(&rt, &bytes, "a.wasm").expect("load");
    assert!(!first.loaded_from_cache());
    let artifacts: Vec<_> = std::fs::read_dir(dir.path()).expect("read").map(|e| e.expect("entry").path()).collect();
    assert_eq!(artifacts.len(), 1, "one artifact written by the child: {artifacts:?}");
    assert!(artifacts[0].file_name().expect("name").to_string_lossy().starts_with(first.hash()));
    assert_eq!(
        status_of(&validated(&first, &database("x", "mysql", json!({})), ctx()).expect("valid"))["state"],
        "Provisioning"
    );
    assert!(Plugin::load(&rt, &bytes, "a.wasm").expect("load").loaded_from_cache());

    // With the cache off the child compiles into a private temporary directory.
    let rt = child_compiling(None, exe, Duration::from_secs(120));
    let p = Plugin::load(&rt, &bytes, "b.wasm").expect("load");
    assert!(validated(&p, &database("y", "postgres", json!({})), ctx()).is_ok());
}

#[test]
fn a_component_the_child_cannot_compile_is_refused_with_wasmtimes_reason() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_kreflex"));
    let rt = child_compiling(None, exe, Duration::from_secs(120));
    let truncated = &guest::wasm_bytes("database_status")[..4096];
    let err = Plugin::load(&rt, truncated, "half-written.wasm").expect_err("refused");
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err}");
    assert!(err.to_string().starts_with("half-written.wasm: not a WebAssembly component: "), "{err}");
}

#[cfg(unix)]
#[test]
fn a_compiler_that_dies_or_hangs_fails_the_load_and_a_missing_one_falls_back_to_in_process() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let script = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\ncat > /dev/null\n{body}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    };
    let bytes = guest::wasm_bytes("database_status");

    let killed = child_compiling(None, &script("oom", "kill -9 $$"), Duration::from_secs(60));
    let err = Plugin::load(&killed, &bytes, "big.wasm").expect_err("fails");
    assert!(matches!(err, LoadError::CompileFailed { .. }), "{err}");
    assert!(err.to_string().contains("big.wasm: cannot compile: the compiler was killed by signal 9"), "{err}");

    let crashed = child_compiling(
        None,
        &script("crash", "echo 'thread main panicked: boom' >&2; exit 101"),
        Duration::from_secs(60),
    );
    let err = Plugin::load(&crashed, &bytes, "c.wasm").expect_err("fails");
    assert!(err.to_string().contains("exited with status 101: thread main panicked: boom"), "{err}");

    let hung = child_compiling(None, &script("hang", "exec sleep 60"), Duration::from_millis(300));
    let started = Instant::now();
    let err = Plugin::load(&hung, &bytes, "slow.wasm").expect_err("fails");
    assert!(err.to_string().contains("ran past its deadline of 300ms and was killed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "the hung compiler was killed, not waited for");

    let missing = child_compiling(None, &dir.path().join("no-such-kreflex"), Duration::from_secs(60));
    let p = Plugin::load(&missing, &bytes, "d.wasm").expect("compiled in process instead");
    assert_eq!(p.info().name, "database-status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_run_in_parallel_bounded_by_instance_slots() {
    let rt = runtime_with(|c| c.max_instances = 2);
    let p = load(&rt, "fixture_chaos");
    let calls = (0..6).map(|i| {
        let p = p.clone();
        let obj = database(&format!("db{i}"), "postgres", json!({"kreflex.test/do": "sleep:20"}));
        tokio::spawn(async move {
            p.call(RawEvent { kind: EventKind::Added, object: obj.to_string(), old_object: None }, ctx()).await
        })
    });
    for c in futures::future::join_all(calls).await {
        assert!(c.expect("join").expect("call").is_ok());
    }
}
