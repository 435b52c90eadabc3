//! `--watch-namespace`, in the engine against the embedded API server: Databases in three
//! namespaces, an engine watching two of them. Only the watched namespaces' objects reach
//! the plugins and the cache, with one list and one watch per kind and watched namespace; a
//! relist of one namespace leaves the other's cached objects alone; a kind is synced only
//! when all its namespaces are; host reads in an unwatched namespace are refused with a
//! reason, and reads across all namespaces see only the watched ones; Roles in the watched
//! namespaces are all the access kreflex needs; `kreflex run` takes `$KUBECONFIG` and
//! `KREFLEX_WATCH_NAMESPACE` from the environment. The `chaos` fixture is the recording
//! plugin (it echoes every event into `status.message` and performs the host reads its
//! annotation asks for); the `hostile-reads` fixture beside it subscribes to a second kind
//! (ConfigMaps).

mod common;
mod guest;

use common::*;
use kreflex::apiserver::ApiServer;
use kreflex::engine::Engine;
use kreflex::model::Gvk;
use kreflex::watch::WatchScope;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::path::Path;

const WATCHED: [&str; 2] = ["a", "b"];

fn database_gvk() -> Gvk {
    Gvk::new("stable.example.com", "v1", "Database")
}

fn databases_in(c: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(c.clone(), ns, &databases_resource())
}

/// Creates namespace `ns` and, in it, a Database `name` whose `kreflex.test/do` annotation
/// (if any) tells the chaos fixture what to do.
async fn create_in(c: &kube::Client, ns: &str, name: &str, what: Option<&str>) {
    let mut obj = database(name, "postgres");
    obj["metadata"]["namespace"] = json!(ns);
    if let Some(what) = what {
        obj["metadata"]["annotations"] = json!({"kreflex.test/do": what});
    }
    let o: DynamicObject = serde_json::from_value(obj).expect("valid object");
    databases_in(c, ns).create(&PostParams::default(), &o).await.expect("create database");
}

async fn create_namespaces(c: &kube::Client) {
    let api: Api<DynamicObject> = Api::all_with(
        c.clone(),
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        ),
    );
    for ns in ["a", "b", "c"] {
        let o: DynamicObject =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .expect("namespace");
        api.create(&PostParams::default(), &o).await.expect("create namespace");
    }
}

/// What the chaos fixture echoed on `ns/name` (`Null` if it has not been called).
async fn echo(c: &kube::Client, ns: &str, name: &str) -> Value {
    let o = databases_in(c, ns).get(name).await.expect("database exists");
    o.data
        .pointer("/status/message")
        .and_then(Value::as_str)
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null)
}

/// Waits until the chaos fixture echoed on `ns/name` and returns what it said.
async fn echoed(c: &kube::Client, ns: &str, name: &str) -> Value {
    eventually(&format!("the plugin was called for {ns}/{name}"), || async { !echo(c, ns, name).await.is_null() })
        .await;
    echo(c, ns, name).await
}

/// Objects in every namespace, then an engine watching `a` and `b` with both fixtures.
/// Also returns the requests made before the engine started, by (verb, resource).
async fn setup() -> (ApiServer, Engine, tempfile::TempDir, impl Fn(&str, &str) -> u64) {
    let s = server().await;
    let c = s.client();
    create_namespaces(&c).await;
    for ns in ["a", "b", "c"] {
        create_in(&c, ns, &format!("{ns}1"), None).await;
        create_in(&c, ns, &format!("{ns}2"), None).await;
    }
    let dir = plugin_dir(&[
        (guest::wasm("fixture_chaos"), "chaos", None),
        (guest::wasm("fixture_hostile_reads"), "hostile-reads", None),
    ]);
    let before = s.stats().snapshot();
    let before = move |verb: &str, resource: &str| {
        before.iter().filter(|(k, _)| k.verb == verb && k.resource == resource).map(|(_, n)| n).sum()
    };
    let e = start_engine(&s, dir.path(), |c| c.watch_namespaces = WatchScope::namespaces(WATCHED)).await;
    (s, e, dir, before)
}

/// The namespaces of the cached objects of `gvk`, sorted, with repeats.
fn cached_namespaces(e: &Engine, gvk: &Gvk) -> Vec<String> {
    let mut ns: Vec<String> = e.cache.all(gvk).iter().filter_map(|o| o.namespace().map(str::to_owned)).collect();
    ns.sort();
    ns
}

