//! Conformance: the `database-status` example in every language, built with its own build
//! script, run through one recorded event stream (`tests/conformance/events.json`, the kubectl
//! watch format) with `kreflex test`; every language must produce exactly the actions in
//! `tests/conformance/expected.jsonl` (the specification in `plugins/README.md`, as output).
//!
//! A language whose toolchain is missing (its build script exits 3) is skipped with a message
//! naming it, unless `KREFLEX_CONFORMANCE_REQUIRE=all` (CI sets it), where a skip fails.
//!
//! The tests here run at once and may build the same language concurrently (also with other
//! test binaries): each build script installs its toolchain once under a lock and serializes
//! its own builds (`plugins/build-common.sh`). Builds get `KREFLEX` = this test's kreflex
//! binary, so no build script falls back to a `cargo run --release` of the repository.

mod common;
mod guest;

use common::test_reports;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const LANGS: [&str; 5] = ["rust", "c", "go", "js", "python"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether every language must be built (`KREFLEX_CONFORMANCE_REQUIRE=all`): then a missing
/// toolchain fails instead of skipping.
fn require_all() -> bool {
    std::env::var("KREFLEX_CONFORMANCE_REQUIRE").is_ok_and(|v| v == "all")
}

/// Runs `plugins/<lang>/build.sh` on `plugin` (a folder name or path) and returns the path
/// of the built `<name>.wasm`; `Err` with the reason if the language's toolchain is missing
/// (the script exits 3), which fails under [`require_all`].
fn build_script(lang: &str, plugin: &Path, name: &str) -> Result<PathBuf, String> {
    let script = root().join(format!("plugins/{lang}/build.sh"));
    let out = Command::new("bash")
        .arg(&script)
        .arg(plugin)
        .env("KREFLEX", env!("CARGO_BIN_EXE_kreflex"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(format!("{name}.wasm"))),
        Some(3) => {
            assert!(!require_all(), "{lang}: toolchain missing and KREFLEX_CONFORMANCE_REQUIRE=all: {stderr}");
            Err(stderr.trim().to_owned())
        }
        _ => panic!("{} {} failed:\n{stderr}", script.display(), plugin.display()),
    }
}

/// Builds `database-status` for `lang`; `Err` with the reason if its toolchain is missing.
fn build(lang: &str) -> Result<PathBuf, String> {
    if lang == "rust" {
        return Ok(guest::wasm("database_status"));
    }
    build_script(lang, Path::new("database-status"), "database-status")
}

fn actions(wasm: &Path, cache: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .args(["test", "--no-filter", "--event"])
        .arg(root().join("tests/conformance/events.json"))
        .arg("--cache-dir")
        .arg(cache)
        .arg(wasm)
        .output()
        .expect("kreflex test runs");
    assert!(out.status.success(), "kreflex test {}: {}", wasm.display(), String::from_utf8_lossy(&out.stderr));
    test_reports(&out)
}

#[test]
fn every_language_produces_the_same_actions_for_the_recorded_stream() {
    let expected: Vec<Value> = std::fs::read_to_string(root().join("tests/conformance/expected.jsonl"))
        .expect("expected.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut checked = Vec::new();
    for lang in LANGS {
        let wasm = match build(lang) {
            Ok(w) => w,
            Err(why) => {
                eprintln!("SKIPPED conformance for {lang}: {why}");
                continue;
            }
        };
        let got = actions(&wasm, cache.path());
        assert_eq!(got.len(), expected.len(), "{lang}: one report per event");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e, "{lang} differs from the specification at event {}", e["index"]);
        }
        checked.push(lang);
    }
    eprintln!("conformance: identical actions from {checked:?}");
    assert!(checked.contains(&"rust"), "the reference implementation always runs");
}

/// `kreflex new` for every language: the template builds with the language's build script
/// (or cargo) and passes `kreflex test` on the events it comes with.
#[test]
fn every_template_builds_and_passes_kreflex_test() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for lang in LANGS {
        // The layout of plugins/<lang>/: JS imports its helpers from the parent folder.
        let parent = tmp.path().join(lang);
        std::fs::create_dir_all(&parent).expect("mkdir");
        if lang == "js" {
            std::fs::copy(root().join("plugins/js/kreflex.js"), parent.join("kreflex.js")).expect("helpers");
        }
        let name = format!("new-{lang}");
        let out = Command::new(env!("CARGO_BIN_EXE_kreflex"))
            .args(["new", &name, "--lang", lang, "--dir"])
            .arg(&parent)
            .output()
            .expect("kreflex new");
        assert!(out.status.success(), "kreflex new --lang {lang}: {}", String::from_utf8_lossy(&out.stderr));
        let dir = parent.join(&name);
        let wasm = if lang == "rust" {
            // Share the guest target directory so the SDK's dependencies are built once.
            guest::wasm_dir();
            let target = root().join("plugins/rust/target");
            let out = Command::new("cargo")
                .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
                .arg(dir.join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo build");
            assert!(out.status.success(), "building the Rust template: {}", String::from_utf8_lossy(&out.stderr));
            target.join("wasm32-wasip2/release/new_rust.wasm")
        } else {
            match build_script(lang, &dir, &name) {
                Ok(wasm) => wasm,
                Err(why) => {
                    eprintln!("SKIPPED template for {lang}: {why}");
                    continue;
                }
            }
        };
        let out = Command::new(env!("CARGO_BIN_EXE_kreflex"))
            .args(["test", "--no-cache", "--event"])
            .arg(dir.join("events.json"))
            .arg(&wasm)
            .output()
            .expect("kreflex test");
        assert!(out.status.success(), "{lang} template: {}", String::from_utf8_lossy(&out.stderr));
        let reports = test_reports(&out);
        let messages: Vec<&str> = reports
            .iter()
            .filter_map(|r| r.pointer("/actions/0/body/status/message").and_then(Value::as_str))
            .collect();
        assert_eq!(messages, [format!("{name} saw generation 1"), format!("{name} saw generation 2")], "{lang}");
        if lang != "rust" {
            std::fs::remove_file(&wasm).ok();
        }
    }
}

/// The hand-written Go host bindings reach every host call with the right layout: config,
/// get (found and missing), list with a selector, and a denied list's error.
#[test]
fn go_host_bindings_reach_every_host_call() {
    let wasm = match build_script("go", &root().join("plugins/go/fixtures/host-calls"), "host-calls") {
        Ok(wasm) => wasm,
        Err(why) => {
            eprintln!("SKIPPED Go host bindings: {why}");
            return;
        }
    };
    let config = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(config.path(), r#"{"greeting":"hi"}"#).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .args(["test", "--no-cache", "--event"])
        .arg(root().join("examples/events/database-watch.json"))
        .arg("--objects")
        .arg(root().join("examples/databases"))
        .arg("--config")
        .arg(config.path())
        .arg(&wasm)
        .output()
        .expect("kreflex test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().expect("a report")).expect("JSON");
    let report = &first["actions"][0]["body"]["status"]["report"];
    assert_eq!(report["config"], r#"{"greeting":"hi"}"#);
    assert_eq!(
        (&report["found"], &report["missingFound"], &report["getErr"]),
        (&json!(true), &json!(false), &json!(""))
    );
    assert!(report["getLen"].as_u64().is_some_and(|n| n > 100), "{report}");
    assert_eq!((&report["listed"], &report["listErr"]), (&json!(1), &json!("")), "{report}");
    assert!(report["denied"].as_str().is_some_and(|e| e.contains("may not list secrets")), "{report}");
}
