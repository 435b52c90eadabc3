//! Least-privilege RBAC for a set of plugins (`kreflex rbac`): a ServiceAccount per plugin
//! with exactly its declared permissions (a Role and RoleBinding per namespace, or a
//! ClusterRole and ClusterRoleBinding where a permission spans all namespaces), and the
//! ClusterRole kreflex itself needs: read what plugins subscribe to, manage finalizers
//! where asked, impersonate the plugins' service accounts, write Events and Leases.

use crate::model::{Gvk, Permission, PluginInfo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Resources, verbs and groups of one RBAC rule, merged per (group, resource).
type Rules = BTreeMap<(String, String), BTreeSet<String>>;

/// Multi-document YAML: everything the given plugins and kreflex need, nothing more.
/// `namespace` is where kreflex and the plugin service accounts live.
pub fn rbac_yaml(plugins: &[PluginInfo], namespace: &str, plural_of: &dyn Fn(&Gvk) -> String) -> String {
    manifests(plugins, namespace, plural_of)
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The documents of [`rbac_yaml`], as JSON values.
pub fn manifests(plugins: &[PluginInfo], namespace: &str, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<Value> {
    let mut docs = Vec::new();
    for p in plugins {
        let sa = format!("kreflex-{}", p.name);
        docs.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace, "labels": labels(&p.name)}}));
        let mut cluster: Rules = BTreeMap::new();
        let mut per_ns: BTreeMap<String, Rules> = BTreeMap::new();
        for perm in &p.permissions {
            if perm.namespaces.is_empty() {
                add(&mut cluster, perm);
            } else {
                for ns in &perm.namespaces {
                    add(per_ns.entry(ns.clone()).or_default(), perm);
                }
            }
        }
        let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]);
        if !cluster.is_empty() {
            docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": sa, "labels": labels(&p.name)}, "rules": rules(&cluster)}));
            docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": sa, "labels": labels(&p.name)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": sa}, "subjects": subject}));
        }
        for (ns, r) in &per_ns {
            docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": sa, "namespace": ns, "labels": labels(&p.name)}, "rules": rules(r)}));
            docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": sa, "namespace": ns, "labels": labels(&p.name)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa}, "subjects": subject}));
        }
    }
    docs.push(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kreflex", "namespace": namespace}}),
    );
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "kreflex"}, "rules": own_rules(plugins, plural_of)}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kreflex"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kreflex"},
        "subjects": [{"kind": "ServiceAccount", "name": "kreflex", "namespace": namespace}]}));
    docs
}

fn labels(plugin: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": "kreflex", "kreflex.io/plugin": plugin})
}

fn add(rules: &mut Rules, p: &Permission) {
    rules.entry((p.group.clone(), p.resource.clone())).or_default().extend(p.verbs.iter().cloned());
}

fn rules(r: &Rules) -> Vec<Value> {
    r.iter()
        .map(|((group, resource), verbs)| json!({"apiGroups": [group], "resources": [resource], "verbs": verbs}))
        .collect()
}

fn own_rules(plugins: &[PluginInfo], plural_of: &dyn Fn(&Gvk) -> String) -> Vec<Value> {
    let mut r: Rules = BTreeMap::new();
    for p in plugins {
        for s in &p.subscriptions {
            let verbs = r.entry((s.gvk.group.clone(), plural_of(&s.gvk))).or_default();
            verbs.extend(["get", "list", "watch"].map(String::from));
            if s.finalizer {
                // Adding and removing `kreflex.io/<plugin>` finalizers.
                verbs.extend(["patch", "update"].map(String::from));
            }
        }
    }
    for group in ["", "events.k8s.io"] {
        r.entry((group.into(), "events".into())).or_default().extend(["create", "patch"].map(String::from));
    }
    r.entry(("coordination.k8s.io".into(), "leases".into()))
        .or_default()
        .extend(["get", "create", "update"].map(String::from));
    let mut out = rules(&r);
    let names: Vec<String> = plugins.iter().map(|p| format!("kreflex-{}", p.name)).collect();
    if !names.is_empty() {
        out.push(json!({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"], "resourceNames": names}));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Subscription;

    fn plugin() -> PluginInfo {
        PluginInfo {
            name: "database-status".into(),
            version: "1".into(),
            subscriptions: vec![Subscription {
                generation_changed_only: true,
                finalizer: true,
                ..Subscription::to(Gvk::new("stable.example.com", "v1", "Database"))
            }],
            permissions: vec![
                Permission {
                    group: "stable.example.com".into(),
                    resource: "databases/status".into(),
                    verbs: vec!["get".into(), "patch".into()],
                    namespaces: vec![],
                },
                Permission {
                    group: "".into(),
                    resource: "configmaps".into(),
                    verbs: vec!["create".into()],
                    namespaces: vec!["a".into(), "b".into()],
                },
            ],
        }
    }

    fn docs() -> Vec<Value> {
        let yaml = rbac_yaml(&[plugin()], "kreflex-system", &|g| crate::model::guess_plural(&g.kind));
        serde_yaml::Deserializer::from_str(&yaml).map(|d| serde::Deserialize::deserialize(d).expect("yaml")).collect()
    }

    fn find<'a>(docs: &'a [Value], kind: &str, name: &str, ns: Option<&str>) -> &'a Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"].as_str() == ns)
            .unwrap_or_else(|| panic!("{kind} {name} {ns:?} missing"))
    }

    #[test]
    fn each_plugin_gets_exactly_its_declared_permissions() {
        let d = docs();
        find(&d, "ServiceAccount", "kreflex-database-status", Some("kreflex-system"));
        let cr = find(&d, "ClusterRole", "kreflex-database-status", None);
        assert_eq!(
            cr["rules"],
            json!([{"apiGroups": ["stable.example.com"], "resources": ["databases/status"], "verbs": ["get", "patch"]}])
        );
        for ns in ["a", "b"] {
            let role = find(&d, "Role", "kreflex-database-status", Some(ns));
            assert_eq!(role["rules"], json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]));
            let rb = find(&d, "RoleBinding", "kreflex-database-status", Some(ns));
            assert_eq!(rb["subjects"][0]["namespace"], "kreflex-system");
        }
    }

    #[test]
    fn kreflex_itself_reads_subscriptions_impersonates_plugins_and_writes_events() {
        let d = docs();
        let rules = find(&d, "ClusterRole", "kreflex", None)["rules"].as_array().expect("rules").clone();
        let has = |group: &str, res: &str, verb: &str| {
            rules.iter().any(|r| {
                r["apiGroups"][0] == group
                    && r["resources"][0] == res
                    && r["verbs"].as_array().is_some_and(|v| v.iter().any(|x| x == verb))
            })
        };
        assert!(has("stable.example.com", "databases", "watch"));
        assert!(has("stable.example.com", "databases", "patch"), "finalizer subscriptions need patch");
        assert!(has("events.k8s.io", "events", "create"));
        assert!(has("coordination.k8s.io", "leases", "update"));
        assert!(has("", "serviceaccounts", "impersonate"));
        assert!(!has("", "secrets", "get"));
        let imp = rules.iter().find(|r| r["verbs"][0] == "impersonate").expect("impersonate rule");
        assert_eq!(imp["resourceNames"], json!(["kreflex-database-status"]));
    }
}
