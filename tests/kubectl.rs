//! The real `kubectl` against the embedded API server: what a user types works unchanged.
//! Skipped, with a message, when kubectl is not on PATH, unless `KREFLEX_REQUIRE_KUBECTL=1`
//! (CI sets it), where a missing kubectl fails.

mod common;

use common::*;
use std::process::Output;
use std::time::Duration;

/// A kubeconfig for `server` in a temporary folder (kept while the folder lives).
fn kubeconfig_for(server: &kreflex::apiserver::ApiServer) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kc).expect("kubeconfig");
    (dir, kc)
}

/// `kubectl ARGS` off the async workers.
async fn run_kubectl(kubeconfig: std::path::PathBuf, args: &'static [&'static str]) -> Output {
    tokio::task::spawn_blocking(move || kubectl(&kubeconfig, args)).await.expect("join")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kubectl failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_the_embedded_server() {
    if !have_kubectl("the kubectl compatibility tests") {
        return;
    }
    let s = server_with(Default::default()).await;
    let (_dir, kc) = kubeconfig_for(&s);
    let run = |args: &'static [&'static str]| run_kubectl(kc.clone(), args);

    let resources = ok(&run(&["api-resources"]).await);
    assert!(resources.contains("customresourcedefinitions") && resources.contains("leases"), "{resources}");
    ok(&run(&["apply", "-f", "examples/crds/"]).await);
    eventually("databases are served", || async { run(&["get", "databases"]).await.status.success() }).await;
    let applied = ok(&run(&["apply", "-f", "examples/databases/"]).await);
    assert!(applied.contains("database.stable.example.com/orders created"), "{applied}");

    let table = ok(&run(&["get", "databases"]).await);
    let header = table.lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>();
    assert_eq!(header, ["NAME", "ENGINE", "SIZE", "STATE", "AGE"], "{table}");
    assert!(ok(&run(&["get", "db", "orders", "-o", "yaml"]).await).contains("engine: postgres"));

    ok(&run(&[
        "patch",
        "database",
        "orders",
        "--type",
        "merge",
        "--subresource",
        "status",
        "-p",
        r#"{"status":{"state":"Ready"}}"#,
    ])
    .await);
    assert!(ok(&run(&["get", "db", "orders"]).await).contains("Ready"));

    let ssa = ok(&run(&["apply", "--server-side", "-f", "examples/databases/"]).await);
    assert!(ssa.contains("serverside-applied"), "{ssa}");
    ok(&run(&["label", "db", "orders", "tier=gold"]).await);

    // A bounded watch sees a change as a JSON watch event, exactly the format `kreflex test` reads.
    let kc2 = kc.clone();
    let watch = tokio::task::spawn_blocking(move || {
        kubectl(&kc2, &["get", "db", "orders", "-w", "--output-watch-events", "-o", "json", "--request-timeout=4s"])
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ok(&run(&["patch", "db", "orders", "--type", "merge", "-p", r#"{"spec":{"size":"11Gi"}}"#]).await);
    let out = watch.await.expect("join");
    let events = kreflex::offline::parse_events(&String::from_utf8_lossy(&out.stdout)).expect("watch output parses");
    assert!(events.iter().any(|e| e.object["spec"]["size"] == "11Gi"), "{events:?}");

    let deleted = ok(&run(&["delete", "database", "legacy"]).await);
    assert!(deleted.contains("deleted"));
    assert!(!run(&["get", "db", "legacy"]).await.status.success());
    ok(&run(&["get", "events"]).await);
    assert_eq!(ok(&run(&["auth", "can-i", "patch", "databases/status"]).await).trim(), "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_events_and_describe_show_plugin_warnings() {
    if !have_kubectl("the kubectl compatibility tests") {
        return;
    }
    let s = server().await;
    let c = s.client();
    let legacy = create_database(&c, database("legacy", "mysql")).await;
    let warning = serde_json::json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "legacy.warn", "namespace": "default"},
        "eventTime": "2026-12-01T05:00:00.000000Z", "reportingController": "kreflex", "reportingInstance": "kreflex-1",
        "action": "Reconcile", "reason": "EngineRetired", "type": "Warning", "note": "mysql 5.7 is out of support",
        "regarding": {"apiVersion": "stable.example.com/v1", "kind": "Database", "name": "legacy", "namespace": "default",
            "uid": legacy.metadata.uid.clone().expect("uid")}});
    kreflex::dev::apply_object(&c, warning).await.expect("event");
    let (_dir, kc) = kubeconfig_for(&s);
    let run = |args: &'static [&'static str]| run_kubectl(kc.clone(), args);
    let events = ok(&run(&["get", "events"]).await);
    assert!(events.contains("EngineRetired") && events.contains("mysql 5.7 is out of support"), "{events}");
    let header: Vec<&str> = events.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "{events}");
    assert!(events.contains("database/legacy"), "{events}");
    let described = ok(&run(&["describe", "database", "legacy"]).await);
    let section = described.split("Events:").nth(1).unwrap_or_default();
    assert!(section.contains("EngineRetired") && section.contains("mysql 5.7 is out of support"), "{described}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_namespace_and_other_built_in_kinds_works() {
    if !have_kubectl("the kubectl compatibility tests") {
        return;
    }
    let s = server_with(Default::default()).await;
    let (_dir, kc) = kubeconfig_for(&s);
    let run = |args: &'static [&'static str]| run_kubectl(kc.clone(), args);
    // kubectl sends each of these as application/vnd.kubernetes.protobuf.
    assert!(ok(&run(&["create", "namespace", "team-a"]).await).contains("namespace/team-a created"));
    ok(&run(&["create", "configmap", "cfg", "-n", "team-a", "--from-literal=size=1Gi"]).await);
    ok(&run(&["create", "secret", "generic", "creds", "-n", "team-a", "--from-literal=password=s3cret"]).await);
    ok(&run(&["create", "serviceaccount", "bot", "-n", "team-a"]).await);
    ok(&run(&["create", "role", "reader", "-n", "team-a", "--verb=get,list", "--resource=configmaps"]).await);
    ok(&run(&["create", "rolebinding", "bot-reads", "-n", "team-a", "--role=reader", "--serviceaccount=team-a:bot"])
        .await);
    let get = |args: &'static [&'static str]| async move { ok(&run(args).await) };
    assert_eq!(get(&["get", "ns", "team-a", "-o", "jsonpath={.status.phase}"]).await, "Active");
    assert_eq!(get(&["get", "cm", "cfg", "-n", "team-a", "-o", "jsonpath={.data.size}"]).await, "1Gi");
    // Secret data arrives as bytes and is served base64-encoded, as on a real server.
    assert_eq!(get(&["get", "secret", "creds", "-n", "team-a", "-o", "jsonpath={.data.password}"]).await, "czNjcmV0");
    assert_eq!(get(&["get", "secret", "creds", "-n", "team-a", "-o", "jsonpath={.type}"]).await, "Opaque");
    assert_eq!(get(&["get", "sa", "bot", "-n", "team-a", "-o", "jsonpath={.metadata.name}"]).await, "bot");
    assert_eq!(
        get(&["get", "role", "reader", "-n", "team-a", "-o", "jsonpath={.rules[0].verbs}"]).await,
        r#"["get","list"]"#
    );
    assert_eq!(
        get(&["get", "rolebinding", "bot-reads", "-n", "team-a", "-o", "jsonpath={.subjects[0].name}"]).await,
        "bot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_table_rows_with_ages() {
    if !have_kubectl("the kubectl compatibility tests") {
        return;
    }
    let s = server().await;
    create_database(&s.client(), database("orders", "postgres")).await;
    let (_dir, kc) = kubeconfig_for(&s);
    let table = ok(&run_kubectl(kc.clone(), &["get", "databases"]).await);
    let row: Vec<&str> = table.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    // The Age column is a date the server sends as a timestamp and kubectl shows as an age.
    assert!(row.last().is_some_and(|age| age.ends_with('s') && !age.contains('T')), "{table}");
    let watch = tokio::spawn(run_kubectl(kc, &["get", "db", "-w", "--request-timeout=4s"]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    create_database(&s.client(), database("legacy", "mysql")).await;
    let out = watch.await.expect("join");
    let printed = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines.first().map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["NAME", "ENGINE", "SIZE", "STATE", "AGE"]),
        "{printed}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("orders ")) && lines.iter().any(|l| l.starts_with("legacy ")),
        "{printed}"
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with("NAME")).count(), 1, "one header: {printed}");
}
