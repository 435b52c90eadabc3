//! What a cluster install uses: zstd-compressed plugins (the route for components too large
//! for a ConfigMap) served like plain ones, and the kustomize manifests in `deploy/`.

mod common;
mod guest;

use common::*;
use std::path::Path;

/// Writes `wasm` compressed as `<name>.wasm.zst` into `dir`.
fn stage_compressed(dir: &Path, wasm: &Path, name: &str) {
    let bytes = std::fs::read(wasm).expect("component");
    let compressed = zstd::encode_all(&bytes[..], 19).expect("compress");
    assert!(compressed.len() < bytes.len() / 2, "{} of {} bytes", compressed.len(), bytes.len());
    let tmp = dir.join(format!(".{name}.wasm.zst.tmp"));
    std::fs::write(&tmp, compressed).expect("write");
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm.zst"))).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compressed_plugin_is_served_like_a_plain_one_and_a_plain_twin_is_refused_naming_both() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    stage_compressed(dir.path(), &guest::wasm("database_status"), "database-status");
    let e = start_engine(&s, dir.path(), |config| config.reload = None).await;
    create_database(&c, database("orders", "postgres")).await;
    eventually("orders is Ready", || async { state_of(&c, "orders").await.as_deref() == Some("Ready") }).await;

    stage(dir.path(), &guest::wasm("database_status"), "database-status");
    let (loaded, errors) = e.rescan().await;
    assert!(loaded.is_empty(), "{loaded:?}");
    let (plain, compressed) = (dir.path().join("database-status.wasm"), dir.path().join("database-status.wasm.zst"));
    assert_eq!(errors.len(), 2, "one error per file: {errors:?}");
    for error in &errors {
        let names_both = [&plain, &compressed].iter().all(|f| error.contains(&f.display().to_string()));
        assert!(names_both, "{error}");
    }
    // The version in service keeps serving.
    create_database(&c, database("legacy", "oracle")).await;
    eventually("legacy is handled", || async { state_of(&c, "legacy").await.as_deref() == Some("Failed") }).await;

    std::fs::remove_file(&compressed).expect("remove");
    let (loaded, errors) = e.rescan().await;
    assert_eq!((loaded, errors), (vec!["database-status".to_owned()], vec![]), "the plain file alone loads");
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compressed_plugin_must_declare_the_name_it_is_filed_under() {
    let s = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let e = start_engine(&s, dir.path(), |config| config.reload = None).await;
    stage_compressed(dir.path(), &guest::wasm("database_status"), "squatter");
    let (loaded, errors) = e.rescan().await;
    assert!(loaded.is_empty());
    let file = dir.path().join("squatter.wasm.zst").display().to_string();
    assert!(
        errors.iter().any(|e| e.contains(&file) && e.contains("declares the name \"database-status\"")),
        "{errors:?}"
    );
    e.shutdown().await;
}
