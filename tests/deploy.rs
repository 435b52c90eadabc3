//! What a cluster install uses: zstd-compressed plugins (the route for components too large
//! for a ConfigMap) served like plain ones, and the kustomize manifests in `deploy/`: they
//! build with `kubectl kustomize` (skipped with a message when kubectl is absent, unless
//! `KREFLEX_REQUIRE_KUBECTL=1`), every object is its k8s-openapi type with no unknown field,
//! kreflex's containers are hardened, the committed RBAC is what `kreflex rbac` prints, and
//! the embedded API server accepts a server-side dry run of the base.

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

// --- The kustomize manifests (deploy/) -----------------------------------------------------

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example plugin where the base's configMapGenerator takes it from, built and put there
/// by the script deploy/build-image.sh runs, once per test binary.
fn staged_plugin() -> &'static Path {
    static STAGED: OnceLock<std::path::PathBuf> = OnceLock::new();
    STAGED.get_or_init(|| {
        let out = Command::new("bash").arg(root().join("deploy/stage-plugins.sh")).output().expect("stage-plugins.sh");
        assert!(out.status.success(), "deploy/stage-plugins.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
        std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// `kubectl kustomize DIR`, as JSON documents.
fn kustomize(dir: &str) -> Vec<Value> {
    staged_plugin();
    let out = Command::new("kubectl").args(["kustomize", dir]).current_dir(root()).output().expect("kubectl runs");
    assert!(out.status.success(), "kubectl kustomize {dir}: {}", String::from_utf8_lossy(&out.stderr));
    kreflex::offline::parse_documents(&String::from_utf8_lossy(&out.stdout)).expect("kustomize prints YAML")
}

/// `doc` read as a `T` and written back: equal to `doc` only if `T` knows every field.
fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Value {
    let what = format!("{} {}", doc["kind"], doc["metadata"]["name"]);
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    serde_json::to_value(typed).expect("serializes")
}

/// kustomize wraps a ConfigMap's base64 `binaryData` at 70 columns; the API server's decoder
/// (Go's) skips the line breaks, k8s-openapi's does not: they are dropped before comparing.
fn unwrapped(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(data) = doc.get_mut("binaryData").and_then(Value::as_object_mut) {
        for v in data.values_mut() {
            *v = Value::String(v.as_str().unwrap_or_default().replace('\n', ""));
        }
    }
    doc
}

/// Every object of `docs` as its k8s-openapi type, with no field lost on the way.
fn assert_known_types(dir: &str, docs: &[Value]) {
    use k8s_openapi::api::{core::v1 as core, networking::v1 as net, policy::v1 as policy, rbac::v1 as rbac};
    for doc in &docs.iter().map(unwrapped).collect::<Vec<_>>() {
        let back = match doc["kind"].as_str().unwrap_or_default() {
            "Namespace" => roundtrip::<core::Namespace>(doc),
            "ServiceAccount" => roundtrip::<core::ServiceAccount>(doc),
            "ConfigMap" => roundtrip::<core::ConfigMap>(doc),
            "Service" => roundtrip::<core::Service>(doc),
            "Role" => roundtrip::<rbac::Role>(doc),
            "RoleBinding" => roundtrip::<rbac::RoleBinding>(doc),
            "ClusterRole" => roundtrip::<rbac::ClusterRole>(doc),
            "ClusterRoleBinding" => roundtrip::<rbac::ClusterRoleBinding>(doc),
            "Deployment" => roundtrip::<Deployment>(doc),
            "PodDisruptionBudget" => roundtrip::<policy::PodDisruptionBudget>(doc),
            "NetworkPolicy" => roundtrip::<net::NetworkPolicy>(doc),
            other => panic!("{dir}: no k8s-openapi type checked for kind {other:?}"),
        };
        assert_eq!(&back, doc, "{dir}: a field of this {} is unknown to its type", doc["kind"]);
    }
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn deployment(docs: &[Value], name: &str) -> Deployment {
    serde_json::from_value(find(docs, "Deployment", name).clone()).expect("a Deployment")
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.template.spec.as_ref().expect("pod spec")
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no container {name}"))
}

/// The restricted Pod Security Standard and then some: non-root, read-only root, no
/// capabilities, no privilege escalation, the runtime's seccomp profile.
fn assert_hardened(c: &Container) {
    let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{}: no securityContext", c.name));
    assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
    let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone()).unwrap_or_default();
    assert_eq!(drop, ["ALL"], "{}", c.name);
    assert!(sc.capabilities.as_ref().is_none_or(|c| c.add.is_none()), "{}", c.name);
    let r = c.resources.as_ref().unwrap_or_else(|| panic!("{}: no resources", c.name));
    for key in ["cpu", "memory"] {
        assert!(r.requests.as_ref().is_some_and(|q| q.contains_key(key)), "{}: no {key} request", c.name);
        assert!(r.limits.as_ref().is_some_and(|q| q.contains_key(key)), "{}: no {key} limit", c.name);
    }
}

/// kreflex's container: hardened, runs with leader election on /plugins, serves its probes
/// on the `metrics` port, knows its Pod, caches on a writable emptyDir.
fn assert_kreflex(pod: &PodSpec, c: &Container, lease: &[&str]) {
    assert_hardened(c);
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()), Some("RuntimeDefault"));
    let args: Vec<&str> = c.args.iter().flatten().map(String::as_str).collect();
    let mut expected = vec!["run", "--plugins", "/plugins", "--leader-elect"];
    expected.extend(lease);
    expected.extend(["--metrics-addr", "0.0.0.0:9090", "--cache-dir", "/var/cache/kreflex"]);
    assert_eq!(&args[..expected.len()], expected, "{args:?}");
    let env: Vec<(&str, &str)> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.as_str(), e.value_from.as_ref()?.field_ref.as_ref()?.field_path.as_str())))
        .collect();
    assert!(env.contains(&("POD_NAME", "metadata.name")) && env.contains(&("POD_NAMESPACE", "metadata.namespace")));
    let port = c.ports.iter().flatten().find(|p| p.name.as_deref() == Some("metrics")).expect("metrics port");
    assert_eq!(port.container_port, 9090);
    for (probe, path) in [(&c.liveness_probe, "/healthz"), (&c.readiness_probe, "/readyz")] {
        let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).unwrap_or_else(|| panic!("no {path} probe"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("metrics".into()));
    }
    let volume_at = |path: &str| {
        let mount = c.volume_mounts.iter().flatten().find(|m| m.mount_path == path).unwrap_or_else(|| panic!("{path}"));
        pod.volumes.iter().flatten().find(|v| v.name == mount.name).expect("mounted volume").clone()
    };
    assert!(volume_at("/var/cache/kreflex").empty_dir.is_some(), "the artifact cache is an emptyDir");
    assert!(volume_at("/tmp").empty_dir.is_some());
    let pod_sc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(pod.termination_grace_period_seconds.is_some_and(|s| s > 30), "longer than the 30 s drain");
}

