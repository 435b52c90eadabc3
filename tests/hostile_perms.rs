//! Hostile plugins against the permission boundary (issue 14, items 5, 6, 9, 10): each
//! fixture under `plugins/rust/fixtures/hostile-*` tries one hole, through the engine on
//! the embedded API server or through the real `kreflex` binary, and each test asserts the
//! contained outcome and that the well-behaved `database_status` plugin beside it keeps
//! its results.

mod common;
mod guest;

use common::*;
use kreflex::engine::{Engine, EngineConfig};
use kreflex::wasm::WasmConfig;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const SA_NAMESPACE: &str = "kreflex-system";

async fn engine(server: &kreflex::apiserver::ApiServer, dir: &Path, impersonate: bool) -> Engine {
    let config = EngineConfig {
        plugins_dir: dir.to_path_buf(),
        wasm: WasmConfig { cache_dir: Some(dir.join(".cache")), ..WasmConfig::default() },
        resync: None,
        reload: None,
        impersonation: impersonate.then(|| (kreflex::rbac::DEFAULT_USER_TEMPLATE.into(), SA_NAMESPACE.into())),
        ..EngineConfig::default()
    };
    let e = Engine::start(server.kube_config(server.admin_token()), config).await.expect("engine");
    tokio::time::timeout(Duration::from_secs(60), e.wait_synced()).await.expect("synced");
    e
}

fn stage(dir: &Path, component: &str, name: &str) {
    std::fs::copy(guest::wasm(component), dir.join(format!("{name}.wasm"))).expect("copy");
}

fn kreflex(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .args(args)
        .arg("--no-cache")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kreflex runs");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("kreflex ends")
}

fn wasm(component: &str) -> String {
    guest::wasm(component).display().to_string()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn configmaps(c: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(c.clone(), "default", &resource("", "v1", "ConfigMap", "configmaps"))
}

fn cluster_role_bindings(c: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(c.clone(), &resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings"))
}

async fn apply(c: &kube::Client, object: Value) {
    kreflex::dev::apply_object(c, object).await.expect("apply");
}

/// Events about `object` in `default`, as `(reason, note)`.
async fn events(c: &kube::Client, object: &str) -> Vec<(String, String)> {
    events_about(c, object)
        .await
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("reason"), s("note"))
        })
        .collect()
}

async fn ready(c: &kube::Client, name: &str) {
    eventually(&format!("the well-behaved plugin marks {name} Ready"), || async {
        state_of(c, name).await.as_deref() == Some("Ready")
    })
    .await;
}

/// Item 5: a subscription to ConfigMaps labelled `kreflex.io/public=true` lets the plugin
/// read those, not every ConfigMap of the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_through_a_subscription_see_only_what_it_selects() {
    let s = server().await;
    let c = s.client();
    let cm = |name: &str, labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": labels}, "data": {"k": "v"}})
    };
    apply(&c, cm("public", json!({"kreflex.io/public": "true"}))).await;
    apply(&c, cm("private", json!({}))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), "database_status", "database-status");
    stage(dir.path(), "fixture_hostile_reads", "hostile-reads");
    let e = engine(&s, dir.path(), false).await;
    assert!(e.registry.load().get("hostile-reads").is_some(), "an ordinary plugin loads");
    create_database(&c, database("orders", "postgres")).await;
    ready(&c, "orders").await;
    eventually("the hostile plugin reports what it read", || async {
        events(&c, "orders").await.iter().any(|(reason, _)| reason == "Seen")
    })
    .await;
    let seen = events(&c, "orders").await;
    let (_, note) = seen.iter().find(|(reason, _)| reason == "Seen").expect("Seen");
    assert_eq!(note, "list=public get-private=false", "the plugin read outside its subscription");
    e.shutdown().await;
}

