//! `kreflex dev`: everything a newcomer needs in one command and no cluster: the embedded
//! API server, the example CRD and sample `Database` objects, the example plugins (built
//! from `plugins/rust` unless a directory is given), and the engine, with a kubeconfig
//! and two kubectl commands to try. Ctrl-C drains in-flight work and exits cleanly.

use crate::apiserver::{ApiServer, ApiServerConfig};
use crate::engine::EngineConfig;
use crate::apply::classify::{Goal, classify, reached};
use anyhow::Context;
use kube::api::{DynamicObject, PostParams};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `kreflex dev` runs.
#[derive(Debug, Clone)]
pub struct DevConfig {
    /// Directory of plugins; `None`: the example plugins, built from `plugins/rust`.
    pub plugins: Option<PathBuf>,
    /// Port of the embedded API server.
    pub port: u16,
    /// Where to write the kubeconfig; `None`: `target/kreflex-dev.kubeconfig` of the source
    /// tree, where git ignores it.
    pub kubeconfig_out: Option<PathBuf>,
    /// Keep the API server's objects in this file across runs.
    pub state: Option<PathBuf>,
    /// Stop after this long; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// The engine (its plugin directory is replaced by the one above).
    pub engine: EngineConfig,
}

/// Runs `kreflex dev`.
pub async fn run(args: DevConfig) -> anyhow::Result<()> {
    let root = crate::repo::root();
    let plugins = match &args.plugins {
        Some(dir) => dir.clone(),
        None => build_example_plugins(&root).await?,
    };
    let kubeconfig_out = args.kubeconfig_out.clone().unwrap_or_else(|| root.join("target/kreflex-dev.kubeconfig"));
    if let Some(parent) = kubeconfig_out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let server = ApiServer::start(ApiServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], args.port)),
        state_file: args.state.clone(),
        ..ApiServerConfig::default()
    })
    .await?;
    server.write_kubeconfig(&kubeconfig_out)?;
    let client = server.client();
    let applied = apply_dir(&client, &root.join("examples/crds")).await?
        + apply_dir(&client, &root.join("examples/databases")).await?;
    let mut config = EngineConfig { plugins_dir: plugins.clone(), ..args.engine };
    if config.admin_addr.is_none() {
        // Serve the admin endpoint where `kreflex plugins` looks by default, if it is free.
        let addr: SocketAddr = crate::ops::DEFAULT_ADMIN_ADDR.parse()?;
        match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                drop(l);
                config.admin_addr = Some(addr);
            }
            Err(e) => tracing::warn!(%addr, error = %e, "admin endpoint not served (use --metrics-addr)"),
        }
    }
    let engine = crate::engine::Engine::start(server.kube_config(server.admin_token()), config).await?;
    let loaded: Vec<String> = engine.registry.load().plugins.keys().cloned().collect();
    let kc = kubeconfig_out.display();
    println!(
        "\nkreflex dev is running\n  API server: {}\n  kubeconfig: {kc}\n  plugins:    {} from {}\n  objects:    {applied} applied from examples/\n  admin:      {}\n\nTry, in another terminal:\n  kubectl --kubeconfig {kc} get databases -w\n  kubectl --kubeconfig {kc} patch database orders --type merge -p '{{\"spec\":{{\"size\":\"20Gi\"}}}}'\n  kubectl --kubeconfig {kc} get events\n\nCtrl-C to stop.",
        server.url(),
        if loaded.is_empty() { "none".to_owned() } else { loaded.join(", ") },
        plugins.display(),
        engine
            .admin_addr
            .map(|a| format!("http://{a}/metrics, /plugins (`kreflex plugins --admin {a}`)"))
            .unwrap_or_else(|| "not served".into()),
    );
    match args.duration {
        Some(d) => tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = crate::engine::shutdown_signal() => {}
        },
        None => crate::engine::shutdown_signal().await,
    }
    engine.shutdown().await;
    server.shutdown().await;
    Ok(())
}

/// Builds the Rust example plugins and stages them in a directory as `<name>.wasm`.
async fn build_example_plugins(root: &Path) -> anyhow::Result<PathBuf> {
    let script = root.join("plugins/rust/build.sh");
    println!("building the example plugins ({})...", script.display());
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .args(["-p", "database-status"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .with_context(|| format!("cannot run {}", script.display()))?;
    anyhow::ensure!(out.status.success(), "building the example plugins failed");
    let built = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = root.join("target/kreflex-dev-plugins");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(built.join("database_status.wasm"), dir.join("database-status.wasm"))
        .context("the example plugin was not built")?;
    Ok(dir)
}

/// Creates every object in the YAML files of `dir` (skipping ones that exist). CRDs are
/// waited for until their resource is served.
pub async fn apply_dir(client: &kube::Client, dir: &Path) -> anyhow::Result<usize> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    let mut n = 0;
    for p in paths {
        let text = std::fs::read_to_string(&p)?;
        for doc in crate::offline::parse_documents(&text).with_context(|| format!("cannot parse {}", p.display()))? {
            apply_object(client, doc).await.with_context(|| format!("applying {}", p.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Creates one object through discovery (retrying briefly while a new CRD's resource
/// appears). An existing object is left as it is.
pub async fn apply_object(client: &kube::Client, object: serde_json::Value) -> anyhow::Result<()> {
    let gvk = crate::model::Gvk::of(&object);
    let resources = crate::watch::Resources::new(client.clone());
    let mut attempt = 0;
    let resource = loop {
        match resources.resolve(&gvk).await {
            Ok(r) => break r,
            Err(e) if attempt < 50 => {
                attempt += 1;
                tracing::debug!(%gvk, error = %e, "waiting for the kind to be served");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("{gvk} is not served")),
        }
    };
    let obj: DynamicObject = serde_json::from_value(object)?;
    let api = resource.api(client, Some(obj.metadata.namespace.as_deref().unwrap_or("default")));
    match api.create(&PostParams { field_manager: Some("kreflex-dev".into()), ..Default::default() }, &obj).await {
        Ok(_) => Ok(()),
        Err(e) if reached(Goal::Exists, &classify(&e)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fake;

    /// `apply_object` used to match any 409 itself, so a create refused with 409 Conflict
    /// passed for an object that exists. Now [`classify`] decides: only AlreadyExists does.
    #[tokio::test]
    async fn only_an_existing_object_counts_as_created() {
        for (reason, ok) in [("AlreadyExists", true), ("Conflict", false)] {
            let (client, _) = fake::client(move |method, path| match (method, path) {
                (_, fake::DISCOVERY_PATH) => fake::discovery(),
                _ => fake::status(409, reason),
            });
            let created = apply_object(&client, fake::database(&[])).await;
            assert_eq!(created.is_ok(), ok, "409 {reason}: {created:?}");
        }
    }
}