/// Requests of `verb` on `resource` the server answered.
fn requests(s: &ApiServer, verb: &str, resource: &str) -> u64 {
    s.stats().count(|k| k.verb == verb && k.resource == resource)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_watched_namespaces_reach_plugins_with_one_watch_per_kind_and_namespace() {
    let (s, e, _dir, before) = setup().await;
    let c = s.client();
    create_in(&c, "c", "c3", None).await;
    create_in(&c, "a", "a3", None).await;
    for (ns, name) in [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("b", "b2")] {
        echoed(&c, ns, name).await;
    }
    for name in ["c1", "c2", "c3"] {
        assert_eq!(echo(&c, "c", name).await, Value::Null, "c/{name} reached the plugin");
    }
    assert_eq!(cached_namespaces(&e, &database_gvk()), ["a", "a", "a", "b", "b"]);
    // Two kinds (Databases; ConfigMaps for hostile-reads) × two namespaces, and never a
    // cluster-wide list.
    for resource in ["databases", "configmaps"] {
        let engine = |verb| requests(&s, verb, resource) - before(verb, resource);
        eventually(&format!("both {resource} watches are open"), || async { engine("watch") == 2 }).await;
        assert_eq!((engine("list"), engine("watch")), (2, 2), "{resource}: {:?}", s.stats().snapshot());
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relisting_one_namespace_keeps_the_other_namespaces_objects() {
    let (s, e, _dir, _) = setup().await;
    let c = s.client();
    for (ns, name) in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2")] {
        echoed(&c, ns, name).await;
    }
    let lists_before = requests(&s, "list", "databases");
    // The next event closes its watch and the resumed watch gets 410 Gone: `a`'s watch
    // relists, `b`'s is untouched.
    s.faults().force_gone(1);
    s.faults().close_watches_after(Some(1));
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"touch": v}}}));
    databases_in(&c, "a").patch("a1", &PatchParams::default(), &label("1")).await.expect("patch a1");
    eventually("a's watch relisted", || async { requests(&s, "list", "databases") > lists_before }).await;
    s.faults().clear();
    // A change after the relist arrives only once the relist is done.
    databases_in(&c, "a").patch("a2", &PatchParams::default(), &label("2")).await.expect("patch a2");
    eventually("the change after the relist is cached", || async {
        e.cache.get_object(&database_gvk(), Some("a"), "a2").is_some_and(|o| o.json().contains("\"touch\":\"2\""))
    })
    .await;
    assert_eq!(cached_namespaces(&e, &database_gvk()), ["a", "a", "b", "b"]);
    let deleted = format!("kreflex_events_total{{gvk=\"{}\",kind=\"deleted\"}}", database_gvk());
    assert_eq!(metric(&e, &deleted), 0.0, "no object was deleted:\n{}", e.metrics.encode());
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_reads_outside_the_watched_namespaces_are_refused_and_lists_see_only_watched_ones() {
    let (s, e, _dir, _) = setup().await;
    let c = s.client();
    let reads = [
        ("get-b", "get:stable.example.com/v1:Database:b:b1"),
        ("get-c", "get:stable.example.com/v1:Database:c:c1"),
        ("list-c", "list:stable.example.com:v1:Database:c"),
        // Created last: the watch delivers it after the others, so when the plugin lists on
        // its event, every Database above is cached.
        ("list-all", "list:stable.example.com:v1:Database:"),
    ];
    for (name, what) in reads {
        create_in(&c, "a", name, Some(what)).await;
    }
    assert_eq!(echoed(&c, "a", "get-b").await["get"], "Ok(true)");
    let refused = echoed(&c, "a", "get-c").await["get"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        refused,
        "Err(\"plugin chaos may not get Database c1 in namespace c: kreflex watches only namespaces a, b \
         (--watch-namespace)\")"
    );
    // a1, a2, b1, b2 and the four reading Databases in `a`; none of `c`'s.
    assert_eq!(echoed(&c, "a", "list-all").await["list"], "Ok(8)");
    let refused = echoed(&c, "a", "list-c").await["list"].as_str().unwrap_or_default().to_owned();
    assert!(refused.contains("plugin chaos may not list Database objects in namespace c"), "{refused}");
    assert!(refused.contains("--watch-namespace"), "{refused}");
    e.shutdown().await;
}

/// What a cluster grants every authenticated user: API discovery.
async fn discovery_for_everyone(c: &kube::Client) {
    for object in [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "discovery"},
            "rules": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/version"], "verbs": ["get"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "discovery"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "discovery"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]}),
    ] {
        kreflex::dev::apply_object(c, object).await.expect("apply");
    }
}

