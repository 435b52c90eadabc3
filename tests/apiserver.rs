//! The embedded API server through the real kube-rs client and kube-runtime watcher, over
//! real HTTPS: CRUD semantics, generation, status isolation, optimistic concurrency,
//! finalizers, selectors, pagination, watch and 410, SSA, RBAC and impersonation, bad
//! input, faults, state.

mod common;

use common::*;
use futures::StreamExt;
use kreflex::apiserver::{ApiServerConfig, FaultConfig};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn creates_reads_and_bumps_generation_only_on_spec_changes() {
    let s = server().await;
    let c = s.client();
    let created = create_database(&c, database("orders", "postgres")).await;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let api = databases(&c);
    let pp = PatchParams::default();
    let labeled =
        api.patch("orders", &pp, &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}}))).await.expect("label");
    assert_eq!(labeled.metadata.generation, Some(1), "label change keeps generation");
    let status = api
        .patch_status("orders", &pp, &Patch::Merge(json!({"status": {"state": "Ready"}, "spec": {"size": "9Gi"}})))
        .await
        .expect("status");
    assert_eq!(status.metadata.generation, Some(1), "status write keeps generation");
    assert_eq!(status.data["spec"]["size"], "1Gi", "spec in a status patch is ignored");
    let spec = api
        .patch("orders", &pp, &Patch::Merge(json!({"spec": {"size": "2Gi"}, "status": {"state": "Hacked"}})))
        .await
        .expect("spec");
    assert_eq!(spec.metadata.generation, Some(2));
    assert_eq!(spec.data["status"]["state"], "Ready", "status in a main patch is ignored");
    let err = api_err(
        api.create(&PostParams::default(), &serde_json::from_value(database("orders", "mysql")).expect("obj"))
            .await
            .expect_err("exists"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let missing = api_err(api.get("nope").await.expect_err("missing"));
    assert_eq!(missing.code, 404);
    assert_eq!(missing.message, "databases.stable.example.com \"nope\" not found");
}

#[tokio::test]
async fn generate_name_makes_unique_names() {
    let s = server().await;
    let mut o = database("", "postgres");
    o["metadata"] = json!({"generateName": "gen-", "namespace": "default"});
    let a = create_database(&s.client(), o.clone()).await;
    let b = create_database(&s.client(), o).await;
    let (a, b) = (a.metadata.name.expect("name"), b.metadata.name.expect("name"));
    assert!(a.starts_with("gen-") && b.starts_with("gen-") && a != b);
}

#[tokio::test]
async fn stale_update_is_a_409_conflict() {
    let s = server().await;
    let c = s.client();
    let first = create_database(&c, database("t-b", "mysql")).await;
    let api = databases(&c);
    api.patch("t-b", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "2Gi"}}))).await.expect("patch");
    let mut stale = first.clone();
    stale.data["spec"]["size"] = json!("3Gi");
    let err = api_err(api.replace("t-b", &PostParams::default(), &stale).await.expect_err("stale"));
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on databases.stable.example.com \"t-b\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let s = server().await;
    let c = s.client();
    let mut o = database("t-fin", "postgres");
    o["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create_database(&c, o).await;
    let api = databases(&c);
    api.delete("t-fin", &DeleteParams::default()).await.expect("delete");
    let terminating = api.get("t-fin").await.expect("still there");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let err = api_err(
        api.patch(
            "t-fin",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "new"]}})),
        )
        .await
        .expect_err("no new finalizers"),
    );
    assert_eq!(err.code, 422);
    api.patch("t-fin", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": []}})))
        .await
        .expect("release");
    assert_eq!(api_err(api.get("t-fin").await.expect_err("gone")).code, 404);
}

#[tokio::test]
async fn selectors_and_pagination() {
    let s = server().await;
    let c = s.client();
    for (i, team) in ["shop", "data", "shop", "ops", "shop"].iter().enumerate() {
        let mut o = database(&format!("db{i}"), "postgres");
        o["metadata"]["labels"] = json!({"team": team});
        create_database(&c, o).await;
    }
    let api = databases(&c);
    let names = |l: kube::core::ObjectList<DynamicObject>| {
        l.items.into_iter().map(|o| o.metadata.name.unwrap_or_default()).collect::<Vec<_>>()
    };
    assert_eq!(names(api.list(&ListParams::default().labels("team=shop")).await.expect("list")), ["db0", "db2", "db4"]);
    assert_eq!(
        names(api.list(&ListParams::default().labels("team in (data,ops)")).await.expect("list")),
        ["db1", "db3"]
    );
    assert_eq!(names(api.list(&ListParams::default().labels("team!=shop")).await.expect("list")), ["db1", "db3"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.name=db3")).await.expect("list")), ["db3"]);
    let page1 = api.list(&ListParams::default().limit(2)).await.expect("page 1");
    let token = page1.metadata.continue_.clone().expect("continue token");
    let page2 = api.list(&ListParams::default().limit(2).continue_token(&token)).await.expect("page 2");
    assert_eq!(names(page1), ["db0", "db1"]);
    assert_eq!(names(page2), ["db2", "db3"]);
}

#[tokio::test]
async fn watcher_receives_added_modified_deleted_and_bookmarks() {
    let s =
        server_with(ApiServerConfig { bookmark_interval: std::time::Duration::from_millis(200), ..Default::default() })
            .await;
    let c = s.client();
    install_crd(&c).await;
    let api = databases(&c);
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("rv");
    let mut stream = api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
    create_database(&c, database("w", "postgres")).await;
    api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "7Gi"}}))).await.expect("patch");
    api.delete("w", &DeleteParams::default()).await.expect("delete");
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        match stream.next().await.expect("event").expect("ok") {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Bookmark(_) => {
                if kinds.len() == 3 {
                    kinds.push("BOOKMARK")
                }
            }
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);
}

