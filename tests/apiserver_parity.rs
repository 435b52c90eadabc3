//! Where the embedded API server must answer as a real kube-apiserver does (issue 16),
//! through kube-rs over real HTTPS: write preconditions, one Event store for both Event
//! APIs, server-side apply list semantics, deletion propagation and garbage collection,
//! list and watch details.

mod common;

use common::*;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn put_of_a_custom_resource_without_resource_version_is_invalid() {
    let s = server().await;
    let c = s.client();
    let created = create_database(&c, database("orders", "postgres")).await;
    let api = databases(&c);
    let mut unconditional = created.clone();
    unconditional.metadata.resource_version = None;
    unconditional.data["spec"]["size"] = json!("2Gi");
    let err = api_err(api.replace("orders", &PostParams::default(), &unconditional).await.expect_err("no rv"));
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "databases.stable.example.com \"orders\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
    // With the version it is an ordinary update; patches need none.
    let mut conditional = created.clone();
    conditional.data["spec"]["size"] = json!("2Gi");
    let replaced = api.replace("orders", &PostParams::default(), &conditional).await.expect("conditional update");
    assert_eq!(replaced.data["spec"]["size"], "2Gi");
    api.patch("orders", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": "3Gi"}}))).await.expect("patch");
}

#[tokio::test]
async fn put_of_a_built_in_kind_without_resource_version_is_unconditional() {
    let s = server().await;
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(s.client(), "default");
    let cm = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).expect("cm");
    cms.create(&PostParams::default(), &cm).await.expect("create");
    let changed = serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "2"}})).expect("cm");
    let put = cms.replace("cfg", &PostParams::default(), &changed).await.expect("unconditional update");
    assert_eq!(put.data.expect("data")["a"], "2");
}

#[tokio::test]
async fn delete_with_a_mismatched_uid_precondition_conflicts() {
    let s = server().await;
    let c = s.client();
    let created = create_database(&c, database("orders", "postgres")).await;
    let api = databases(&c);
    let dp = DeleteParams {
        preconditions: Some(Preconditions { uid: Some("not-this-one".into()), resource_version: None }),
        ..Default::default()
    };
    let err = api_err(api.delete("orders", &dp).await.expect_err("uid mismatch"));
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let uid = created.metadata.uid.clone().expect("uid");
    assert_eq!(
        err.message,
        format!(
            "Operation cannot be fulfilled on Database.stable.example.com \"orders\": the UID in the precondition (not-this-one) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )
    );
    assert!(api.get("orders").await.is_ok(), "the object is still there");
    let stale_rv = DeleteParams {
        preconditions: Some(Preconditions { uid: None, resource_version: Some("1".into()) }),
        ..Default::default()
    };
    assert_eq!(api_err(api.delete("orders", &stale_rv).await.expect_err("rv mismatch")).code, 409);
    let matching = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
        ..Default::default()
    };
    api.delete("orders", &matching).await.expect("matching uid deletes");
    assert_eq!(api_err(api.get("orders").await.expect_err("gone")).code, 404);
}

#[tokio::test]
async fn create_with_a_resource_version_is_rejected() {
    let s = server().await;
    let c = s.client();
    let mut o = database("orders", "postgres");
    o["metadata"]["resourceVersion"] = json!("42");
    let o: DynamicObject = serde_json::from_value(o).expect("obj");
    let err = api_err(databases(&c).create(&PostParams::default(), &o).await.expect_err("rv on create"));
    assert_eq!(err.code, 500);
    assert_eq!(err.message, "resourceVersion should not be set on objects to be created");
    assert_eq!(api_err(databases(&c).get("orders").await.expect_err("not created")).code, 404);
}

#[tokio::test]
async fn delete_answers_like_the_real_server() {
    let s = server().await;
    let c = s.client();
    let created = create_database(&c, database("orders", "postgres")).await;
    let api = databases(&c);
    // Removed now: a Success Status naming the object.
    let status = api.delete("orders", &DeleteParams::default()).await.expect("delete").right().expect("a Status");
    assert_eq!(status.status, Some(kube::core::response::StatusSummary::Success));
    let details = status.details.expect("details");
    assert_eq!(
        (details.name, details.group, details.kind, Some(details.uid)),
        ("orders".to_owned(), "stable.example.com".to_owned(), "databases".to_owned(), created.metadata.uid)
    );
    // Held by a finalizer: the object, now terminating.
    let mut held = database("held", "postgres");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create_database(&c, held).await;
    let terminating = api.delete("held", &DeleteParams::default()).await.expect("delete").left().expect("the object");
    assert!(terminating.metadata.deletion_timestamp.is_some());
}

