//! Kubernetes protobuf request bodies, which kubectl sends for built-in kinds
//! (`kubectl create namespace`, `create configmap`, `auth can-i`, ...). In: a body in the
//! `k8s\0` envelope (a `runtime.Unknown` naming apiVersion and kind, holding the encoded
//! object); out: the object's JSON form, which the handlers treat like any JSON body.
//! The messages are the generated `k8s-pb` types; the conversion to JSON follows the Go
//! JSON encoding of the same types: fields are camelCase and omitted when empty, `Time`
//! is RFC 3339 to the second, `MicroTime` to the microsecond, byte fields (Secret data)
//! are base64, `Quantity` is its string, `IntOrString` its int or string, and
//! `RawExtension` / `FieldsV1` hold JSON that is inlined. CustomResourceDefinitions keep
//! their schema's `$ref`/`x-kubernetes-*` names, and booleans that Go's protobuf always
//! carries but its JSON leaves out when false (`omitempty`) are left out here too. The
//! workload and network kinds (Deployment, Service, PodDisruptionBudget, NetworkPolicy) are
//! in `workloads`.

use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core_v1;
use k8s_pb::api::events::v1 as events;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

mod workloads;

/// The magic prefix of a Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The body does not start with the `k8s\0` envelope.
    #[error("the body is not a Kubernetes protobuf object (no k8s\\0 prefix)")]
    NoEnvelope,
    /// The envelope or the object is not valid protobuf for its kind.
    #[error("cannot decode the protobuf body: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A kind the server does not read as protobuf.
    #[error("no protobuf decoding for {api_version}, Kind={kind}")]
    Unsupported {
        /// apiVersion in the envelope.
        api_version: String,
        /// kind in the envelope.
        kind: String,
    },
}

/// The JSON form of a protobuf body: the object with its `apiVersion` and `kind`.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let unknown = Unknown::decode(body.strip_prefix(MAGIC).ok_or(ProtoError::NoEnvelope)?)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => object::<core_v1::Namespace>(&raw)?,
        ("v1", "ConfigMap") => object::<core_v1::ConfigMap>(&raw)?,
        ("v1", "Secret") => object::<core_v1::Secret>(&raw)?,
        ("v1", "ServiceAccount") => object::<core_v1::ServiceAccount>(&raw)?,
        ("v1", "Event") => object::<core_v1::Event>(&raw)?,
        ("events.k8s.io/v1", "Event") => object::<events::Event>(&raw)?,
        ("coordination.k8s.io/v1", "Lease") => object::<coordination::Lease>(&raw)?,
        ("v1", "Service") => object::<core_v1::Service>(&raw)?,
        ("apps/v1", "Deployment") => object::<k8s_pb::api::apps::v1::Deployment>(&raw)?,
        ("policy/v1", "PodDisruptionBudget") => object::<k8s_pb::api::policy::v1::PodDisruptionBudget>(&raw)?,
        ("networking.k8s.io/v1", "NetworkPolicy") => object::<k8s_pb::api::networking::v1::NetworkPolicy>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "Role") => object::<rbac::Role>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => object::<rbac::ClusterRole>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => object::<rbac::RoleBinding>(&raw)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => object::<rbac::ClusterRoleBinding>(&raw)?,
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => object::<apiext::CustomResourceDefinition>(&raw)?,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => object::<authz::SelfSubjectAccessReview>(&raw)?,
        // Client libraries send DeleteOptions under the version of the object's group.
        (_, "DeleteOptions") => object::<meta::DeleteOptions>(&raw)?,
        _ => return Err(ProtoError::Unsupported { api_version, kind }),
    };
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

fn object<M: Message + Default + Json>(raw: &[u8]) -> Result<Value, ProtoError> {
    Ok(M::decode(raw)?.json().unwrap_or_else(|| Value::Object(Map::new())))
}

/// A value with a JSON form; `None` when Go's encoding omits it (empty and `omitempty`).
trait Json {
    fn json(&self) -> Option<Value>;
}

impl Json for String {
    fn json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| Value::String(self.clone()))
    }
}

impl Json for bool {
    fn json(&self) -> Option<Value> {
        Some(Value::Bool(*self))
    }
}