#[test]
fn the_base_builds_into_known_objects_with_a_hardened_deployment() {
    if !have_kubectl("the deploy/ kustomize tests") {
        return;
    }
    let docs = kustomize("deploy/");
    assert_known_types("deploy/", &docs);
    assert_eq!(docs[0]["kind"], "Namespace");
    let d = deployment(&docs, "kreflex");
    assert_eq!(d.spec.replicas, Some(2));
    let pod = pod(&d);
    assert_eq!(pod.service_account_name.as_deref(), Some("kreflex"));
    assert!(!pod.topology_spread_constraints.iter().flatten().collect::<Vec<_>>().is_empty());
    let c = container(pod, "kreflex");
    assert_kreflex(pod, c, &[]);
    assert!(c.args.iter().flatten().any(|a| a == "--impersonate"), "plugins write as their own accounts");
    let plugins = pod.volumes.iter().flatten().find(|v| v.name == "plugins").expect("plugins volume");
    assert_eq!(plugins.config_map.as_ref().map(|c| c.name.as_str()), Some("kreflex-plugins"));

    let cm = find(&docs, "ConfigMap", "kreflex-plugins");
    let wasm = std::fs::read(staged_plugin()).expect("staged plugin");
    use base64::Engine as _;
    let held = base64::engine::general_purpose::STANDARD
        .decode(unwrapped(cm)["binaryData"]["database-status.wasm"].as_str().expect("the plugin, as binaryData"))
        .expect("base64");
    assert!(held == wasm, "the ConfigMap holds the example plugin");
    assert_eq!(find(&docs, "PodDisruptionBudget", "kreflex")["spec"]["minAvailable"], 1);
    let svc = find(&docs, "Service", "kreflex-metrics");
    assert_eq!(svc["metadata"]["labels"]["app.kubernetes.io/name"], "kreflex");
    assert_eq!(svc["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(svc["spec"]["ports"][0]["port"], 9090);
    let np = find(&docs, "NetworkPolicy", "kreflex");
    assert_eq!(np["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["ingress"], serde_json::json!([{"ports": [{"port": "metrics", "protocol": "TCP"}]}]));
    for rule in np["spec"]["egress"].as_array().expect("egress rules") {
        let ports: Vec<i64> =
            rule["ports"].as_array().expect("ports").iter().filter_map(|p| p["port"].as_i64()).collect();
        assert!(ports.iter().all(|p| [53, 443, 6443].contains(p)), "only the API server and DNS: {rule}");
    }
}

#[test]
fn the_sidecar_overlay_runs_kreflex_hardened_beside_the_application() {
    if !have_kubectl("the deploy/ kustomize tests") {
        return;
    }
    let docs = kustomize("deploy/sidecar/");
    assert_known_types("deploy/sidecar/", &docs);
    assert!(!docs.iter().any(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "kreflex"));
    let app = deployment(&docs, "example-app");
    let pod = pod(&app);
    assert_eq!(pod.containers.len(), 2);
    assert_hardened(container(pod, "app"));
    assert_kreflex(pod, container(pod, "kreflex"), &["--lease-name", "example-app-kreflex"]);
    let svc = find(&docs, "Service", "kreflex-metrics");
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app.kubernetes.io/name": "example-app"}));
}

#[test]
fn the_large_plugins_overlay_copies_plugins_from_an_image_into_an_empty_dir() {
    if !have_kubectl("the deploy/ kustomize tests") {
        return;
    }
    let docs = kustomize("deploy/large-plugins/");
    assert_known_types("deploy/large-plugins/", &docs);
    assert!(!docs.iter().any(|d| d["kind"] == "ConfigMap"), "no plugin ConfigMap");
    let d = deployment(&docs, "kreflex");
    let pod = pod(&d);
    assert_kreflex(pod, container(pod, "kreflex"), &[]);
    let plugins = pod.volumes.iter().flatten().find(|v| v.name == "plugins").expect("plugins volume");
    assert!(plugins.empty_dir.is_some() && plugins.config_map.is_none(), "{plugins:?}");
    let init = pod.init_containers.iter().flatten().find(|c| c.name == "plugins").expect("init container");
    assert_hardened(init);
    assert!(init.volume_mounts.iter().flatten().any(|m| m.name == "plugins" && m.read_only != Some(true)));
}

/// deploy/base/rbac.yaml is what `kreflex rbac` prints for the example plugin, with the
/// arguments deploy/build-image.sh gives it.
#[test]
fn the_committed_rbac_is_what_kreflex_rbac_prints_for_the_example_plugin() {
    const RBAC_ARGS: [&str; 4] = ["--namespace", "kreflex-system", "--no-namespace", "--no-cache"];
    let out = Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .arg("rbac")
        .arg(guest::wasm("database_status"))
        .args(RBAC_ARGS)
        .output()
        .expect("kreflex rbac runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    let committed = std::fs::read_to_string(root().join("deploy/base/rbac.yaml")).expect("deploy/base/rbac.yaml");
    let header = committed.strip_suffix(printed.as_ref()).unwrap_or_else(|| {
        panic!("deploy/base/rbac.yaml drifted from `kreflex rbac`; run deploy/build-image.sh. It prints:\n{printed}")
    });
    assert!(header.lines().all(|l| l.starts_with("# ")), "only the generated header precedes it: {header}");
}

/// `kubectl apply --dry-run=server` of the base against the embedded API server: every
/// object of a kind the server serves is accepted (the Namespace is created for real first,
/// as a server refuses objects in a namespace that does not exist). Kinds it does not serve
/// are named on stderr: the embedded server stores only the kinds kreflex's tests need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_is_accepted_by_a_server_side_dry_run() {
    if !have_kubectl("the deploy/ kustomize tests") {
        return;
    }
    let s = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    s.write_kubeconfig(&kc).expect("kubeconfig");
    let discovery = kube::discovery::Discovery::new(s.client()).run().await.expect("discovery");
    let docs = kustomize("deploy/");
    let (served, not_served): (Vec<Value>, Vec<Value>) = docs.into_iter().partition(|d| {
        let (group, version) = d["apiVersion"].as_str().unwrap_or_default().rsplit_once('/').unwrap_or(("", "v1"));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, d["kind"].as_str().unwrap_or_default());
        discovery.resolve_gvk(&gvk).is_some()
    });
    let kinds = |docs: &[Value]| docs.iter().map(|d| d["kind"].as_str().unwrap_or_default().to_owned()).collect();
    let served_kinds: std::collections::BTreeSet<String> = kinds(&served);
    for kind in ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap"]
    {
        assert!(served_kinds.contains(kind), "the embedded server serves {kind}");
    }
    let skipped: std::collections::BTreeSet<String> = kinds(&not_served);
    if !skipped.is_empty() {
        eprintln!("NOTE: the embedded API server does not serve {skipped:?}; those objects were not dry-run");
    }
    let kubectl = |args: &[&str], input: &[Value]| {
        let file = dir.path().join("objects.json");
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": input});
        std::fs::write(&file, list.to_string()).expect("write");
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .arg("-f")
            .arg(&file)
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "kubectl {args:?}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    // kubectl's own schema check needs the server's OpenAPI documents of the built-in kinds;
    // the schemas are checked by `assert_known_types` (k8s-openapi) above, the server here.
    let (namespaces, rest): (Vec<Value>, Vec<Value>) = served.into_iter().partition(|d| d["kind"] == "Namespace");
    kubectl(&["apply", "--validate=false"], &namespaces);
    let out = kubectl(&["apply", "--validate=false", "--dry-run=server"], &rest);
    assert_eq!(out.lines().count(), rest.len(), "one line per object: {out}");
    assert!(out.lines().all(|l| l.ends_with("(server dry run)")), "{out}");
}