/// Lets `user` read Databases and patch their status in `ns`, and nothing else.
async fn role_in(c: &kube::Client, ns: &str, user: &str) {
    for object in [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "kreflex", "namespace": ns},
            "rules": [
                {"apiGroups": ["stable.example.com"], "resources": ["databases"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["stable.example.com"], "resources": ["databases/status"], "verbs": ["patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "kreflex", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kreflex"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}),
    ] {
        kreflex::dev::apply_object(c, object).await.expect("apply");
    }
}

/// The point of the flag: kreflex runs on Roles in its watched namespaces alone, with no
/// cluster-wide read of any kind (a cluster-wide list or watch would be forbidden, and the
/// informer would never sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roles_in_the_watched_namespaces_are_all_kreflex_needs() {
    let s = server().await;
    let c = s.client();
    create_namespaces(&c).await;
    discovery_for_everyone(&c).await;
    for ns in WATCHED {
        role_in(&c, ns, "kreflex").await;
        create_in(&c, ns, &format!("{ns}1"), None).await;
    }
    create_in(&c, "c", "c1", None).await;
    s.add_user("kreflex-token", "kreflex", &[]);
    let dir = plugin_dir(&[(guest::wasm("fixture_chaos"), "chaos", None)]);
    let mut config = engine_config(dir.path());
    config.watch_namespaces = WatchScope::namespaces(WATCHED);
    let e = Engine::start(s.kube_config("kreflex-token"), config).await.expect("engine starts");
    tokio::time::timeout(std::time::Duration::from_secs(60), e.wait_synced()).await.expect("informers sync");
    for ns in WATCHED {
        echoed(&c, ns, &format!("{ns}1")).await;
    }
    let forbidden = s.stats().count(|k| k.user == "kreflex" && k.code == 403);
    assert_eq!(forbidden, 0, "{:?}", s.stats().snapshot());
    assert_eq!(echo(&c, "c", "c1").await, Value::Null);
    e.shutdown().await;
}

/// `kreflex run` as a pod runs it: the kubeconfig from `$KUBECONFIG` (a list; an empty
/// entry is skipped) and the watched namespaces from `KREFLEX_WATCH_NAMESPACE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kreflex_run_takes_kubeconfig_and_watched_namespaces_from_the_environment() {
    let s = server().await;
    let c = s.client();
    create_namespaces(&c).await;
    for ns in ["a", "b", "c"] {
        create_in(&c, ns, &format!("{ns}1"), None).await;
    }
    let dir = plugin_dir(&[(guest::wasm("fixture_chaos"), "chaos", None)]);
    let kubeconfig = dir.path().join("kubeconfig");
    s.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let list = std::env::join_paths([Path::new(""), &kubeconfig]).expect("path list");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kreflex"))
        .args(["run", "--plugins"])
        .arg(dir.path())
        .arg("--cache-dir")
        .arg(dir.path().join(".cache"))
        .env("KUBECONFIG", list)
        .env("KREFLEX_WATCH_NAMESPACE", "a,b")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kreflex runs");
    for ns in WATCHED {
        echoed(&c, ns, &format!("{ns}1")).await;
    }
    assert_eq!(echo(&c, "c", "c1").await, Value::Null);
    child.kill().await.expect("stop kreflex");
}

/// A kind is synced only when every watched namespace has listed: with a Role in `a` but
/// not in `b`, `a`'s objects are handled while the informer (and so `/readyz`) waits on
/// `b`, whose watch keeps failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kind_is_synced_only_when_every_watched_namespace_is() {
    let s = server().await;
    let c = s.client();
    create_namespaces(&c).await;
    discovery_for_everyone(&c).await;
    role_in(&c, "a", "kreflex").await;
    create_in(&c, "a", "a1", None).await;
    s.add_user("kreflex-token", "kreflex", &[]);
    let dir = plugin_dir(&[(guest::wasm("fixture_chaos"), "chaos", None)]);
    let mut config = engine_config(dir.path());
    config.watch_namespaces = WatchScope::namespaces(WATCHED);
    let e = Engine::start(s.kube_config("kreflex-token"), config).await.expect("engine starts");
    echoed(&c, "a", "a1").await;
    let synced = tokio::time::timeout(std::time::Duration::from_secs(1), e.wait_synced()).await;
    assert!(synced.is_err(), "synced although b's watch is forbidden");
    assert!(!e.health.is_ready());
    e.shutdown().await;
}