impl Json for i32 {
    fn json(&self) -> Option<Value> {
        Some(Value::from(*self))
    }
}

impl Json for i64 {
    fn json(&self) -> Option<Value> {
        Some(Value::from(*self))
    }
}

impl Json for f64 {
    fn json(&self) -> Option<Value> {
        serde_json::Number::from_f64(*self).map(Value::Number)
    }
}

/// `bytes` fields are base64 in JSON (Secret `data`, ConfigMap `binaryData`).
impl Json for Vec<u8> {
    fn json(&self) -> Option<Value> {
        use base64::Engine;
        Some(Value::String(base64::engine::general_purpose::STANDARD.encode(self)))
    }
}

impl<T: Json> Json for Option<T> {
    fn json(&self) -> Option<Value> {
        self.as_ref().and_then(Json::json)
    }
}

impl<T: Json> Json for Vec<T> {
    fn json(&self) -> Option<Value> {
        (!self.is_empty()).then(|| Value::Array(self.iter().map(|v| v.json().unwrap_or(Value::Null)).collect()))
    }
}

impl<T: Json> Json for BTreeMap<String, T> {
    fn json(&self) -> Option<Value> {
        (!self.is_empty())
            .then(|| Value::Object(self.iter().map(|(k, v)| (k.clone(), v.json().unwrap_or_default())).collect()))
    }
}

impl<T: Json> Json for Box<T> {
    fn json(&self) -> Option<Value> {
        (**self).json()
    }
}

fn timestamp(seconds: Option<i64>, nanos: Option<i32>) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(seconds.unwrap_or(0), nanos.unwrap_or(0)).ok()
}

/// `metav1.Time`: RFC 3339, whole seconds; the zero time (a pod template's
/// `creationTimestamp`) is `null`, as Go encodes it.
impl Json for meta::Time {
    fn json(&self) -> Option<Value> {
        if self.seconds.unwrap_or(0) == 0 && self.nanos.unwrap_or(0) == 0 {
            return Some(Value::Null);
        }
        let t = timestamp(self.seconds, self.nanos)?;
        Some(Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
    }
}

/// `metav1.MicroTime`: RFC 3339 with six fractional digits.
impl Json for meta::MicroTime {
    fn json(&self) -> Option<Value> {
        let t = timestamp(self.seconds, self.nanos)?;
        let micros = t.subsec_nanosecond() / 1000;
        Some(Value::String(format!("{}.{micros:06}Z", t.strftime("%Y-%m-%dT%H:%M:%S"))))
    }
}

/// `resource.Quantity`: its canonical string.
impl Json for Quantity {
    fn json(&self) -> Option<Value> {
        self.string.json()
    }
}

/// `intstr.IntOrString`: type 0 is the int, type 1 the string.
impl Json for IntOrString {
    fn json(&self) -> Option<Value> {
        match self.r#type {
            Some(1) => Some(Value::String(self.str_val.clone().unwrap_or_default())),
            _ => Some(Value::from(self.int_val.unwrap_or(0))),
        }
    }
}

/// `runtime.RawExtension`: the embedded object's JSON, inlined.
impl Json for RawExtension {
    fn json(&self) -> Option<Value> {
        raw_json(self.raw.as_deref())
    }
}

/// `metav1.FieldsV1`: the field set's JSON, inlined.
impl Json for meta::FieldsV1 {
    fn json(&self) -> Option<Value> {
        raw_json(self.raw.as_deref())
    }
}

/// Raw JSON bytes as a value (a nested protobuf object, which clients do not send in
/// these fields, has no JSON form here).
fn raw_json(raw: Option<&[u8]>) -> Option<Value> {
    serde_json::from_slice(raw?).ok()
}

