//! Least-privilege RBAC for a set of plugins (`kreflex rbac`), ready to apply to a fresh
//! cluster: the Namespace kreflex lives in, a ServiceAccount per plugin with exactly its
//! declared permissions (a Role and RoleBinding per namespace, or a ClusterRole and
//! ClusterRoleBinding where a permission spans all namespaces), and what kreflex itself
//! needs: read what plugins subscribe to, manage finalizers where asked, write Events,
//! impersonate the plugins' service accounts (a Role in its namespace) and hold Leases for
//! leader election and shards (a Role in the lease namespace). With watched namespaces
//! (`--watch-namespace`), everything that would span all namespaces becomes a Role in each
//! of them instead.
//!
//! In: the plugins' declared subscriptions and permissions and the [`Options`]. Out:
//! multi-document YAML (or JSON values). Pure; no verb or resource is ever a wildcard.

use crate::model::{Gvk, Permission, PluginInfo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Resources, verbs and groups of one RBAC rule, merged per (group, resource).
type Rules = BTreeMap<(String, String), BTreeSet<String>>;

/// Where kreflex and its plugins run, and how far their grants reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Namespace of kreflex and the plugin service accounts.
    pub namespace: String,
    /// Namespace of kreflex's Leases (`--lease-namespace` of `kreflex run`); `None`: `namespace`.
    pub lease_namespace: Option<String>,
    /// The namespaces kreflex watches (`--watch-namespace`); empty: all, with ClusterRoles.
    pub watch_namespaces: Vec<String>,
    /// Write the Namespace objects kreflex's own namespaces need, so the output applies to a
    /// fresh cluster.
    pub with_namespace: bool,
}

impl Options {
    /// Everything in `namespace`, across all namespaces, Namespace included.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), lease_namespace: None, watch_namespaces: Vec::new(), with_namespace: true }
    }

    fn lease_namespace(&self) -> &str {
        self.lease_namespace.as_deref().unwrap_or(&self.namespace)
    }

    /// Where a grant declared for `namespaces` (empty: all) goes: `None` for a ClusterRole,
    /// else Roles in the namespaces listed. Watched namespaces replace "all".
    fn place(&self, namespaces: &[String]) -> Option<Vec<String>> {
        match (namespaces.is_empty(), self.watch_namespaces.is_empty()) {
            (true, true) => None,
            (true, false) => Some(self.watch_namespaces.clone()),
            (false, _) => Some(namespaces.to_vec()),
        }
    }

    /// Like [`Self::place`] for a read through a subscription: kreflex serves a subscription
    /// only in the namespaces it watches, so the grant is narrowed to them.
    fn place_read(&self, namespaces: &[String]) -> Option<Vec<String>> {
        self.place(namespaces).map(|in_ns| {
            in_ns
                .into_iter()
                .filter(|ns| self.watch_namespaces.is_empty() || self.watch_namespaces.contains(ns))
                .collect()
        })
    }
}

/// Above a Role that stands for a ClusterRole because of `--watch-namespace`.
const WATCHED_NOTE: &str = "--watch-namespace: this Role replaces a ClusterRole in each watched namespace; a Role \
                            cannot grant cluster-scoped kinds (Namespaces, Nodes, CustomResourceDefinitions, ...): \
                            grant those in a ClusterRole";

/// Above kreflex's Role in the lease namespace.
const LEASE_NOTE: &str = "leader election and shard ownership: Leases (kube-lease-manager writes them with \
                          server-side apply and strategic-merge patches) and Events about kreflex's own Pod";

/// A Role or ClusterRole being built: its rules, rules naming objects, and the comments the
/// operator reads above it.
#[derive(Default)]
struct Grant {
    rules: Rules,
    named: Vec<Value>,
    notes: BTreeSet<String>,
}

impl Grant {
    fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.named.is_empty()
    }

    fn rules(&self) -> Vec<Value> {
        rules(&self.rules).into_iter().chain(self.named.iter().cloned()).collect()
    }
}

/// A ClusterRole grant and Role grants per namespace.
#[derive(Default)]
struct Grants {
    cluster: Grant,
    per_ns: BTreeMap<String, Grant>,
}

impl Grants {
    /// Adds `verbs` on `group`/`resource` where `place` says, with `note` above it.
    fn add(&mut self, place: Option<Vec<String>>, group: &str, resource: &str, verbs: &[&str], note: Option<&str>) {
        let give = |g: &mut Grant| {
            g.rules
                .entry((group.to_owned(), resource.to_owned()))
                .or_default()
                .extend(verbs.iter().map(|v| v.to_string()));
            g.notes.extend(note.map(str::to_owned));
        };
        match place {
            None => give(&mut self.cluster),
            Some(namespaces) => namespaces.iter().for_each(|ns| give(self.per_ns.entry(ns.clone()).or_default())),
        }
    }