/// Item 5: `kreflex rbac` grants the resource-level reads a subscription gives, and says
/// where a selector narrows them.
#[test]
fn rbac_grants_subscription_reads_and_notes_the_selector() {
    let out = kreflex(&["rbac", &wasm("fixture_hostile_reads"), &wasm("database_status")], None);
    let (yaml, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let role = yaml
        .split("---\n")
        .find(|d| d.contains("kind: Role\n") && d.contains("name: kreflex-hostile-reads"))
        .unwrap_or_else(|| panic!("no Role for the subscription's namespace:\n{yaml}"));
    assert!(role.contains("namespace: default") && role.contains("- configmaps"), "{role}");
    assert!(role.contains("label selector \"kreflex.io/public=true\""), "{role}");
    assert!(!role.contains("SENSITIVE"), "{role}");
    // The well-behaved plugin keeps its grants.
    assert!(yaml.contains("databases/status"), "{yaml}");
}

/// Item 6: a plugin declaring `create clusterrolebindings` is refused at load, and cannot
/// bind itself to cluster-admin even where the cluster would let its account do so.
/// The service accounts' namespace and a `cluster-admin` ClusterRole, as a cluster has them.
async fn namespace_and_cluster_admin(c: &kube::Client) {
    apply(c, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SA_NAMESPACE}})).await;
    apply(
        c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cluster-admin"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sensitive_plugin_is_refused_at_load_and_binds_nothing() {
    let s = server().await;
    let c = s.client();
    namespace_and_cluster_admin(&c).await;
    // What `kreflex rbac` used to grant both plugins (and kreflex's own reads).
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "plugins"},
            "rules": [
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterrolebindings"], "verbs": ["create"]},
                {"apiGroups": ["stable.example.com"], "resources": ["databases/status"], "verbs": ["get", "patch"]},
                {"apiGroups": ["events.k8s.io", ""], "resources": ["events"], "verbs": ["create", "patch"]}]}),
    )
    .await;
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "plugins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "plugins"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "kreflex-hostile-sensitive", "namespace": SA_NAMESPACE},
                {"kind": "ServiceAccount", "name": "kreflex-database-status", "namespace": SA_NAMESPACE}]}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), "database_status", "database-status");
    stage(dir.path(), "fixture_hostile_sensitive", "hostile-sensitive");
    let e = engine(&s, dir.path(), true).await;
    assert!(e.registry.load().get("hostile-sensitive").is_none(), "the sensitive plugin was loaded");
    create_database(&c, database("orders", "postgres")).await;
    ready(&c, "orders").await;
    assert!(cluster_role_bindings(&c).get_opt("hostile-is-admin").await.expect("get").is_none());
    e.shutdown().await;
}

/// Item 6: with the operator's allowance the plugin loads, and the embedded API server
/// refuses the escalation a real one refuses: binding cluster-admin without holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_allowed_plugin_still_cannot_escalate_through_the_api_server() {
    let s = server().await;
    let c = s.client();
    namespace_and_cluster_admin(&c).await;
    let out = kreflex(
        &[
            "rbac",
            &wasm("fixture_hostile_sensitive"),
            &wasm("database_status"),
            "--namespace",
            SA_NAMESPACE,
            "--allow-sensitive",
            "hostile-sensitive:clusterrolebindings.rbac.authorization.k8s.io",
        ],
        None,
    );
    let (yaml, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(yaml.contains("# SENSITIVE: create clusterrolebindings"), "{yaml}");
    for doc in kreflex::offline::parse_documents(&yaml).expect("yaml") {
        apply(&c, doc).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), "database_status", "database-status");
    stage(dir.path(), "fixture_hostile_sensitive", "hostile-sensitive");
    std::fs::write(
        dir.path().join("hostile-sensitive.json"),
        r#"{"allowSensitive": ["clusterrolebindings.rbac.authorization.k8s.io"]}"#,
    )
    .expect("plugin file");
    let e = engine(&s, dir.path(), true).await;
    assert!(e.registry.load().get("hostile-sensitive").is_some(), "allowed by its plugin file");
    create_database(&c, database("orders", "postgres")).await;
    ready(&c, "orders").await;
    let sa = format!("system:serviceaccount:{SA_NAMESPACE}:kreflex-hostile-sensitive");
    eventually("the API server refuses the binding", || async {
        s.stats().count(|k| k.user == sa && k.resource == "clusterrolebindings" && k.code == 403) > 0
    })
    .await;
    assert!(cluster_role_bindings(&c).get_opt("hostile-is-admin").await.expect("get").is_none());
    e.shutdown().await;
}