/// The JSON name of a field: the override, or the Rust name in camelCase.
fn json_name(field: &str, rename: Option<&str>) -> String {
    if let Some(r) = rename {
        return r.to_owned();
    }
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.trim_start_matches("r#").chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// `Json` for generated messages, field by field (every field of each message is listed,
/// so a field a client sends is never dropped). `field = "name"` overrides the JSON name.
macro_rules! messages {
    ($($ty:ty { $($field:ident $(= $name:literal)?),* $(,)? })*) => {$(
        impl Json for $ty {
            fn json(&self) -> Option<Value> {
                let mut m = Map::new();
                $(
                    if let Some(v) = self.$field.json() {
                        m.insert(json_name(stringify!($field), None $(.or(Some($name)))?), v);
                    }
                )*
                Some(Value::Object(m))
            }
        }
    )*};
}

messages! {
    meta::OwnerReference { api_version, kind, name, uid, controller, block_owner_deletion }
    meta::ManagedFieldsEntry { manager, operation, api_version, time, fields_type, fields_v1, subresource }
    meta::LabelSelector { match_labels, match_expressions }
    meta::LabelSelectorRequirement { key, operator, values }
    meta::FieldSelectorRequirement { key, operator, values }
    meta::DeleteOptions { grace_period_seconds, preconditions, orphan_dependents, propagation_policy, dry_run,
        ignore_store_read_error_with_cluster_breaking_potential }
    meta::Preconditions { uid, resource_version }
    core_v1::Namespace { metadata, spec, status }
    core_v1::NamespaceSpec { finalizers }
    core_v1::NamespaceStatus { phase, conditions }
    core_v1::NamespaceCondition { r#type, status, last_transition_time, reason, message }
    core_v1::ConfigMap { metadata, immutable, data, binary_data }
    core_v1::Secret { metadata, immutable, data, string_data, r#type }
    core_v1::ServiceAccount { metadata, secrets, image_pull_secrets, automount_service_account_token }
    core_v1::ObjectReference { kind, namespace, name, uid, api_version, resource_version, field_path }
    core_v1::LocalObjectReference { name }
    core_v1::Event { metadata, involved_object, reason, message, source, first_timestamp, last_timestamp, count,
        r#type, event_time, series, action, related, reporting_component, reporting_instance }
    core_v1::EventSource { component, host }
    core_v1::EventSeries { count, last_observed_time }
    events::Event { metadata, event_time, series, reporting_controller, reporting_instance, action, reason,
        regarding, related, note, r#type, deprecated_source, deprecated_first_timestamp, deprecated_last_timestamp,
        deprecated_count }
    events::EventSeries { count, last_observed_time }
    coordination::Lease { metadata, spec }
    coordination::LeaseSpec { holder_identity, lease_duration_seconds, acquire_time, renew_time, lease_transitions,
        strategy, preferred_holder }
    rbac::Role { metadata, rules }
    rbac::ClusterRole { metadata, rules, aggregation_rule }
    rbac::PolicyRule { verbs, api_groups, resources, resource_names, non_resource_ur_ls = "nonResourceURLs" }
    rbac::AggregationRule { cluster_role_selectors }
    rbac::RoleBinding { metadata, subjects, role_ref }
    rbac::ClusterRoleBinding { metadata, subjects, role_ref }
    rbac::Subject { kind, api_group, name, namespace }
    rbac::RoleRef { api_group, kind, name }
    authz::SelfSubjectAccessReview { metadata, spec, status }
    authz::SelfSubjectAccessReviewSpec { resource_attributes, non_resource_attributes }
    authz::ResourceAttributes { namespace, verb, group, version, resource, subresource, name, field_selector,
        label_selector }
    authz::NonResourceAttributes { path, verb }
    authz::FieldSelectorAttributes { raw_selector, requirements }
    authz::LabelSelectorAttributes { raw_selector, requirements }
    authz::SubjectAccessReviewStatus { allowed, denied, reason, evaluation_error }
}

/// An object of the fields that have a JSON form, in order.
fn fields<const N: usize>(fields: [(&str, Option<Value>); N]) -> Option<Value> {
    Some(Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect()))
}

/// A Go bool or number that is no pointer and tagged `omitempty`: Go's protobuf encoding
/// always carries it, its JSON encoding leaves it out when zero.
fn omit_zero(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !matches!(v, Value::Bool(false)) && v.as_f64() != Some(0.0))
}

/// An object with the fields of embedded structs (`json:",inline"`) merged in.
fn inlined<const N: usize>(base: Option<Value>, embedded: [Option<Value>; N]) -> Option<Value> {
    let mut base = base?;
    if let Some(m) = base.as_object_mut() {
        for e in embedded.into_iter().flatten() {
            if let Value::Object(fields) = e {
                m.extend(fields);
            }
        }
    }
    Some(base)
}

/// A Go `bool` field tagged `omitempty`: Go's protobuf encoding always carries it, its JSON
/// encoding leaves it out when false.
fn omit_false(b: Option<bool>) -> Option<Value> {
    b.filter(|b| *b).map(Value::Bool)
}

/// `generation` is a number tagged `omitempty` (zero in a pod template's metadata).
impl Json for meta::ObjectMeta {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("generateName", self.generate_name.json()),
            ("namespace", self.namespace.json()),
            ("selfLink", self.self_link.json()),
            ("uid", self.uid.json()),
            ("resourceVersion", self.resource_version.json()),
            ("generation", omit_zero(self.generation.json())),
            ("creationTimestamp", self.creation_timestamp.json()),
            ("deletionTimestamp", self.deletion_timestamp.json()),
            ("deletionGracePeriodSeconds", self.deletion_grace_period_seconds.json()),
            ("labels", self.labels.json()),
            ("annotations", self.annotations.json()),
            ("ownerReferences", self.owner_references.json()),
            ("finalizers", self.finalizers.json()),
            ("managedFields", self.managed_fields.json()),
        ])
    }
}

