//! `kreflex inspect` and `kreflex test` as a user runs them: the real binary, the real
//! example plugin, the recorded kubectl watch stream in `examples/events/`.

mod common;
mod guest;

use common::{stage, test_reports};

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kreflex(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kreflex"));
    cmd.args(args).arg("--no-cache").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kreflex");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kreflex runs")
}

fn example(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path).display().to_string()
}

#[test]
fn inspect_reads_a_zstd_compressed_plugin_as_the_engine_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let zst = dir.path().join("database-status.wasm.zst");
    let plain = std::fs::read(guest::wasm("database_status")).expect("component");
    std::fs::write(&zst, zstd::encode_all(plain.as_slice(), 3).expect("compress")).expect("write");
    let out = kreflex(&["inspect", zst.to_str().expect("utf8")], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(info["name"], "database-status");
}

#[test]
fn inspect_prints_the_declared_contract_as_json() {
    let wasm = guest::wasm("database_status");
    let out = kreflex(&["inspect", wasm.to_str().expect("utf8")], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(info["name"], "database-status");
    assert_eq!(info["subscriptions"][0]["gvk"]["kind"], "Database");
    assert_eq!(info["subscriptions"][0]["generationChangedOnly"], true);
    assert_eq!(info["permissions"][0]["resource"], "databases/status");
    assert_eq!(info["sha256"].as_str().expect("hash").len(), 64);
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let wasm = guest::wasm("database_status");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .args(["inspect", wasm.to_str().expect("utf8"), "--no-cache"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kreflex");
    // The reader goes away before kreflex has loaded the plugin and printed anything, as
    // `kreflex inspect x.wasm | head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("kreflex runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
    const SIGPIPE: i32 = 13;
    assert_eq!(out.status.signal(), Some(SIGPIPE), "ends as Unix tools do: {:?}", out.status);
}

#[test]
fn dev_writes_its_kubeconfig_where_git_ignores_it() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let out =
        kreflex(&["dev", "--plugins", plugins.path().to_str().expect("utf8"), "--port", "0", "--seconds", "1"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kubeconfig = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kreflex-dev.kubeconfig");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&kubeconfig.display().to_string()));
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    assert!(text.contains("server: https://127.0.0.1:"), "{text}");
    let ignored = Command::new("git")
        .args(["check-ignore", "--quiet", "--no-index"])
        .arg(&kubeconfig)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    if let Ok(status) = ignored {
        assert!(status.success(), "git would track {}", kubeconfig.display());
    }
}

#[test]
fn test_replays_a_recorded_kubectl_watch_stream() {
    let wasm = guest::wasm("database_status");
    let out = kreflex(
        &["test", wasm.to_str().expect("utf8"), "--event", &example("examples/events/database-watch.json")],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = test_reports(&out);
    assert_eq!(r.len(), 9, "one report per watch event");
    assert_eq!(r[0]["actions"][0]["body"]["status"]["state"], "Provisioning");
    assert_eq!(r[0]["actions"][1]["ms"], 500);
    // A status-only MODIFIED does not reach a generation-changed-only plugin.
    assert!(r[1]["skipped"].as_str().expect("skipped").contains("generation"));
    assert_eq!(r[3]["actions"][1]["reason"], "UnsupportedEngine");
    assert_eq!(r[5]["actions"][0]["body"]["status"]["state"], "Ready");
    assert_eq!(r[8]["kind"], "deleted");
}

#[test]
fn test_reads_events_from_stdin() {
    let wasm = guest::wasm("database_status");
    let event = r#"{"type":"ADDED","object":{"apiVersion":"stable.example.com/v1","kind":"Database","metadata":{"name":"a","namespace":"default","generation":1},"spec":{"name":"a","engine":"mysql"}}}"#;
    let out = kreflex(&["test", wasm.to_str().expect("utf8"), "--event", "-"], Some(event));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        test_reports(&out)[0]["actions"][0]["body"]["status"]["message"],
        "provisioning mysql database \"a\" of size default"
    );
}

#[test]
fn test_fails_with_a_message_naming_plugin_event_and_object() {
    let wasm = guest::wasm("fixture_chaos");
    let event = r#"{"type":"ADDED","object":{"apiVersion":"stable.example.com/v1","kind":"Database","metadata":{"name":"bad","namespace":"prod","annotations":{"kreflex.test/do":"malformed"}}}}
{"type":"ADDED","object":{"apiVersion":"stable.example.com/v1","kind":"Database","metadata":{"name":"fine","namespace":"prod"}}}"#;
    let out = kreflex(&["test", wasm.to_str().expect("utf8"), "--event", "-"], Some(event));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plugin chaos: added event for Database prod/bad"), "{stderr}");
    // The other event is still processed and reported.
    assert!(test_reports(&out)[1]["actions"].is_array());
}

#[test]
fn test_rejects_a_malformed_event_file_clearly() {
    let wasm = guest::wasm("database_status");
    let out =
        kreflex(&["test", wasm.to_str().expect("utf8"), "--event", "-"], Some("{\"type\": \"ADDED\", \"object\": "));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
}

#[test]
fn precompile_fills_the_cache_and_reports_each_file() {
    let cache = tempfile::tempdir().expect("tempdir");
    let garbage = cache.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x0d\0\x01\0 not really").expect("write");
    let wasm = guest::wasm("database_status");
    let out = Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .arg("precompile")
        .args([&wasm, &garbage])
        .arg("--cache-dir")
        .arg(cache.path().join("artifacts"))
        .output()
        .expect("kreflex runs");
    assert_eq!(out.status.code(), Some(1), "one file failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines = test_reports(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let artifact = Path::new(lines[0]["artifact"].as_str().expect("artifact path"));
    assert!(artifact.starts_with(cache.path().join("artifacts")) && artifact.exists(), "{lines:?}");
    assert!(
        artifact.file_name().expect("name").to_string_lossy().starts_with(lines[0]["sha256"].as_str().expect("hash"))
    );
    assert_eq!(lines[1]["file"], garbage.display().to_string());
    assert_eq!(lines[1]["invalid"], true);
    assert!(lines[1]["error"].as_str().expect("error").contains("failed to parse"), "{lines:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_background_compile_does_not_outlive_the_process_that_started_it() {
    let cache = tempfile::tempdir().expect("tempdir");
    let big = std::fs::read(guest::wasm("database_status")).expect("read");
    let file = cache.path().join("p.wasm");
    std::fs::write(&file, &big).expect("write");
    // The shell starts the compile as the engine does and exits at once.
    let script = format!(
        "KREFLEX_COMPILER_PARENT=$$ '{}' precompile --background --cache-dir '{}' '{}' > /dev/null 2>&1 & echo $!",
        env!("CARGO_BIN_EXE_kreflex"),
        cache.path().join("artifacts").display(),
        file.display()
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().expect("sh");
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("pid");
    let gone = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for its new parent to reap it is gone too.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !gone() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(gone(), "the compiler {pid} still runs after its parent exited");
    assert!(
        !cache.path().join("artifacts").exists()
            || std::fs::read_dir(cache.path().join("artifacts")).expect("dir").next().is_none(),
        "it wrote no artifact"
    );
}

#[test]
fn a_bad_plugin_file_is_reported_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("broken.wasm");
    std::fs::write(&bad, b"nope").expect("write");
    let out = kreflex(&["inspect", bad.to_str().expect("utf8")], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.wasm") && stderr.contains("not a WebAssembly component"), "{stderr}");
}

#[test]
fn plugins_lists_a_directory_with_the_error_of_each_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), &guest::wasm("database_status"), "database-status");
    // The same plugin under another file name: a file is named after its plugin.
    stage(dir.path(), &guest::wasm("database_status"), "e-twin");
    std::fs::write(dir.path().join("f-bad.wasm"), b"not a component").expect("write");
    let out = kreflex(&["plugins", "--json", "--dir", dir.path().to_str().expect("utf8")], None);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows: Vec<(String, String)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|p| {
            let file = p["file"].as_str().and_then(|f| f.rsplit('/').next()).unwrap_or_default().to_owned();
            (file, p["lastError"].as_str().map_or_else(|| p["name"].to_string(), str::to_owned))
        })
        .collect();
    assert_eq!(rows[0], ("database-status.wasm".to_owned(), "\"database-status\"".to_owned()));
    assert!(rows[1].1.contains("e-twin.wasm: the plugin declares the name \"database-status\""), "{rows:?}");
    assert!(rows[2].1.contains("not a WebAssembly component"), "{rows:?}");

    let table = kreflex(&["plugins", "--dir", dir.path().to_str().expect("utf8")], None);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("NAME") && text.contains("database-status   0.1.0"), "{text}");
}