/// Item 6, at the API server: what a real one refuses (escalate and bind rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_api_server_refuses_rbac_escalation() {
    let s = server().await;
    let admin = s.client();
    let rbac = |kind: &str, name: &str, rest: Value| {
        let mut o = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name}});
        if let (Some(m), Some(r)) = (o.as_object_mut(), rest.as_object()) {
            m.extend(r.clone());
        }
        o
    };
    let binding = |name: &str, role: &str| {
        rbac(
            "ClusterRoleBinding",
            name,
            json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": "limited"}]}),
        )
    };
    let everything = json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]});
    apply(&admin, rbac("ClusterRole", "cluster-admin", everything.clone())).await;
    let writer = json!({"rules": [{"apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterrolebindings", "clusterroles"], "verbs": ["create", "get"]}]});
    apply(&admin, rbac("ClusterRole", "rbac-writer", writer)).await;
    apply(&admin, binding("limited-writes-rbac", "rbac-writer")).await;
    s.add_user("limited-token", "limited", &[]);
    let limited = s.client_with_token("limited-token");
    let create = |o: Value| {
        let api = cluster_role_bindings(&limited);
        let roles: Api<DynamicObject> =
            Api::all_with(limited.clone(), &resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles"));
        async move {
            let obj: DynamicObject = serde_json::from_value(o.clone()).expect("object");
            let r = if o["kind"] == "ClusterRole" {
                roles.create(&Default::default(), &obj).await
            } else {
                api.create(&Default::default(), &obj).await
            };
            r.map(drop).map_err(|e| match e {
                kube::Error::Api(s) => s.code,
                other => panic!("{other}"),
            })
        }
    };
    assert_eq!(create(binding("escalate", "cluster-admin")).await, Err(403), "bound cluster-admin");
    assert_eq!(create(rbac("ClusterRole", "mine", everything.clone())).await, Err(403), "granted what it lacks");
    assert_eq!(create(binding("missing", "no-such-role")).await, Err(403), "bound a role that does not exist");
    // What it holds it may grant and bind.
    assert_eq!(create(binding("same-again", "rbac-writer")).await, Ok(()));
    let subset = json!({"rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["get"]}]});
    assert_eq!(create(rbac("ClusterRole", "subset", subset)).await, Ok(()));
    // `bind` on cluster-admin, given by an administrator, lets it bind that role.
    let bind = json!({"rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
        "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]});
    apply(&admin, rbac("ClusterRole", "may-bind-admin", bind)).await;
    apply(&admin, binding("limited-binds-admin", "may-bind-admin")).await;
    assert_eq!(create(binding("escalate", "cluster-admin")).await, Ok(()));
}

/// Item 6: `kreflex inspect` and `kreflex rbac` flag sensitive permissions and refuse
/// unreachable ones; the well-behaved plugin is unaffected.
#[test]
fn inspect_and_rbac_flag_sensitive_and_refuse_unreachable_permissions() {
    let out = kreflex(&["inspect", &wasm("fixture_hostile_unreachable")], None);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("pods/exec is refused"), "{stderr}");
    let out = kreflex(&["rbac", &wasm("fixture_hostile_unreachable"), &wasm("database_status")], None);
    let (stdout, _) = text(&out);
    assert!(!out.status.success() && !stdout.contains("pods/exec"), "{stdout}");
    // Even an operator's allowance does not make pods/exec reachable.
    let out = kreflex(
        &["inspect", &wasm("fixture_hostile_unreachable"), "--allow-sensitive", "hostile-unreachable:pods"],
        None,
    );
    assert!(!out.status.success());

    let out = kreflex(&["inspect", &wasm("fixture_hostile_sensitive")], None);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    let info: Value = serde_json::from_str(&stdout).expect("inspect still prints the contract");
    assert_eq!(info["sensitive"], json!(["create clusterrolebindings.rbac.authorization.k8s.io"]));
    assert!(info["refused"].as_str().is_some_and(|r| r.contains("--allow-sensitive")), "{info}");
    assert!(stderr.contains("sensitive"), "{stderr}");
    let out = kreflex(&["rbac", &wasm("fixture_hostile_sensitive")], None);
    assert!(!out.status.success() && out.stdout.is_empty(), "rbac granted a refused plugin");
    let allow = "hostile-sensitive:clusterrolebindings.rbac.authorization.k8s.io";
    let out = kreflex(&["inspect", &wasm("fixture_hostile_sensitive"), "--allow-sensitive", allow], None);
    assert!(out.status.success(), "{}", text(&out).1);

    let out = kreflex(&["inspect", &wasm("database_status")], None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let info: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(info["sensitive"], json!([]));
}

/// Item 9: a plugin without a declared write cannot have kreflex hold objects with its
/// finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_finalizer_without_a_declared_write_is_refused() {
    let s = server().await;
    let c = s.client();
    apply(&c, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "victim"}})).await;
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), "database_status", "database-status");
    stage(dir.path(), "fixture_hostile_finalizer", "hostile-finalizer");
    let e = engine(&s, dir.path(), false).await;
    assert!(e.registry.load().get("hostile-finalizer").is_none(), "the plugin was loaded");
    create_database(&c, database("orders", "postgres")).await;
    ready(&c, "orders").await;
    let namespaces: Api<DynamicObject> = Api::all_with(c.clone(), &resource("", "v1", "Namespace", "namespaces"));
    let victim = namespaces.get("victim").await.expect("namespace");
    assert!(victim.metadata.finalizers.unwrap_or_default().is_empty(), "a finalizer was added");
    e.shutdown().await;

    let out = kreflex(&["inspect", &wasm("fixture_hostile_finalizer")], None);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("declare patch (or update) on namespaces"), "{}", text(&out).1);
}

