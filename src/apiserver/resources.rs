//! What the embedded API server serves: built-in kinds and the kinds CustomResourceDefinitions
//! add, with their names, scope, subresources, schema and printer columns, and the
//! registry behaviours that differ by kind (unconditional updates, what a delete returns).

use serde_json::Value;

/// A printer column (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `date`, ...
    pub kind: String,
    /// Simple JSONPath (`.spec.engine`).
    pub json_path: String,
}

/// One served resource in one version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: String,
    /// Version served.
    pub version: String,
    /// Plural (URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Short names (`db`).
    pub short_names: Vec<String>,
    /// Categories (`all`: `kubectl get all` lists the resource).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Serves a `status` subresource.
    pub status: bool,
    /// A custom resource (generation rules, schema, no strategic merge).
    pub custom: bool,
    /// `openAPIV3Schema`, if any.
    pub schema: Option<Value>,
    /// Printer columns after NAME.
    pub columns: Vec<Column>,
}

impl ResourceDef {
    /// `group/version` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group` (or `plural` for core), as in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `Kind.group` (or `Kind`), as in validation messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }

    /// Whether a PUT may leave out `metadata.resourceVersion` (the registry strategy's
    /// `AllowUnconditionalUpdate`): built-in kinds yes, custom resources and CRDs no.
    pub fn allows_unconditional_update(&self) -> bool {
        !(self.custom || self.kind == "CustomResourceDefinition")
    }

    /// Whether a delete that removes the object answers with the object (the registry's
    /// `ReturnDeletedObject`, or a kind that is always deleted through finalizers);
    /// otherwise it answers with a `Success` Status naming it.
    pub fn returns_deleted_object(&self) -> bool {
        matches!(self.kind.as_str(), "ServiceAccount" | "Namespace" | "CustomResourceDefinition")
    }

    /// Whether the registry keeps `metadata.generation` (1 at creation, one more for each
    /// change of the spec): custom resources, CRDs and the built-in kinds whose strategy
    /// sets it.
    pub fn tracks_generation(&self) -> bool {
        self.custom
            || matches!(
                self.kind.as_str(),
                "CustomResourceDefinition" | "Deployment" | "PodDisruptionBudget" | "NetworkPolicy"
            )
    }

    /// What declares how the object's lists and maps merge (server-side apply and strategic
    /// merge): a custom resource's schema, a built-in kind's `structure`.
    pub fn structure(&self) -> Option<&Value> {
        if self.custom { self.schema.as_ref() } else { super::structure::of(&self.group, &self.kind) }
    }

    /// Whether the resource serves a `scale` subresource (`autoscaling/v1` Scale).
    pub fn scale(&self) -> bool {
        self.kind == "Deployment" && self.group == "apps"
    }

    /// Whether a change of annotations also moves the generation (a Deployment copies its
    /// annotations to its ReplicaSets).
    pub fn annotations_move_generation(&self) -> bool {
        self.kind == "Deployment" && self.group == "apps"
    }

    /// The storage key shared by every version of the resource (and by the resources
    /// served from another's storage: events.k8s.io Events are core Events).
    pub fn storage_key(&self) -> (String, String) {
        match super::convert::storage_of(self) {
            Some((group, _, plural)) => (group.to_owned(), plural.to_owned()),
            None => (self.group.clone(), self.plural.clone()),
        }
    }
}

fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool, short: &[&str]) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        namespaced,
        status: false,
        custom: false,
        schema: None,
        columns: Vec::new(),
    }
}

/// The built-in kinds kreflex and kubectl need.
pub fn builtins() -> Vec<ResourceDef> {
    let mut out = vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"]),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
        builtin("", "v1", "secrets", "Secret", true, &[]),
        builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
        builtin("", "v1", "events", "Event", true, &["ev"]),
        builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
        builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
        builtin("", "v1", "services", "Service", true, &["svc"]),
        builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
        builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"]),
        builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"]),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        ),
        builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]),
        builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[]),
        builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[]),
        builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[]),
    ];
    for d in &mut out {
        match d.kind.as_str() {
            "Namespace" | "CustomResourceDefinition" | "Service" | "Deployment" | "PodDisruptionBudget" => {
                d.status = true
            }
            _ => {}
        }
        if matches!(d.kind.as_str(), "Deployment" | "Service") {
            d.categories = vec!["all".into()];
        }
        if d.plural == "customresourcedefinitions" {
            d.singular = "customresourcedefinition".into();
        }
    }
    out
}

/// The resources a CRD object defines (one per served version), or an error message for a
/// CRD that cannot be served.
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceDef>, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let group = s(spec, "group").ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let plural = s(names, "plural").ok_or("spec.names.plural is required")?;
    let kind = s(names, "kind").ok_or("spec.names.kind is required")?;
    let singular = s(names, "singular").unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let categories: Vec<String> = names
        .get("categories")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let expected = format!("{plural}.{group}");
    if crd.pointer("/metadata/name").and_then(Value::as_str) != Some(expected.as_str()) {
        return Err(format!("metadata.name: Invalid value: must be spec.names.plural+\".\"+spec.group ({expected})"));
    }
    let namespaced = s(spec, "scope").as_deref() != Some("Cluster");
    let versions = spec.get("versions").and_then(Value::as_array).ok_or("spec.versions is required")?;
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let version = s(v, "name").ok_or("spec.versions[].name is required")?;
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(Column {
                            name: s(c, "name")?,
                            kind: s(c, "type").unwrap_or_else(|| "string".into()),
                            json_path: s(c, "jsonPath")?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceDef {
            group: group.clone(),
            version,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            short_names: short_names.clone(),
            categories: categories.clone(),
            namespaced,
            status: v.pointer("/subresources/status").is_some(),
            custom: true,
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            columns,
        });
    }
    if out.is_empty() {
        return Err("spec.versions: no served version".into());
    }
    Ok(out)
}