/// `apiextensions.JSON`: the raw JSON value, inlined.
impl Json for apiext::Json {
    fn json(&self) -> Option<Value> {
        raw_json(self.raw.as_deref())
    }
}

/// `JSONSchemaProps` as its Go type encodes it: `$schema`/`$ref` and `x-kubernetes-*`
/// names, and the `omitempty` booleans left out when false.
impl Json for apiext::JsonSchemaProps {
    fn json(&self) -> Option<Value> {
        fields([
            ("id", self.id.json()),
            ("$schema", self.schema.json()),
            ("$ref", self.r#ref.json()),
            ("description", self.description.json()),
            ("type", self.r#type.json()),
            ("format", self.format.json()),
            ("title", self.title.json()),
            ("default", self.default.json()),
            ("maximum", self.maximum.json()),
            ("exclusiveMaximum", omit_false(self.exclusive_maximum)),
            ("minimum", self.minimum.json()),
            ("exclusiveMinimum", omit_false(self.exclusive_minimum)),
            ("maxLength", self.max_length.json()),
            ("minLength", self.min_length.json()),
            ("pattern", self.pattern.json()),
            ("maxItems", self.max_items.json()),
            ("minItems", self.min_items.json()),
            ("uniqueItems", omit_false(self.unique_items)),
            ("multipleOf", self.multiple_of.json()),
            ("enum", self.r#enum.json()),
            ("maxProperties", self.max_properties.json()),
            ("minProperties", self.min_properties.json()),
            ("required", self.required.json()),
            ("items", self.items.json()),
            ("allOf", self.all_of.json()),
            ("oneOf", self.one_of.json()),
            ("anyOf", self.any_of.json()),
            ("not", self.not.json()),
            ("properties", self.properties.json()),
            ("additionalProperties", self.additional_properties.json()),
            ("patternProperties", self.pattern_properties.json()),
            ("dependencies", self.dependencies.json()),
            ("additionalItems", self.additional_items.json()),
            ("definitions", self.definitions.json()),
            ("externalDocs", self.external_docs.json()),
            ("example", self.example.json()),
            ("nullable", omit_false(self.nullable)),
            ("x-kubernetes-preserve-unknown-fields", self.x_kubernetes_preserve_unknown_fields.json()),
            ("x-kubernetes-embedded-resource", omit_false(self.x_kubernetes_embedded_resource)),
            ("x-kubernetes-int-or-string", omit_false(self.x_kubernetes_int_or_string)),
            ("x-kubernetes-list-map-keys", self.x_kubernetes_list_map_keys.json()),
            ("x-kubernetes-list-type", self.x_kubernetes_list_type.json()),
            ("x-kubernetes-map-type", self.x_kubernetes_map_type.json()),
            ("x-kubernetes-validations", self.x_kubernetes_validations.json()),
        ])
    }
}

/// A schema, or a list of schemas (`items`).
impl Json for apiext::JsonSchemaPropsOrArray {
    fn json(&self) -> Option<Value> {
        match &self.schema {
            Some(schema) => schema.json(),
            None => Some(self.j_son_schemas.json().unwrap_or_else(|| Value::Array(Vec::new()))),
        }
    }
}

/// A schema, or whether anything is allowed (`additionalProperties`, `additionalItems`).
impl Json for apiext::JsonSchemaPropsOrBool {
    fn json(&self) -> Option<Value> {
        match &self.schema {
            Some(schema) => schema.json(),
            None => Some(Value::Bool(self.allows.unwrap_or(false))),
        }
    }
}

/// A list of property names, or a schema (`dependencies`).
impl Json for apiext::JsonSchemaPropsOrStringArray {
    fn json(&self) -> Option<Value> {
        match (&self.property, &self.schema) {
            (p, _) if !p.is_empty() => p.json(),
            (_, Some(schema)) => schema.json(),
            _ => Some(Value::Null),
        }
    }
}

/// `served` and `storage` are always encoded; `deprecated` only when true.
impl Json for apiext::CustomResourceDefinitionVersion {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("served", Some(Value::Bool(self.served.unwrap_or(false)))),
            ("storage", Some(Value::Bool(self.storage.unwrap_or(false)))),
            ("deprecated", omit_false(self.deprecated)),
            ("deprecationWarning", self.deprecation_warning.json()),
            ("schema", self.schema.json()),
            ("subresources", self.subresources.json()),
            ("additionalPrinterColumns", self.additional_printer_columns.json()),
            ("selectableFields", self.selectable_fields.json()),
        ])
    }
}