    /// The ClusterRole, ClusterRoleBinding, Roles and RoleBindings named `name`, bound to
    /// `subject`, labelled `labels`.
    fn documents(self, name: &str, subject: &Value, labels: &Value) -> Vec<Document> {
        let mut docs = Vec::new();
        if !self.cluster.is_empty() {
            docs.push(Document {
                value: json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": name, "labels": labels}, "rules": self.cluster.rules()}),
                notes: self.cluster.notes,
            });
            docs.push(Document::plain(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": subject}),
            ));
        }
        for (ns, g) in self.per_ns.into_iter().filter(|(_, g)| !g.is_empty()) {
            docs.push(Document {
                value: json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": name, "namespace": ns, "labels": labels}, "rules": g.rules()}),
                notes: g.notes,
            });
            docs.push(Document::plain(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": subject})));
        }
        docs
    }
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
/// Comments above a plugin's Role or ClusterRole flag sensitive permissions (granted only
/// because the operator allowed them) and the reads kreflex narrows further by a
/// subscription's selectors.
pub fn rbac_yaml(plugins: &[PluginInfo], options: &Options, plural_of: &dyn Fn(&Gvk) -> String) -> String {
    documents(plugins, options, plural_of)
        .iter()
        .map(|d| {
            let notes: String = d.notes.iter().map(|n| format!("# {n}\n")).collect();
            notes + &serde_yaml::to_string(&d.value).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The documents of [`rbac_yaml`], as JSON values.
pub fn manifests(plugins: &[PluginInfo], options: &Options, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<Value> {
    documents(plugins, options, plural_of).into_iter().map(|d| d.value).collect()
}

fn documents(plugins: &[PluginInfo], options: &Options, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<Document> {
    let mut docs = Vec::new();
    if options.with_namespace {
        let own: BTreeSet<&str> = [options.namespace.as_str(), options.lease_namespace()].into();
        for ns in own {
            docs.push(Document::plain(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})));
        }
    }
    for p in plugins {
        docs.extend(plugin_documents(p, options, plural_of));
    }
    docs.push(Document::plain(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kreflex", "namespace": options.namespace, "labels": own_labels()}}),
    ));
    let subject = json!([{"kind": "ServiceAccount", "name": "kreflex", "namespace": options.namespace}]);
    docs.extend(own_grants(plugins, options, plural_of).documents("kreflex", &subject, &own_labels()));
    docs
}

/// A plugin's ServiceAccount and the roles holding its declared permissions and the reads
/// its subscriptions give it.
fn plugin_documents(p: &PluginInfo, options: &Options, plural_of: &dyn Fn(&Gvk) -> String) -> Vec<Document> {
    let sa = format!("kreflex-{}", p.name);
    let mut docs = vec![Document::plain(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": options.namespace, "labels": labels(&p.name)}}),
    )];
    let mut grants = Grants::default();
    let watched =
        |namespaces: &[String]| (namespaces.is_empty() && !options.watch_namespaces.is_empty()).then_some(WATCHED_NOTE);
    let flagged = super::sensitive::sensitive(p, plural_of);
    let is_sensitive = |perm: &Permission| flagged.iter().any(|(_, r)| *r == super::sensitive::GroupResource::of(perm));
    for perm in &p.permissions {
        let verbs: Vec<&str> = perm.verbs.iter().map(String::as_str).collect();
        let place = options.place(&perm.namespaces);
        grants.add(place.clone(), &perm.group, &perm.resource, &verbs, watched(&perm.namespaces));
        if is_sensitive(perm) {
            let note = format!(
                "SENSITIVE: {} {} (credentials or privileges), granted because the operator allowed it",
                perm.verbs.join(","),
                perm.resource
            );
            grants.add(place, &perm.group, &perm.resource, &[], Some(&note));
        }
    }
    for (read, note) in reads(p, plural_of) {
        let place = options.place_read(&read.namespaces);
        grants.add(place.clone(), &read.group, &read.resource, &["get", "list"], note.as_deref());
        grants.add(place.clone(), &read.group, &read.resource, &[], watched(&read.namespaces));
        if is_sensitive(&read) {
            let flag = format!(
                "SENSITIVE: get,list {} through a subscription (credentials or privileges), granted because the operator allowed it",
                read.resource
            );
            grants.add(place, &read.group, &read.resource, &[], Some(&flag));
        }
    }
    let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": options.namespace}]);
    docs.extend(grants.documents(&sa, &subject, &labels(&p.name)));
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

fn own_labels() -> Value {
    json!({"app.kubernetes.io/name": "kreflex"})
}

fn labels(plugin: &str) -> Value {
    json!({"app.kubernetes.io/managed-by": "kreflex", "kreflex.io/plugin": plugin})
}

fn rules(r: &Rules) -> Vec<Value> {
    r.iter()
        .map(|((group, resource), verbs)| json!({"apiGroups": [group], "resources": [resource], "verbs": verbs}))
        .collect()
}

/// What kreflex itself does: watch what plugins subscribe to (informers watch every
/// namespace, or each watched one), add and remove finalizers where asked, write Events
/// about the objects it handles and about itself, hold Leases, and impersonate the plugins'
/// service accounts (namespaced objects: a Role in kreflex's namespace is enough).
fn own_grants(plugins: &[PluginInfo], options: &Options, plural_of: &dyn Fn(&Gvk) -> String) -> Grants {
    let mut g = Grants::default();
    let everywhere = options.place(&[]);
    let watched = (!options.watch_namespaces.is_empty()).then_some(WATCHED_NOTE);
    for p in plugins {
        for s in &p.subscriptions {
            let resource = plural_of(&s.gvk);
            let place = match &everywhere {
                None => None,
                Some(_) => options.place_read(&s.namespaces),
            };
            g.add(place.clone(), &s.gvk.group, &resource, &["get", "list", "watch"], watched);
            if s.finalizer {
                // Adding and removing `kreflex.io/<plugin>` finalizers.
                g.add(place, &s.gvk.group, &resource, &["patch", "update"], None);
            }
        }
    }
    let lease_ns = Some(vec![options.lease_namespace().to_owned()]);
    for group in ["", "events.k8s.io"] {
        g.add(everywhere.clone(), group, "events", &["create", "patch"], watched);
        g.add(lease_ns.clone(), group, "events", &["create", "patch"], None);
    }
    let lease_verbs = ["get", "list", "watch", "create", "update", "patch"];
    g.add(lease_ns, "coordination.k8s.io", "leases", &lease_verbs, Some(LEASE_NOTE));
    let names: Vec<String> = plugins.iter().map(|p| format!("kreflex-{}", p.name)).collect();
    if !names.is_empty() {
        let own = g.per_ns.entry(options.namespace.clone()).or_default();
        own.named.push(json!({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"], "resourceNames": names}));
    }
    g
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
        docs_with(&Options::new("kreflex-system"))
    }

    fn docs_with(options: &Options) -> Vec<Value> {
        let yaml = rbac_yaml(&[plugin()], options, &|g| crate::model::guess_plural(&g.kind));
        serde_yaml::Deserializer::from_str(&yaml).map(|d| serde::Deserialize::deserialize(d).expect("yaml")).collect()
    }

    /// Whether `rules` grant `verb` on `group`/`resource`.
    fn grants(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
        rules.as_array().expect("rules").iter().any(|r| {
            r["apiGroups"][0] == group
                && r["resources"][0] == resource
                && r["verbs"].as_array().is_some_and(|v| v.iter().any(|x| x == verb))
        })
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
        let yaml = rbac_yaml(&[p], &Options::new("kreflex-system"), &|g| crate::model::guess_plural(&g.kind));
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
    fn kreflex_itself_reads_subscriptions_writes_events_and_impersonates_plugins_in_its_namespace() {
        let d = docs();
        let cluster = &find(&d, "ClusterRole", "kreflex", None)["rules"];
        assert!(grants(cluster, "stable.example.com", "databases", "watch"));
        assert!(grants(cluster, "stable.example.com", "databases", "patch"), "finalizer subscriptions need patch");
        assert!(grants(cluster, "events.k8s.io", "events", "create"));
        assert!(grants(cluster, "", "events", "patch"));
        assert!(!grants(cluster, "", "secrets", "get"));
        assert!(!grants(cluster, "coordination.k8s.io", "leases", "get"), "leases only in the lease namespace");
        assert!(!grants(cluster, "", "serviceaccounts", "impersonate"), "impersonation only in kreflex's namespace");
        let own = &find(&d, "Role", "kreflex", Some("kreflex-system"))["rules"];
        let imp = own.as_array().expect("rules").iter().find(|r| r["verbs"][0] == "impersonate").expect("impersonate");
        assert_eq!(imp["resourceNames"], json!(["kreflex-database-status"]));
        let binding = find(&d, "RoleBinding", "kreflex", Some("kreflex-system"));
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "kreflex", "namespace": "kreflex-system"}])
        );
        assert_eq!(binding["roleRef"]["kind"], "Role");
    }

    #[test]
    fn leader_election_gets_what_kube_lease_manager_does_on_leases_in_the_lease_namespace() {
        let options = Options { lease_namespace: Some("kreflex-leases".into()), ..Options::new("kreflex-system") };
        let d = docs_with(&options);
        let lease = &find(&d, "Role", "kreflex", Some("kreflex-leases"))["rules"];
        for verb in ["get", "list", "watch", "create", "update", "patch"] {
            assert!(grants(lease, "coordination.k8s.io", "leases", verb), "{verb}");
        }
        assert!(!grants(lease, "coordination.k8s.io", "leases", "delete"));
        assert!(grants(lease, "", "events", "create"), "Events about its own Pod");
        find(&d, "RoleBinding", "kreflex", Some("kreflex-leases"));
        // Both of kreflex's own namespaces are created, before anything is put in them.
        assert_eq!(d[0], json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kreflex-leases"}}));
        assert_eq!(d[1], json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kreflex-system"}}));
        assert!(d[2..].iter().all(|doc| doc["kind"] != "Namespace"));
    }

    #[test]
    fn the_namespace_comes_first_unless_left_out() {
        assert_eq!(docs()[0]["kind"], "Namespace");
        assert_eq!(docs()[0]["metadata"]["name"], "kreflex-system");
        let without = docs_with(&Options { with_namespace: false, ..Options::new("kreflex-system") });
        assert!(without.iter().all(|doc| doc["kind"] != "Namespace"));
        assert_eq!(without.len() + 1, docs().len());
    }

    #[test]
    fn no_rule_has_a_wildcard() {
        let mut p = plugin();
        p.subscriptions.push(Subscription::to(Gvk::new("", "v1", "ConfigMap")));
        for options in [
            Options::new("kreflex-system"),
            Options { watch_namespaces: vec!["shop".into()], ..Options::new("kreflex-system") },
        ] {
            for doc in manifests(&[p.clone()], &options, &|g| crate::model::guess_plural(&g.kind)) {
                for rule in doc["rules"].as_array().into_iter().flatten() {
                    for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                        let values = rule[field].as_array().into_iter().flatten();
                        assert!(values.clone().all(|v| v.as_str().is_some_and(|v| !v.contains('*'))), "{rule}");
                    }
                    assert!(!rule["verbs"].as_array().expect("verbs").is_empty(), "{rule}");
                }
            }
        }
    }

    #[test]
    fn watched_namespaces_turn_cluster_roles_into_roles_in_each_of_them() {
        let options = Options { watch_namespaces: vec!["shop".into(), "a".into()], ..Options::new("kreflex-system") };
        let yaml = rbac_yaml(&[plugin()], &options, &|g| crate::model::guess_plural(&g.kind));
        let d = docs_with(&options);
        assert!(d.iter().all(|doc| doc["kind"] != "ClusterRole" && doc["kind"] != "ClusterRoleBinding"), "{yaml}");
        for ns in ["shop", "a"] {
            let own = &find(&d, "Role", "kreflex", Some(ns))["rules"];
            assert!(grants(own, "stable.example.com", "databases", "watch"), "{ns}");
            assert!(grants(own, "stable.example.com", "databases", "patch"), "{ns}: finalizers");
            assert!(grants(own, "", "events", "create"), "{ns}");
            let plugin = &find(&d, "Role", "kreflex-database-status", Some(ns))["rules"];
            assert!(grants(plugin, "stable.example.com", "databases/status", "patch"), "{ns}");
            assert!(grants(plugin, "stable.example.com", "databases", "list"), "{ns}");
            find(&d, "RoleBinding", "kreflex-database-status", Some(ns));
        }
        // The plugin's grant in namespaces it named itself stays where it is.
        let b = &find(&d, "Role", "kreflex-database-status", Some("b"))["rules"];
        assert!(grants(b, "", "configmaps", "create"));
        assert!(!grants(b, "stable.example.com", "databases", "list"), "b is not watched: no reads there");
        let role = yaml
            .split("---\n")
            .find(|doc| doc.contains("kind: Role\n") && doc.contains("namespace: shop"))
            .expect("role");
        assert!(role.contains("# --watch-namespace: this Role replaces a ClusterRole"), "{role}");
        assert!(role.contains("cannot grant cluster-scoped kinds"), "{role}");
    }
}