#[tokio::test]
async fn a_too_old_resource_version_gets_410_and_the_watcher_relists() {
    let s = server_with(ApiServerConfig { history_window: 5, ..Default::default() }).await;
    let c = s.client();
    install_crd(&c).await;
    let api = databases(&c);
    for i in 0..10 {
        create_database(&c, database(&format!("old{i}"), "postgres")).await;
    }
    let mut raw = api.watch(&WatchParams::default(), "2").await.expect("watch").boxed();
    match raw.next().await.expect("an event").expect("decoded") {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
    // kube-runtime's watcher survives a forced 410 by relisting.
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(std::collections::BTreeSet::new()));
    let seen2 = seen.clone();
    let w = tokio::spawn(async move {
        let mut st = watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(r) = st.next().await {
            match r {
                Ok(o) => {
                    seen2.lock().insert(o.metadata.name.unwrap_or_default());
                }
                Err(e) => eprintln!("watcher error (it retries): {e}"),
            }
        }
    });
    eventually("the watcher listed everything", || async { seen.lock().len() == 10 }).await;
    s.faults().force_gone(1);
    s.faults().close_watches_after(Some(1));
    create_database(&c, database("after-drop", "mysql")).await;
    s.faults().close_watches_after(None);
    create_database(&c, database("after-410", "mysql")).await;
    let stats = s.stats();
    let context = || {
        let snap = stats.snapshot();
        let calls: Vec<_> = snap.iter().filter(|(k, _)| k.verb == "watch" || k.verb == "list").collect();
        format!("{calls:?} seen={:?}", seen.lock())
    };
    eventually_or("the watcher recovered and saw new objects", context, || async {
        let seen = seen.lock();
        seen.contains("after-drop") && seen.contains("after-410")
    })
    .await;
    assert!(s.faults().injected() >= 1);
    w.abort();
}

#[tokio::test]
async fn server_side_apply_conflicts_unless_forced() {
    let s = server().await;
    let c = s.client();
    let api = databases(&c);
    let cfg = |size: &str| json!({"apiVersion": "stable.example.com/v1", "kind": "Database", "metadata": {"name": "t-ssa"}, "spec": {"name": "t-ssa", "engine": "postgres", "size": size}});
    api.patch("t-ssa", &PatchParams::apply("alice"), &Patch::Apply(cfg("1Gi"))).await.expect("alice creates");
    let err =
        api_err(api.patch("t-ssa", &PatchParams::apply("bob"), &Patch::Apply(cfg("2Gi"))).await.expect_err("conflict"));
    assert_eq!(err.code, 409);
    assert!(err.message.contains("conflict with \"alice\": .spec.size"), "{}", err.message);
    let forced =
        api.patch("t-ssa", &PatchParams::apply("bob").force(), &Patch::Apply(cfg("2Gi"))).await.expect("forced");
    assert_eq!(forced.data["spec"]["size"], "2Gi");
    let managers: Vec<String> =
        forced.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(managers.contains(&"bob".to_owned()) && managers.contains(&"alice".to_owned()), "{managers:?}");
    let status = api
        .patch_status(
            "t-ssa",
            &PatchParams::apply("kreflex/db"),
            &Patch::Apply(
                json!({"apiVersion": "stable.example.com/v1", "kind": "Database", "status": {"state": "Ready"}}),
            ),
        )
        .await
        .expect("status apply");
    assert_eq!(status.data["status"]["state"], "Ready");
}