/// `preserveUnknownFields` is `omitempty`.
impl Json for apiext::CustomResourceDefinitionSpec {
    fn json(&self) -> Option<Value> {
        fields([
            ("group", self.group.json()),
            ("names", self.names.json()),
            ("scope", self.scope.json()),
            ("versions", self.versions.json()),
            ("conversion", self.conversion.json()),
            ("preserveUnknownFields", omit_false(self.preserve_unknown_fields)),
        ])
    }
}

/// `priority` is `omitempty`.
impl Json for apiext::CustomResourceColumnDefinition {
    fn json(&self) -> Option<Value> {
        fields([
            ("name", self.name.json()),
            ("type", self.r#type.json()),
            ("format", self.format.json()),
            ("description", self.description.json()),
            ("priority", self.priority.filter(|p| *p != 0).json()),
            ("jsonPath", self.json_path.json()),
        ])
    }
}

/// An empty message that is present: `{}` (the `status` subresource).
impl Json for apiext::CustomResourceSubresourceStatus {
    fn json(&self) -> Option<Value> {
        Some(Value::Object(Map::new()))
    }
}

messages! {
    apiext::CustomResourceDefinition { metadata, spec, status }
    apiext::CustomResourceDefinitionNames { plural, singular, short_names, kind, list_kind, categories }
    apiext::CustomResourceConversion { strategy, webhook }
    apiext::WebhookConversion { client_config, conversion_review_versions }
    apiext::WebhookClientConfig { url, service, ca_bundle }
    apiext::ServiceReference { namespace, name, path, port }
    apiext::CustomResourceValidation { open_apiv3_schema = "openAPIV3Schema" }
    apiext::CustomResourceSubresources { status, scale }
    apiext::CustomResourceSubresourceScale { spec_replicas_path, status_replicas_path, label_selector_path }
    apiext::SelectableField { json_path }
    apiext::ExternalDocumentation { description, url }
    apiext::ValidationRule { rule, message, message_expression, reason, field_path, optional_old_self }
    apiext::CustomResourceDefinitionStatus { conditions, accepted_names, stored_versions, observed_generation }
    apiext::CustomResourceDefinitionCondition { r#type, status, last_transition_time, reason, message,
        observed_generation }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `obj` in the envelope kubectl sends.
    fn envelope(api_version: &str, kind: &str, obj: &impl Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(obj.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    fn meta(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta { name: Some(name.into()), namespace: Some(String::new()), ..Default::default() })
    }

    #[test]
    fn secret_bytes_become_base64_and_empty_fields_are_omitted() {
        let secret = core_v1::Secret {
            metadata: meta("creds"),
            data: [("password".to_owned(), b"s3cr\xffet".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let v = decode(&envelope("v1", "Secret", &secret)).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                "data": {"password": "czNjcv9ldA=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn a_deployment_takes_its_go_json_form() {
        use k8s_pb::api::apps::v1 as apps;
        let container = core_v1::Container {
            name: Some("web".into()),
            image: Some("nginx".into()),
            // Go's protobuf carries these non-pointer fields even when zero.
            stdin: Some(false),
            tty: Some(false),
            liveness_probe: Some(core_v1::Probe {
                handler: Some(core_v1::ProbeHandler {
                    http_get: Some(core_v1::HttpGetAction {
                        path: Some("/healthz".into()),
                        port: Some(IntOrString { r#type: Some(1), str_val: Some("http".into()), int_val: Some(0) }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(0),
                ..Default::default()
            }),
            security_context: Some(core_v1::SecurityContext {
                allow_privilege_escalation: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let deployment = apps::Deployment {
            metadata: meta("web"),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_owned(), "web".to_owned())].into(),
                    ..Default::default()
                }),
                template: Some(core_v1::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels: [("app".to_owned(), "web".to_owned())].into(),
                        creation_timestamp: Some(meta::Time::default()),
                        generation: Some(0),
                        ..Default::default()
                    }),
                    spec: Some(core_v1::PodSpec {
                        containers: vec![container],
                        volumes: vec![core_v1::Volume {
                            name: Some("cache".into()),
                            volume_source: Some(core_v1::VolumeSource {
                                empty_dir: Some(core_v1::EmptyDirVolumeSource::default()),
                                ..Default::default()
                            }),
                        }],
                        host_network: Some(false),
                        ..Default::default()
                    }),
                }),
                paused: Some(false),
                ..Default::default()
            }),
            status: None,
        };
        let v = decode(&envelope("apps/v1", "Deployment", &deployment)).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx",
                                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                                "securityContext": {"allowPrivilegeEscalation": false}}],
                            "volumes": [{"name": "cache", "emptyDir": {}}]}}}})
        );
    }

    #[test]
    fn times_are_rfc3339_and_micro_times_keep_microseconds() {
        let event = events::Event {
            metadata: meta("e"),
            event_time: Some(meta::MicroTime { seconds: Some(1_764_565_200), nanos: Some(123_456_789) }),
            deprecated_first_timestamp: Some(meta::Time { seconds: Some(1_764_565_200), nanos: Some(0) }),
            note: Some("disk full".into()),
            r#type: Some("Warning".into()),
            regarding: Some(core_v1::ObjectReference { kind: Some("Database".into()), ..Default::default() }),
            ..Default::default()
        };
        let v = decode(&envelope("events.k8s.io/v1", "Event", &event)).expect("decodes");
        assert_eq!(v["eventTime"], "2025-12-01T05:00:00.123456Z");
        assert_eq!(v["deprecatedFirstTimestamp"], "2025-12-01T05:00:00Z");
        assert_eq!((v["note"].as_str(), v["regarding"]["kind"].as_str()), (Some("disk full"), Some("Database")));
    }

    #[test]
    fn rbac_rules_keep_their_irregular_json_names() {
        let role = rbac::ClusterRole {
            metadata: meta("reader"),
            rules: vec![rbac::PolicyRule {
                verbs: vec!["get".into()],
                non_resource_ur_ls: vec!["/healthz".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = decode(&envelope("rbac.authorization.k8s.io/v1", "ClusterRole", &role)).expect("decodes");
        assert_eq!(v["rules"], json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]));
    }

    #[test]
    fn quantities_int_or_strings_and_raw_extensions_take_their_json_forms() {
        assert_eq!(Quantity { string: Some("1Gi".into()) }.json(), Some(json!("1Gi")));
        assert_eq!(IntOrString { r#type: Some(0), int_val: Some(8080), str_val: None }.json(), Some(json!(8080)));
        assert_eq!(
            IntOrString { r#type: Some(1), int_val: None, str_val: Some("http".into()) }.json(),
            Some(json!("http"))
        );
        assert_eq!(RawExtension { raw: Some(br#"{"a":1}"#.to_vec()) }.json(), Some(json!({"a": 1})));
    }

    #[test]
    fn custom_resource_definitions_take_their_go_json_form() {
        let prop = |t: &str| apiext::JsonSchemaProps {
            r#type: Some(t.into()),
            nullable: Some(false),
            unique_items: Some(false),
            ..Default::default()
        };
        let schema = apiext::JsonSchemaProps {
            r#type: Some("object".into()),
            properties: [
                ("size".to_owned(), apiext::JsonSchemaProps { pattern: Some("^[0-9]+Gi$".into()), ..prop("string") }),
                (
                    "replicas".to_owned(),
                    apiext::JsonSchemaProps {
                        minimum: Some(1.0),
                        default: Some(apiext::Json { raw: Some(b"1".to_vec()) }),
                        ..prop("integer")
                    },
                ),
                (
                    "tags".to_owned(),
                    apiext::JsonSchemaProps {
                        items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                            schema: Some(Box::new(prop("string"))),
                            j_son_schemas: vec![],
                        })),
                        x_kubernetes_list_type: Some("set".into()),
                        ..prop("array")
                    },
                ),
                (
                    "extra".to_owned(),
                    apiext::JsonSchemaProps {
                        x_kubernetes_preserve_unknown_fields: Some(true),
                        additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
                            allows: Some(true),
                            schema: None,
                        })),
                        ..prop("object")
                    },
                ),
            ]
            .into(),
            ..Default::default()
        };
        let crd = apiext::CustomResourceDefinition {
            metadata: meta("databases.stable.example.com"),
            spec: Some(apiext::CustomResourceDefinitionSpec {
                group: Some("stable.example.com".into()),
                names: Some(apiext::CustomResourceDefinitionNames {
                    plural: Some("databases".into()),
                    kind: Some("Database".into()),
                    short_names: vec!["db".into()],
                    ..Default::default()
                }),
                scope: Some("Namespaced".into()),
                versions: vec![apiext::CustomResourceDefinitionVersion {
                    name: Some("v1".into()),
                    served: Some(true),
                    storage: Some(false),
                    deprecated: Some(false),
                    schema: Some(apiext::CustomResourceValidation { open_apiv3_schema: Some(schema) }),
                    subresources: Some(apiext::CustomResourceSubresources {
                        status: Some(apiext::CustomResourceSubresourceStatus {}),
                        scale: None,
                    }),
                    additional_printer_columns: vec![apiext::CustomResourceColumnDefinition {
                        name: Some("Age".into()),
                        r#type: Some("date".into()),
                        json_path: Some(".metadata.creationTimestamp".into()),
                        priority: Some(0),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                conversion: None,
                preserve_unknown_fields: Some(false),
            }),
            status: None,
        };
        let v = decode(&envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd)).expect("decodes");
        assert_eq!(
            v["spec"],
            json!({"group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "databases", "kind": "Database", "shortNames": ["db"]},
            "versions": [{"name": "v1", "served": true, "storage": false,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "size": {"type": "string", "pattern": "^[0-9]+Gi$"},
                    "replicas": {"type": "integer", "minimum": 1.0, "default": 1},
                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "additionalProperties": true}
                }}}}]})
        );
        assert_eq!(
            (v["apiVersion"].as_str(), v["kind"].as_str()),
            (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition"))
        );
    }

    #[test]
    fn kinds_without_a_decoder_and_garbage_are_errors() {
        let cm = core_v1::ConfigMap::default();
        assert!(matches!(decode(&envelope("apps/v1", "DaemonSet", &cm)), Err(ProtoError::Unsupported { .. })));
        assert!(matches!(decode(b"{\"kind\":\"Namespace\"}"), Err(ProtoError::NoEnvelope)));
        assert!(matches!(decode(b"k8s\0\xff\xff"), Err(ProtoError::Decode(_))));
    }
}
