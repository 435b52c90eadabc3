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

/// A Role or ClusterRole being built: its rules and the comments the operator reads above it.
#[derive(Default)]
struct Grant {
    rules: Rules,
    notes: BTreeSet<String>,
}

/// One manifest with the YAML comments printed above it.
struct Document {
    notes: BTreeSet<String>,
    value: Value,
}

impl Document {
    fn plain(value: Value) -> Self {
        Self { notes: BTreeSet::new(), value }
    }
}

/// Multi-document YAML: everything the given plugins and kreflex need, nothing more.
/// `namespace` is where kreflex and the plugin service accounts live. Comments above a
/// plugin's Role or ClusterRole flag sensitive permissions (granted only because the
/// operator allowed them) and the reads kreflex narrows further by a subscription's
/// selectors.
pub fn rbac_yaml(plugins: &[PluginInfo], namespace: &str, plural_of: &dyn Fn(&Gvk) -> String) -> String {
    documents(plugins, namespace, plural_of)
        .iter()
        .map(|d| {
            let notes: String = d.notes.iter().map(|n| format!("# {n}\n")).collect();
            notes + &serde_yaml::to_string(&d.value).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The documents of [`rbac_yaml`], as JSON values.
pub fn manifests(plugins: &[PluginInfo], namespace: &str, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<Value> {
    documents(plugins, namespace, plural_of).into_iter().map(|d| d.value).collect()
}

fn documents(plugins: &[PluginInfo], namespace: &str, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<Document> {
    let mut docs = Vec::new();
    for p in plugins {
        let sa = format!("kreflex-{}", p.name);
        docs.push(Document::plain(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace, "labels": labels(&p.name)}}),
        ));
        let mut cluster = Grant::default();
        let mut per_ns: BTreeMap<String, Grant> = BTreeMap::new();
        let mut grant = |perm: &Permission, note: Option<String>| {
            let give = |g: &mut Grant| {
                add(&mut g.rules, perm);
                g.notes.extend(note.clone());
            };
            if perm.namespaces.is_empty() {
                give(&mut cluster);
            }
            for ns in &perm.namespaces {
                give(per_ns.entry(ns.clone()).or_default());
            }
        };
        let flagged = super::sensitive::sensitive(p, plural_of);
        for perm in &p.permissions {
            let sensitive = flagged.iter().any(|(_, r)| *r == super::sensitive::GroupResource::of(perm));
            let note = sensitive.then(|| {
                format!(
                    "SENSITIVE: {} {} (credentials or privileges), granted because the operator allowed it",
                    perm.verbs.join(","),
                    perm.resource
                )
            });
            grant(perm, note);
        }
        for (read, note) in reads(p, plural_of) {
            let sensitive = flagged.iter().any(|(_, r)| *r == super::sensitive::GroupResource::of(&read));
            let flag = sensitive.then(|| {
                format!(
                    "SENSITIVE: get,list {} through a subscription (credentials or privileges), granted because the operator allowed it",
                    read.resource
                )
            });
            grant(&read, note.clone());
            if flag.is_some() {
                grant(&read, flag);
            }
        }
        let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]);
        if !cluster.rules.is_empty() {
            docs.push(Document {
                notes: cluster.notes,
                value: json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": sa, "labels": labels(&p.name)}, "rules": rules(&cluster.rules)}),
            });
            docs.push(Document::plain(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": sa, "labels": labels(&p.name)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": sa}, "subjects": subject})));
        }
        for (ns, g) in per_ns {
            docs.push(Document {
                notes: g.notes,
                value: json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": sa, "namespace": ns, "labels": labels(&p.name)}, "rules": rules(&g.rules)}),
            });
            docs.push(Document::plain(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": sa, "namespace": ns, "labels": labels(&p.name)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa}, "subjects": subject})));
        }
    }
    docs.push(Document::plain(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kreflex", "namespace": namespace}}),
    ));
    docs.push(Document::plain(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "kreflex"}, "rules": own_rules(plugins, plural_of)})));
    docs.push(Document::plain(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kreflex"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kreflex"},
        "subjects": [{"kind": "ServiceAccount", "name": "kreflex", "namespace": namespace}]})));
    docs
}

/// The resource-level reads a plugin's subscriptions give it through the host's `get` and
/// `list-objects` (so the RBAC an operator reviews is not less than what it can read), with
/// a note where kreflex narrows them further by a selector.
fn reads(p: &PluginInfo, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<(Permission, Option<String>)> {
    p.subscriptions
        .iter()
        .map(|s| {
            let read = Permission {
                group: s.gvk.group.clone(),
                resource: plural_of(&s.gvk),
                verbs: vec!["get".into(), "list".into()],
                namespaces: s.namespaces.clone(),
            };
            let selectors: Vec<String> = [("label", &s.label_selector), ("field", &s.field_selector)]
                .into_iter()
                .filter_map(|(what, sel)| sel.as_ref().map(|sel| format!("{what} selector {sel:?}")))
                .collect();
            let note = (!selectors.is_empty()).then(|| {
                format!(
                    "get,list {}: kreflex narrows the plugin's reads to its subscription's {} (RBAC cannot express selectors)",
                    read.resource,
                    selectors.join(" and ")
                )
            });
            (read, note)
        })
        .collect()
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
        // Declared permissions, and the reads its subscription gives it through the host.
        assert_eq!(
            cr["rules"],
            json!([{"apiGroups": ["stable.example.com"], "resources": ["databases"], "verbs": ["get", "list"]},
                {"apiGroups": ["stable.example.com"], "resources": ["databases/status"], "verbs": ["get", "patch"]}])
        );
        for ns in ["a", "b"] {
            let role = find(&d, "Role", "kreflex-database-status", Some(ns));
            assert_eq!(role["rules"], json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]));
            let rb = find(&d, "RoleBinding", "kreflex-database-status", Some(ns));
            assert_eq!(rb["subjects"][0]["namespace"], "kreflex-system");
        }
    }

    #[test]
    fn selectors_and_sensitive_grants_are_called_out_above_the_role_that_holds_them() {
        let mut p = plugin();
        p.subscriptions.push(Subscription {
            gvk: Gvk::new("", "v1", "Secret"),
            namespaces: vec!["a".into()],
            label_selector: Some("kreflex.io/public=true".into()),
            field_selector: None,
            generation_changed_only: false,
            finalizer: false,
        });
        let yaml = rbac_yaml(&[p], "kreflex-system", &|g| crate::model::guess_plural(&g.kind));
        let role =
            yaml.split("---\n").find(|d| d.contains("kind: Role\n") && d.contains("namespace: a")).expect("role a");
        assert!(role.contains("# get,list secrets: kreflex narrows the plugin's reads to its subscription's label selector \"kreflex.io/public=true\""), "{role}");
        assert!(role.contains("# SENSITIVE: get,list secrets through a subscription"), "{role}");
        assert!(role.contains("- secrets"), "{role}");
        let cluster = yaml
            .split("---\n")
            .find(|d| d.contains("kind: ClusterRole\n") && d.contains("kreflex-database-status"))
            .expect("cluster role");
        assert!(!cluster.contains('#'), "nothing to flag: {cluster}");
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
