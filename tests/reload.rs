//! Hot reload with real files in a temp dir, the real engine and the embedded API server:
//! drop a plugin in, replace it, break it, remove it, write it slowly, swap a
//! ConfigMap-style `..data` symlink, swap repeatedly under a stream of changes, and rewrite
//! a running plugin's file in place, watched with inotify and by polling.

mod common;
mod guest;

use common::*;
use kreflex::engine::Engine;
use kreflex::plugins::ReloadConfig;
use kreflex::wasm::Compiler;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

async fn engine(server: &kreflex::apiserver::ApiServer, dir: &Path) -> Engine {
    engine_with(server, dir, ReloadConfig { debounce: Duration::from_millis(100), poll: None }).await
}

async fn engine_with(server: &kreflex::apiserver::ApiServer, dir: &Path, reload: ReloadConfig) -> Engine {
    start_engine(server, dir, |config| {
        // As the `kreflex` binary does: plugins are compiled by a `kreflex precompile` child.
        config.wasm.compiler =
            Compiler::Process { exe: env!("CARGO_BIN_EXE_kreflex").into(), timeout: Duration::from_secs(120) };
        config.reload = Some(reload);
        config.admin_addr = Some(([127, 0, 0, 1], 0).into());
        config.report_object = Some("v1/ConfigMap/default/kreflex".parse().expect("ref"));
    })
    .await
}

/// Installs the chaos fixture as `file.wasm` with a version tag in its configuration.
fn install(dir: &Path, file: &str, name: &str, tag: &str) {
    stage_config(dir, file, &json!({"config": {"name": name, "tag": tag}}));
    stage(dir, &guest::wasm("fixture_chaos"), file);
}

async fn bump(c: &kube::Client, name: &str, size: &str) {
    databases(c)
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": size}})))
        .await
        .expect("update");
}

fn loaded(e: &Engine) -> Vec<String> {
    e.registry.load().plugins.keys().cloned().collect()
}