fn events_api(c: &kube::Client, group: &str) -> kube::Api<DynamicObject> {
    let gvk = kube::core::GroupVersionKind::gvk(group, "v1", "Event");
    kube::Api::namespaced_with(c.clone(), "default", &kube::core::ApiResource::from_gvk_with_plural(&gvk, "events"))
}

/// A Warning Event as plugins write it, through events.k8s.io.
fn warning_about(name: &str, uid: &str) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": format!("{name}.warn"), "namespace": "default"},
        "eventTime": "2026-12-01T05:00:00.000000Z", "reportingController": "kreflex", "reportingInstance": "kreflex-1",
        "action": "Reconcile", "reason": "Failed", "type": "Warning", "note": "disk full",
        "regarding": {"apiVersion": "stable.example.com/v1", "kind": "Database", "name": name, "namespace": "default", "uid": uid}}))
    .expect("event")
}

#[tokio::test]
async fn events_written_through_events_k8s_io_are_core_events() {
    let s = server().await;
    let c = s.client();
    let legacy = create_database(&c, database("legacy", "mysql")).await;
    let uid = legacy.metadata.uid.clone().expect("uid");
    events_api(&c, "events.k8s.io")
        .create(&PostParams::default(), &warning_about("legacy", &uid))
        .await
        .expect("create");
    events_api(&c, "events.k8s.io")
        .create(&PostParams::default(), &warning_about("orders", "u2"))
        .await
        .expect("create");
    let core = events_api(&c, "");
    // The field selector `kubectl describe database legacy` sends.
    let describe = kube::api::ListParams::default().fields(&format!(
        "involvedObject.name=legacy,involvedObject.namespace=default,involvedObject.kind=Database,involvedObject.uid={uid}"
    ));
    let found = core.list(&describe).await.expect("core list");
    assert_eq!(found.items.len(), 1, "{:?}", found.items);
    let ev = &found.items[0].data;
    assert_eq!(found.items[0].types.as_ref().map(|t| t.api_version.as_str()), Some("v1"));
    assert_eq!((ev["message"].as_str(), ev["reportingComponent"].as_str()), (Some("disk full"), Some("kreflex")));
    assert_eq!(ev["involvedObject"]["name"], "legacy");
    assert!(ev.get("note").is_none() && ev.get("regarding").is_none(), "{ev}");
    assert_eq!(core.list(&Default::default()).await.expect("all").items.len(), 2);
    // And back: a core Event is an events.k8s.io Event, selectable by `regarding`.
    let core_event: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "core-made", "namespace": "default"}, "reason": "Created", "type": "Normal",
        "message": "made by a core client", "involvedObject": {"kind": "Database", "name": "orders", "namespace": "default"},
        "source": {"component": "old-controller"}, "count": 3}))
    .expect("event");
    core.create(&PostParams::default(), &core_event).await.expect("core create");
    let v1 = events_api(&c, "events.k8s.io");
    let about_orders = v1.list(&kube::api::ListParams::default().fields("regarding.name=orders")).await.expect("list");
    let made = about_orders.items.iter().find(|e| e.metadata.name.as_deref() == Some("core-made")).expect("served");
    assert_eq!(made.data["note"], "made by a core client");
    assert_eq!(
        (made.data["deprecatedCount"].as_i64(), made.data["deprecatedSource"]["component"].as_str()),
        (Some(3), Some("old-controller"))
    );
    let err = api_err(
        v1.list(&kube::api::ListParams::default().fields("involvedObject.name=orders")).await.expect_err("core label"),
    );
    assert_eq!((err.code, err.message.as_str()), (400, "field label not supported: involvedObject.name"));
    // One object: deleting it through one API removes it from the other.
    v1.delete("core-made", &DeleteParams::default()).await.expect("delete");
    assert_eq!(api_err(core.get("core-made").await.expect_err("gone")).code, 404);
}

fn applied(name: &str, spec: serde_json::Value, finalizers: &[&str]) -> serde_json::Value {
    let mut o = json!({"apiVersion": "stable.example.com/v1", "kind": "Database", "metadata": {"name": name}});
    if !spec.is_null() {
        o["spec"] = spec;
    }
    if !finalizers.is_empty() {
        o["metadata"]["finalizers"] = json!(finalizers);
    }
    o
}