/// Item 10: namespace-less patches are refused (not defaulted), generateName and owner
/// references are validated; the allowed create next to them goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_actions_are_refused_before_any_request() {
    let s = server().await;
    let c = s.client();
    let dir = tempfile::tempdir().expect("tempdir");
    stage(dir.path(), "database_status", "database-status");
    stage(dir.path(), "fixture_hostile_actions", "hostile-actions");
    let e = engine(&s, dir.path(), false).await;
    for (name, what) in [("plain", ""), ("nons", "patch-no-ns"), ("gen", "generate-name"), ("owner", "owner")] {
        let mut o = database(name, "postgres");
        o["metadata"]["annotations"] = json!({"kreflex.test/do": what});
        create_database(&c, o).await;
    }
    for name in ["plain", "nons", "gen", "owner"] {
        ready(&c, name).await;
    }
    eventually("the allowed create is applied", || async {
        configmaps(&c).get_opt("plain-cm").await.ok().flatten().is_some()
    })
    .await;
    let expect = [("nons", "ActionDenied"), ("gen", "InvalidAction"), ("owner", "InvalidAction")];
    for (name, reason) in expect {
        eventually(&format!("{name}: {reason}"), || async { events(&c, name).await.iter().any(|(r, _)| r == reason) })
            .await;
    }
    let denied = events(&c, "nons").await;
    assert!(denied.iter().any(|(_, note)| note.contains("names no namespace")), "the denial says why: {denied:?}");
    let names: Vec<String> = configmaps(&c)
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("..") || n.ends_with("-owned")), "{names:?}");
    let sa_writes = s.stats().count(|k| k.resource == "configmaps" && k.verb == "patch");
    assert_eq!(sa_writes, 0, "a refused patch reached the server");
    e.shutdown().await;
}

/// Item 10: `kreflex test` denies what `kreflex run` denies, and exits non-zero.
#[test]
fn kreflex_test_applies_the_permission_check_of_run() {
    let event = |what: &str| {
        let mut o = database("orders", "postgres");
        o["metadata"]["annotations"] = json!({"kreflex.test/do": what});
        json!({"type": "ADDED", "object": o}).to_string()
    };
    let run = |what: &str| kreflex(&["test", &wasm("fixture_hostile_actions"), "--event", "-"], Some(&event(what)));
    let out = run("secret");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("may not patch secrets"), "{stderr}");
    let out = run("patch-no-ns");
    assert!(!out.status.success());
    assert!(text(&out).1.contains("names no namespace"), "{}", text(&out).1);
    let out = run("");
    assert!(out.status.success(), "{}", text(&out).1);
    // The well-behaved plugin keeps its results.
    let out = kreflex(&["test", &wasm("database_status"), "--event", "-"], Some(&event("")));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(r#""state":"Provisioning""#), "{stdout}");
}