fn reloads(e: &Engine, result: &str) -> u64 {
    e.metrics.reloads.get_or_create(&kreflex::ops::ReloadLabels { result: result.into() }).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_in_replaced_broken_and_removed_plugins() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&s, dir.path()).await;
    create_database(&c, database("live", "postgres")).await;

    install(dir.path(), "echo", "echo", "v1");
    eventually("v1 reacts", || async { report(&c, "live").await["tag"] == "v1" }).await;

    install(dir.path(), "echo", "echo", "v2");
    eventually("v2 is loaded", || async {
        e.registry.load().get("echo").is_some_and(|p| p.config.as_deref().is_some_and(|c| c.contains("v2")))
    })
    .await;
    bump(&c, "live", "2Gi").await;
    eventually("the next change is handled by v2", || async { report(&c, "live").await["tag"] == "v2" }).await;

    // Garbage over a good version: v2 keeps running, the error is counted.
    let errors_before = reloads(&e, "error");
    std::fs::write(dir.path().join("echo.wasm"), b"not a component").expect("corrupt");
    eventually("the error is recorded", || async { reloads(&e, "error") > errors_before }).await;
    assert_eq!(loaded(&e), ["echo"]);
    eventually("the failure is a Warning Event on the report object", || async {
        events_about(&c, "kreflex").await.iter().any(|ev| {
            ev["reason"] == "PluginLoadFailed"
                && ev["type"] == "Warning"
                && ev["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("echo.wasm") && n.contains("echo 0.1.0 keeps running"))
        })
    })
    .await;
    // `kreflex plugins` against the admin endpoint shows the running version and the error.
    let admin = e.admin_addr.expect("admin served").to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .args(["plugins", "--json", "--admin", &admin])
        .output()
        .expect("kreflex plugins");
    assert_eq!(out.status.code(), Some(1), "a file with an error makes `kreflex plugins` fail");
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let echo = &list[0];
    assert_eq!((&echo["name"], &echo["version"]), (&json!("echo"), &json!("0.1.0")));
    assert!(echo["lastError"].as_str().is_some_and(|m| m.contains("not a WebAssembly component")), "{echo}");
    bump(&c, "live", "3Gi").await;
    eventually("v2 still handles changes", || async { report(&c, "live").await["seenGeneration"] == 3 }).await;

    // A component of another world, and a file not named after the plugin it holds (`twin.wasm`
    // declaring `echo`): refused too.
    std::fs::copy(guest::wasm("fixture_other_world"), dir.path().join("echo.wasm")).expect("copy");
    install(dir.path(), "twin", "echo", "dup");
    eventually("both are refused", || async { reloads(&e, "error") >= errors_before + 3 }).await;
    assert_eq!(loaded(&e), ["echo"]);

    // Removal unloads.
    std::fs::remove_file(dir.path().join("echo.wasm")).expect("remove");
    std::fs::remove_file(dir.path().join("twin.wasm")).expect("remove");
    eventually("echo is unloaded", || async { loaded(&e).is_empty() }).await;
    let before = report(&c, "live").await;
    bump(&c, "live", "4Gi").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(report(&c, "live").await, before, "a removed plugin still reacted");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_written_file_is_never_loaded() {
    let s = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let e = engine(&s, dir.path()).await;
    let bytes = guest::wasm_bytes("fixture_chaos");
    let path = dir.path().join("chaos.wasm");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("first half");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(loaded(&e).is_empty(), "a half-written file was loaded");
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    std::io::Write::write_all(&mut f, &bytes[bytes.len() / 2..]).expect("second half");
    drop(f);
    eventually("the complete file is loaded", || async { loaded(&e) == ["chaos"] }).await;
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configmap_style_symlink_swap_loads_the_new_version_once() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // The kubelet's layout: ..2026_v1/{files}, ..data -> ..2026_v1, NAME -> ..data/NAME.
    let version = |v: &str| {
        let d = root.join(format!("..2026_{v}"));
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::copy(guest::wasm("fixture_chaos"), d.join("cm.wasm")).expect("wasm");
        std::fs::write(d.join("cm.json"), json!({"config": {"name": "cm", "tag": v}}).to_string()).expect("json");
    };
    version("v1");
    std::os::unix::fs::symlink("..2026_v1", root.join("..data")).expect("..data");
    std::os::unix::fs::symlink("..data/cm.wasm", root.join("cm.wasm")).expect("link");
    std::os::unix::fs::symlink("..data/cm.json", root.join("cm.json")).expect("link");
    let e = engine(&s, root).await;
    create_database(&c, database("mounted", "postgres")).await;
    eventually("v1 reacts", || async { report(&c, "mounted").await["tag"] == "v1" }).await;
    let ok_before = reloads(&e, "ok");

    version("v2");
    std::os::unix::fs::symlink("..2026_v2", root.join("..data_tmp")).expect("tmp link");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("atomic swap");
    bump(&c, "mounted", "5Gi").await;
    eventually("v2 reacts", || async { report(&c, "mounted").await["tag"] == "v2" }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reloads(&e, "ok"), ok_before + 1, "the new version must be loaded exactly once");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_swaps_under_a_stream_of_changes_lose_nothing() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    install(dir.path(), "swap", "swap", "v0");
    let e = engine(&s, dir.path()).await;
    let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    for n in &names {
        create_database(&c, database(n, "postgres")).await;
    }
    // The writer keeps changing objects until every version has been swapped in.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let c = c.clone();
        let names = names.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) && round < 500 {
                round += 1;
                for n in &names {
                    bump(&c, n, &format!("{round}Gi")).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    for v in 1..=6 {
        let tag = format!("v{v}");
        install(dir.path(), "swap", "swap", &tag);
        // Each version is swapped in while the changes keep coming (a load takes longer than
        // the writes between two swaps on a busy machine; waiting makes every swap count).
        eventually("the new version is swapped in", || async {
            let loaded = e.registry.load().get("swap").and_then(|p| p.config.clone());
            loaded.is_some_and(|config| config.contains(&format!("\"{tag}\"")))
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    // Every object's last change was handled (by some version): none lost.
    for n in &names {
        let generation = databases(&c).get(n).await.expect("get").metadata.generation;
        eventually("the last change of every object was handled", || async {
            report(&c, n).await["seenGeneration"].as_i64() == generation
        })
        .await;
    }
    let list = databases(&c).list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), names.len());
    assert!(reloads(&e, "ok") >= 6);
    e.shutdown().await;
}

/// `component` with a custom section of `padding` zero bytes placed first: the same plugin,
/// a different and larger file, of which no prefix is a valid component.
fn padded(component: &[u8], padding: usize) -> Vec<u8> {
    fn leb128(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"kreflex-test-padding";
    let mut section = leb128(name.len());
    section.extend_from_slice(name);
    section.resize(section.len() + padding, 0);
    let mut out = component[..8].to_vec();
    out.push(0);
    out.extend(leb128(section.len()));
    out.extend(section);
    out.extend_from_slice(&component[8..]);
    out
}

/// Overwrites a running plugin's file in place the way a slow writer does (truncate, then
/// append small chunks, closing the file after each) and checks, while it writes, that the
/// running version stays loaded and nothing is counted as failed; then that the new version
/// is loaded exactly once.
async fn rewritten_in_place_keeps_the_running_version(poll: Option<Duration>) {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    install(dir.path(), "echo", "echo", "v1");
    // A quiet period well above the writer's pauses (a few ms), even on a loaded machine.
    let e = engine_with(&s, dir.path(), ReloadConfig { debounce: Duration::from_millis(400), poll }).await;
    assert_eq!(loaded(&e), ["echo"]);
    let (ok, errors, removed) = (reloads(&e, "ok"), reloads(&e, "error"), reloads(&e, "removed"));
    let new = padded(&guest::wasm_bytes("fixture_chaos"), 3 << 20);
    let new_hash = hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &new)));
    let path = dir.path().join("echo.wasm");
    let writer = std::thread::spawn(move || {
        std::fs::File::create(&path).expect("truncate");
        for chunk in new.chunks(4096) {
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
            std::io::Write::write_all(&mut f, chunk).expect("write");
            drop(f);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    while !writer.is_finished() {
        assert_eq!(loaded(&e), ["echo"], "the running plugin was unloaded while its file was being written");
        assert_eq!(reloads(&e, "error"), errors, "a file still being written was counted as a failed reload");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.join().expect("writer");
    eventually("the new version is loaded", || async {
        e.registry.load().get("echo").is_some_and(|p| p.plugin.hash() == new_hash)
    })
    .await;
    assert_eq!(
        (reloads(&e, "ok"), reloads(&e, "error"), reloads(&e, "removed")),
        (ok + 1, errors, removed),
        "one load of the complete file, no failure, no removal"
    );
    assert!(
        !events_about(&c, "kreflex").await.iter().any(|ev| ev["reason"] == "PluginLoadFailed"),
        "a file still being written was reported as a failed load"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_rewritten_in_place_keeps_running_until_the_new_version_loads() {
    rewritten_in_place_keeps_the_running_version(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_rewritten_in_place_keeps_running_until_the_new_version_loads_polling() {
    rewritten_in_place_keeps_the_running_version(Some(Duration::from_millis(50))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_that_stays_broken_is_reported_once() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let reload = ReloadConfig { debounce: Duration::from_millis(100), poll: Some(Duration::from_millis(50)) };
    let e = engine_with(&s, dir.path(), reload).await;
    std::fs::write(dir.path().join("broken.wasm"), b"not a component").expect("write");
    eventually("the broken file is judged", || async { reloads(&e, "error") == 1 }).await;
    // Other changes in the directory make it rescan again and again; the same content is
    // not judged again.
    for i in 0..5 {
        std::fs::write(dir.path().join("notes.txt"), i.to_string()).expect("write");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(reloads(&e, "error"), 1, "the same broken content was reported again");
    eventually("one Warning Event", || async {
        events_about(&c, "kreflex").await.iter().any(|ev| ev["reason"] == "PluginLoadFailed")
    })
    .await;
    let warnings = events_about(&c, "kreflex").await;
    let about_broken = warnings.iter().filter(|ev| {
        ev["reason"] == "PluginLoadFailed" && ev["note"].as_str().is_some_and(|n| n.contains("broken.wasm"))
    });
    assert_eq!(about_broken.count(), 1);
    e.shutdown().await;
}