#[tokio::test]
async fn two_managers_co_own_a_set_list() {
    let s = server().await;
    let api = databases(&s.client());
    let spec = json!({"name": "orders", "engine": "postgres"});
    api.patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", spec, &["alice.io/keep"])))
        .await
        .expect("alice");
    let bob = api
        .patch("orders", &PatchParams::apply("bob"), &Patch::Apply(applied("orders", json!(null), &["bob.io/keep"])))
        .await
        .expect("bob applies his own finalizer without a conflict");
    assert_eq!(bob.metadata.finalizers, Some(vec!["alice.io/keep".to_owned(), "bob.io/keep".to_owned()]));
    // Alice drops hers; Bob's stays.
    let spec = json!({"name": "orders", "engine": "postgres"});
    let after = api
        .patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", spec, &[])))
        .await
        .expect("alice again");
    assert_eq!(after.metadata.finalizers, Some(vec!["bob.io/keep".to_owned()]));
}

#[tokio::test]
async fn a_field_a_manager_stops_applying_is_removed_unless_another_owns_it() {
    let s = server().await;
    let api = databases(&s.client());
    let full = json!({"name": "orders", "engine": "postgres", "size": "1Gi"});
    let without_size = json!({"name": "orders", "engine": "postgres"});
    api.patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", full.clone(), &[])))
        .await
        .expect("alice creates");
    let dropped = api
        .patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", without_size.clone(), &[])))
        .await
        .expect("alice drops size");
    assert!(dropped.data["spec"].get("size").is_none(), "{}", dropped.data);
    // Co-owned: Bob applies the same size, Alice applies and drops it again; it stays.
    api.patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", full.clone(), &[])))
        .await
        .expect("alice sets size");
    api.patch("orders", &PatchParams::apply("bob"), &Patch::Apply(applied("orders", json!({"size": "1Gi"}), &[])))
        .await
        .expect("bob co-owns size");
    let kept = api
        .patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", without_size, &[])))
        .await
        .expect("alice drops size");
    assert_eq!(kept.data["spec"]["size"], "1Gi");
}

#[tokio::test]
async fn managed_fields_record_apply_operations() {
    let s = server().await;
    let api = databases(&s.client());
    let spec = |size: &str| json!({"name": "orders", "engine": "postgres", "size": size});
    api.patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", spec("1Gi"), &[])))
        .await
        .expect("create");
    let changed = api
        .patch("orders", &PatchParams::apply("alice"), &Patch::Apply(applied("orders", spec("2Gi"), &[])))
        .await
        .expect("change");
    let entries: Vec<(String, String)> = changed
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect();
    assert_eq!(entries, [("alice".to_owned(), "Apply".to_owned())]);
}

type ConfigMaps = kube::Api<k8s_openapi::api::core::v1::ConfigMap>;

/// A ConfigMap owned by `owner`, as kreflex creates children of the objects plugins act on.
async fn child_of(cms: &ConfigMaps, name: &str, owner: &DynamicObject, finalizers: &[&str]) {
    let cm = serde_json::from_value(json!({"metadata": {"name": name, "finalizers": finalizers, "ownerReferences": [{
        "apiVersion": "stable.example.com/v1", "kind": "Database", "name": owner.metadata.name,
        "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": true}]}}))
    .expect("cm");
    cms.create(&PostParams::default(), &cm).await.expect("child");
}

fn propagation(p: kube::api::PropagationPolicy) -> DeleteParams {
    DeleteParams { propagation_policy: Some(p), ..Default::default() }
}

