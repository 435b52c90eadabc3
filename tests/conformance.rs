//! Conformance: the `database-status` example in every language, built with its own build
//! script, run through one recorded event stream (`tests/conformance/events.json`, the kubectl
//! watch format) with `kreflex test`; every language must produce exactly the actions in
//! `tests/conformance/expected.jsonl` (the specification in `plugins/README.md`, as output).
//!
//! A language whose toolchain is missing (its build script exits 3) is skipped with a message
//! naming it, unless `KREFLEX_CONFORMANCE_REQUIRE=all` (CI sets it), where a skip fails.

mod guest;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const LANGS: [&str; 4] = ["rust", "c", "js", "python"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds `database-status` for `lang`; `Err` with the reason if its toolchain is missing.
fn build(lang: &str) -> Result<PathBuf, String> {
    if lang == "rust" {
        return Ok(guest::wasm("database_status"));
    }
    let script = root().join(format!("plugins/{lang}/build.sh"));
    let out = Command::new("bash")
        .arg(&script)
        .arg("database-status")
        .env("KREFLEX", env!("CARGO_BIN_EXE_kreflex"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("database-status.wasm")),
        Some(3) => Err(stderr.trim().to_owned()),
        _ => panic!("{} failed:\n{stderr}", script.display()),
    }
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
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report per line"))
        .collect()
}

#[test]
fn every_language_produces_the_same_actions_for_the_recorded_stream() {
    let expected: Vec<Value> = std::fs::read_to_string(root().join("tests/conformance/expected.jsonl"))
        .expect("expected.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let require_all = std::env::var("KREFLEX_CONFORMANCE_REQUIRE").is_ok_and(|v| v == "all");
    let cache = tempfile::tempdir().expect("tempdir");
    let mut checked = Vec::new();
    for lang in LANGS {
        let wasm = match build(lang) {
            Ok(w) => w,
            Err(why) => {
                assert!(!require_all, "{lang}: toolchain missing and KREFLEX_CONFORMANCE_REQUIRE=all: {why}");
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