#[tokio::test]
async fn rbac_forbids_and_impersonation_is_checked() {
    let s = server().await;
    s.add_user("limited-token", "limited", &[]);
    let limited = s.client_with_token("limited-token");
    create_database(&s.client(), database("t-b", "mysql")).await;
    let err = api_err(databases(&limited).list(&ListParams::default()).await.expect_err("forbidden"));
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "databases.stable.example.com is forbidden: User \"limited\" cannot list resource \"databases\" in API group \"stable.example.com\" in the namespace \"default\""
    );
    // Grant status patches only, through real RBAC objects.
    for doc in [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "status", "namespace": "default"},
            "rules": [{"apiGroups": ["stable.example.com"], "resources": ["databases/status"], "verbs": ["patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "status", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status"}, "subjects": [{"kind": "User", "name": "limited"}]}),
    ] {
        kreflex::dev::apply_object(&s.client(), doc).await.expect("rbac object");
    }
    let api = databases(&limited);
    api.patch_status("t-b", &PatchParams::default(), &Patch::Merge(json!({"status": {"state": "Ready"}})))
        .await
        .expect("allowed");
    let err = api_err(
        api.patch("t-b", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "1Gi"}})))
            .await
            .expect_err("main resource"),
    );
    assert!(err.message.contains("cannot patch resource \"databases\""), "{}", err.message);
    // Impersonation: the admin may impersonate; the limited user may not.
    let mut cfg = s.kube_config(s.admin_token());
    cfg.auth_info.impersonate = Some("limited".into());
    let as_limited = kube::Client::try_from(cfg).expect("client");
    assert_eq!(api_err(databases(&as_limited).list(&ListParams::default()).await.expect_err("as limited")).code, 403);
    let mut cfg = s.kube_config("limited-token");
    cfg.auth_info.impersonate = Some("admin".into());
    let escalate = kube::Client::try_from(cfg).expect("client");
    let err = api_err(databases(&escalate).list(&ListParams::default()).await.expect_err("no impersonation"));
    assert!(err.message.contains("cannot impersonate resource \"users\""), "{}", err.message);
}

async fn raw(
    s: &kreflex::apiserver::ApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .expect("request");
    let client = s.client();
    match client.request_text(req).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(st)) => (st.code, serde_json::to_value(&*st).expect("status")),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_the_server_carries_on() {
    let s = server().await;
    let base = "/apis/stable.example.com/v1/namespaces/default/databases";
    let (code, body) = raw(&s, "POST", base, "application/json", b"{not json".to_vec()).await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let (code, _) =
        raw(&s, "GET", "/apis/stable.example.com/v1/namespaces/default/widgets", "application/json", vec![]).await;
    assert_eq!(code, 404);
    let wrong_kind =
        json!({"apiVersion": "stable.example.com/v1", "kind": "Widget", "metadata": {"name": "bad3"}, "spec": {}});
    let (code, body) = raw(&s, "POST", base, "application/json", wrong_kind.to_string().into_bytes()).await;
    assert_eq!(code, 422);
    assert_eq!(
        body["message"],
        "Widget.stable.example.com \"bad3\" is invalid: kind: Invalid value: \"Widget\": must be Database"
    );
    let missing = json!({"apiVersion": "stable.example.com/v1", "kind": "Database", "metadata": {"name": "bad2"}, "spec": {"engine": "postgres", "size": 5}});
    let (code, body) = raw(&s, "POST", base, "application/json", missing.to_string().into_bytes()).await;
    assert_eq!(code, 422);
    let fields: Vec<&str> =
        body["details"]["causes"].as_array().expect("causes").iter().filter_map(|c| c["field"].as_str()).collect();
    assert!(fields.contains(&"spec.name") && fields.contains(&"spec.size"), "{body}");
    create_database(&s.client(), database("t-a", "postgres")).await;
    let mismatch = database("other", "postgres");
    let (code, _) = raw(&s, "PUT", &format!("{base}/t-a"), "application/json", mismatch.to_string().into_bytes()).await;
    assert_eq!(code, 400);
    let (code, _) = raw(&s, "POST", base, "application/json", vec![b' '; 4 << 20]).await;
    assert_eq!(code, 413);
    let (code, _) =
        raw(&s, "PATCH", &format!("{base}/t-a"), "application/strategic-merge-patch+json", b"{}".to_vec()).await;
    assert_eq!(code, 415);
    let (code, _) = raw(
        &s,
        "PATCH",
        &format!("{base}/t-a"),
        "application/json-patch+json",
        br#"[{"op":"test","path":"/spec/engine","value":"mysql"}]"#.to_vec(),
    )
    .await;
    assert_eq!(code, 422);
    // Still serving.
    assert!(databases(&s.client()).get("t-a").await.is_ok());
}

#[tokio::test]
async fn injected_write_failures_carry_retry_after() {
    let s = server_with(ApiServerConfig {
        faults: FaultConfig { seed: 7, write_error_rate: 1.0, write_error_codes: vec![429], ..Default::default() },
        ..Default::default()
    })
    .await;
    s.faults().clear();
    install_crd(&s.client()).await;
    s.faults().fail_writes(1.0, &[429]);
    let o: DynamicObject = serde_json::from_value(database("x", "mysql")).expect("obj");
    let err = api_err(databases(&s.client()).create(&PostParams::default(), &o).await.expect_err("429"));
    assert_eq!(err.code, 429);
    assert_eq!(err.details.expect("details").retry_after_seconds, 1);
    s.faults().clear();
    assert!(databases(&s.client()).create(&PostParams::default(), &o).await.is_ok());
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let s = server_with(ApiServerConfig { state_file: Some(state.clone()), ..Default::default() }).await;
    install_crd(&s.client()).await;
    create_database(&s.client(), database("kept", "mariadb")).await;
    s.shutdown().await;
    let s = server_with(ApiServerConfig { state_file: Some(state), ..Default::default() }).await;
    let kept = databases(&s.client()).get("kept").await.expect("restored");
    assert_eq!(kept.data["spec"]["engine"], "mariadb");
}