#[tokio::test]
async fn background_deletion_collects_dependents_of_a_deleted_owner() {
    let s = server().await;
    let c = s.client();
    let owner = create_database(&c, database("orders", "postgres")).await;
    let cms: ConfigMaps = kube::Api::namespaced(c.clone(), "default");
    child_of(&cms, "orders-config", &owner, &[]).await;
    databases(&c).delete("orders", &DeleteParams::default()).await.expect("delete");
    eventually("the dependent is collected", || async { cms.get_opt("orders-config").await.expect("get").is_none() })
        .await;
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_first() {
    let s = server().await;
    let c = s.client();
    let owner = create_database(&c, database("orders", "postgres")).await;
    let cms: ConfigMaps = kube::Api::namespaced(c.clone(), "default");
    child_of(&cms, "orders-config", &owner, &["example.com/hold"]).await;
    let api = databases(&c);
    let terminating = api
        .delete("orders", &propagation(kube::api::PropagationPolicy::Foreground))
        .await
        .expect("delete")
        .left()
        .expect("the owner, terminating");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.finalizers, Some(vec!["foregroundDeletion".to_owned()]));
    eventually("the dependent is being deleted", || async {
        cms.get("orders-config").await.is_ok_and(|cm| cm.metadata.deletion_timestamp.is_some())
    })
    .await;
    // The dependent still exists (held by its finalizer): the owner waits for it.
    assert!(api.get("orders").await.is_ok(), "the owner outlives a blocking dependent");
    cms.patch("orders-config", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .expect("release the dependent");
    eventually("the owner goes after its dependent", || async { api.get_opt("orders").await.expect("get").is_none() })
        .await;
}

#[tokio::test]
async fn orphan_deletion_strips_owner_references() {
    let s = server().await;
    let c = s.client();
    let owner = create_database(&c, database("orders", "postgres")).await;
    let cms: ConfigMaps = kube::Api::namespaced(c.clone(), "default");
    child_of(&cms, "orders-config", &owner, &[]).await;
    let terminating = databases(&c)
        .delete("orders", &propagation(kube::api::PropagationPolicy::Orphan))
        .await
        .expect("delete")
        .left()
        .expect("the owner, terminating");
    assert_eq!(terminating.metadata.finalizers, Some(vec!["orphan".to_owned()]));
    eventually("the owner is gone", || async { databases(&c).get_opt("orders").await.expect("get").is_none() }).await;
    let orphan = cms.get("orders-config").await.expect("the dependent stays");
    assert_eq!(orphan.metadata.owner_references, None);
}

#[tokio::test]
async fn a_list_from_resource_version_0_returns_everything_and_remaining_item_count_counts_the_rest() {
    let s = server().await;
    let c = s.client();
    for i in 0..5 {
        create_database(&c, database(&format!("db{i}"), "postgres")).await;
    }
    let api = databases(&c);
    // kube-rs leaves resourceVersion=0 out when a limit is set; kubectl and client-go send both.
    let req = http::Request::builder()
        .uri("/apis/stable.example.com/v1/namespaces/default/databases?limit=2&resourceVersion=0")
        .body(Vec::new())
        .expect("request");
    let cached: serde_json::Value = serde_json::from_str(&c.request_text(req).await.expect("list")).expect("json");
    assert_eq!(cached["items"].as_array().map(Vec::len), Some(5));
    assert!(cached["metadata"].get("continue").is_none(), "{}", cached["metadata"]);
    let page1 = api.list(&kube::api::ListParams::default().limit(2)).await.expect("page 1");
    assert_eq!(page1.metadata.remaining_item_count, Some(3));
    let token = page1.metadata.continue_.expect("continue");
    let page2 = api.list(&kube::api::ListParams::default().limit(2).continue_token(&token)).await.expect("page 2");
    assert_eq!(page2.metadata.remaining_item_count, Some(1));
    let token = page2.metadata.continue_.expect("continue");
    let page3 = api.list(&kube::api::ListParams::default().limit(2).continue_token(&token)).await.expect("page 3");
    assert_eq!(
        (page3.items.len(), page3.metadata.continue_.as_deref(), page3.metadata.remaining_item_count),
        (1, None, None)
    );
}

#[tokio::test]
async fn a_watch_asked_for_tables_streams_table_rows_with_a_date_age() {
    let s = server().await;
    let c = s.client();
    create_database(&c, database("orders", "postgres")).await;
    create_database(&c, database("legacy", "mysql")).await;
    let req = http::Request::builder()
        .uri("/apis/stable.example.com/v1/namespaces/default/databases?watch=true&timeoutSeconds=1")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
        .body(Vec::new())
        .expect("request");
    let text = c.request_text(req).await.expect("watch");
    let events: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("an event per line")).collect();
    assert_eq!(events.len(), 2, "{text}");
    let first = &events[0]["object"];
    assert_eq!((first["kind"].as_str(), events[0]["type"].as_str()), (Some("Table"), Some("ADDED")));
    let columns: Vec<(&str, &str)> = first["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or(""), c["type"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        columns,
        [("Name", "string"), ("Engine", "string"), ("Size", "string"), ("State", "string"), ("Age", "date")]
    );
    let age = first["rows"][0]["cells"][4].as_str().unwrap_or_default();
    assert!(age.ends_with('s') && !age.contains('T'), "a date cell holds the age: {age}");
    assert_eq!(events[1]["object"]["columnDefinitions"], json!([]), "headers once");
    assert_eq!(events[1]["object"]["rows"][0]["cells"][0], "orders");
}
