//! Discovery documents (`/version`, `/api`, `/apis`, group and group-version resource
//! lists) and OpenAPI v3 (index with content hashes, per group-version documents built
//! from CRD schemas), as kubectl and kube-rs expect them.

use super::resources::ResourceDef;
use super::store::Store;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use std::collections::BTreeMap;

/// `/version`.
pub fn version() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kreflex", "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z", "goVersion": "", "compiler": "rustc", "platform": "linux/amd64"})
}

/// `/api`.
pub fn core_versions(address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]})
}

fn group_versions(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in store.defs().iter().filter(|d| !d.group.is_empty()) {
        let v = groups.entry(d.group.clone()).or_default();
        if !v.contains(&d.version) {
            v.push(d.version.clone());
        }
    }
    groups.entry("authorization.k8s.io".into()).or_insert_with(|| vec!["v1".into()]);
    groups
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn groups(store: &Store) -> Value {
    let groups: Vec<Value> = group_versions(store).iter().map(|(g, v)| group_doc(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(store: &Store, name: &str) -> Option<Value> {
    let versions = group_versions(store).remove(name)?;
    let mut doc = group_doc(name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn verbs(d: &ResourceDef) -> Vec<&'static str> {
    let _ = d;
    vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(store: &Store, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for d in store.defs().iter().filter(|d| d.group == group && d.version == version) {
        let mut resource = json!({"name": d.plural, "singularName": d.singular, "namespaced": d.namespaced,
            "kind": d.kind, "verbs": verbs(d), "shortNames": d.short_names});
        if !d.categories.is_empty() {
            resource["categories"] = json!(d.categories);
        }
        resources.push(resource);
        if d.status {
            resources
                .push(json!({"name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced,
                "kind": d.kind, "verbs": ["get", "patch", "update"]}));
        }
        if d.scale() {
            resources
                .push(json!({"name": format!("{}/scale", d.plural), "singularName": "", "namespaced": d.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// `/apis/authorization.k8s.io/v1`.
pub fn authorization_resources() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authorization.k8s.io/v1", "resources": [
        {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}]})
}

/// Reverse-DNS prefix kube-openapi uses for schema names (`stable.example.com` →
/// `com.example.stable`).
fn schema_prefix(group: &str) -> String {
    if group.is_empty() {
        return "io.k8s.api.core".into();
    }
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The OpenAPI v3 document of one group-version (`rest` = `["api","v1"]` or
/// `["apis", group, version]`).
pub fn openapi_doc(store: &Store, rest: &[&str]) -> Option<Value> {
    let (group, version) = match rest {
        ["api", "v1"] => ("", "v1"),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let defs: Vec<_> = store.defs().iter().filter(|d| d.group == group && d.version == version).cloned().collect();
    if defs.is_empty() {
        return None;
    }
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object", "description": "Standard object metadata.", "x-kubernetes-preserve-unknown-fields": true}),
    );
    for d in &defs {
        let name = format!("{}.{}.{}", schema_prefix(group), version, d.kind);
        let mut schema =
            d.schema.clone().unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
            props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
            props.insert("metadata".into(), json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "Standard object's metadata."}));
        }
        schema["x-kubernetes-group-version-kind"] = json!([{"group": group, "version": version, "kind": d.kind}]);
        schemas.insert(name.clone(), schema);
        schemas.insert(
            format!("{name}List"),
            json!({"type": "object", "required": ["items"], "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}}, "metadata": {"type": "object"}},
                "x-kubernetes-group-version-kind": [{"group": group, "version": version, "kind": format!("{}List", d.kind)}]}),
        );
        let base = if group.is_empty() { "/api/v1".to_owned() } else { format!("/apis/{group}/{version}") };
        let collection = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": d.kind});
        let ok = |r: String| json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{r}")}}}}});
        // kubectl looks for these query parameters on the write operations to decide that
        // the server validates fields (and does dry runs) itself.
        let q = |names: &[&str]| -> Value {
            names
                .iter()
                .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
                .collect()
        };
        let write_params = q(&["dryRun", "fieldManager", "fieldValidation"]);
        let patch_params = q(&["dryRun", "fieldManager", "fieldValidation", "force"]);
        paths.insert(collection.clone(), json!({
            "get": {"operationId": format!("list{}", d.kind), "responses": ok(format!("{name}List")), "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk},
            "post": {"operationId": format!("create{}", d.kind), "parameters": write_params, "responses": ok(name.clone()), "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk}}));
        paths.insert(format!("{collection}/{{name}}"), json!({
            "get": {"operationId": format!("read{}", d.kind), "responses": ok(name.clone()), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk},
            "put": {"operationId": format!("replace{}", d.kind), "parameters": write_params, "responses": ok(name.clone()), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk},
            "patch": {"operationId": format!("patch{}", d.kind), "parameters": patch_params, "responses": ok(name.clone()), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk},
            "delete": {"operationId": format!("delete{}", d.kind), "responses": ok(name.clone()), "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk}}));
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths, "components": {"schemas": schemas}}),
    )
}

/// `/openapi/v3`: every group-version with a content hash.
pub fn openapi_index(store: &Store) -> Value {
    let mut gvs: Vec<Vec<String>> = vec![vec!["api".into(), "v1".into()]];
    for (g, versions) in group_versions(store) {
        for v in versions {
            if store.defs().iter().any(|d| d.group == g && d.version == v) {
                gvs.push(vec!["apis".into(), g.clone(), v]);
            }
        }
    }
    let mut paths = serde_json::Map::new();
    for gv in gvs {
        let parts: Vec<&str> = gv.iter().map(String::as_str).collect();
        if let Some(doc) = openapi_doc(store, &parts) {
            let hash = hex::encode_upper(Sha512::digest(doc.to_string().as_bytes()));
            let key = gv.join("/");
            paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}));
        }
    }
    json!({"paths": paths})
}
