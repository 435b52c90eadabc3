//! Field selectors as kube-apiserver reads them: `label=value`, `label==value` and
//! `label!=value` terms joined by commas (with `\` escapes), over the field labels each
//! kind supports (every kind: `metadata.name` and `metadata.namespace`; Events: their
//! `involvedObject.*` / `regarding.*` fields and a few more; Secrets: `type`; Namespaces:
//! `status.phase`). Any other label is a 400 `field label not supported`. In: the
//! `fieldSelector` query parameter and the resource; out: a predicate over objects in the
//! form that resource serves them.

use super::resources::ResourceDef;
use super::status::ApiError;
use serde_json::Value;

/// Field labels of core v1 Events (`AddFieldLabelConversionsForEvent`).
const CORE_EVENT: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Field labels of events.k8s.io/v1 Events.
const EVENTS_EVENT: &[&str] = &[
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "type",
];

/// One parsed selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// `(label, equal, value)`; `equal` is false for `!=`.
    terms: Vec<(String, bool, String)>,
}

/// The labels `def` can be selected by, besides `metadata.name` and `metadata.namespace`.
fn kind_labels(def: &ResourceDef) -> &'static [&'static str] {
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Event") => CORE_EVENT,
        ("events.k8s.io", "Event") => EVENTS_EVENT,
        ("", "Secret") => &["type"],
        ("", "Namespace") => &["status.phase"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses the `fieldSelector` parameter for a resource.
    pub fn parse(def: &ResourceDef, text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.trim().is_empty() {
                continue;
            }
            let Some((label, equal, value)) = split_operator(&term) else {
                return Err(ApiError::bad_request(format!("invalid selector: '{text}'; can't understand '{term}'")));
            };
            let label = label.trim().to_owned();
            let supported = matches!(label.as_str(), "metadata.name" | "metadata.namespace")
                || kind_labels(def).contains(&label.as_str());
            if !supported {
                return Err(ApiError::bad_request(format!("field label not supported: {label}")));
            }
            terms.push((label, equal, unescape(&value)));
        }
        Ok(Self { terms })
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether an object (as the resource serves it) satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(label, equal, value)| (field_value(obj, label) == *value) == *equal)
    }
}

/// The value of a field label: its JSON path, except an Event's `source`, which is the
/// reporting component.
fn field_value(obj: &Value, label: &str) -> String {
    let path = if label == "source" { "source.component" } else { label };
    let v = path.split('.').try_fold(obj, |cur, k| cur.get(k));
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Splits at `sep` where it is not escaped by `\`.
fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in text.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                out.last_mut().expect("never empty").extend(['\\', c]);
            }
            '\\' => escaped = true,
            c if c == sep => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out
}

/// `label`, whether the operator is `=`/`==` (not `!=`), and the still-escaped value.
fn split_operator(term: &str) -> Option<(String, bool, String)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'!' if bytes.get(i + 1) == Some(&b'=') => return Some((term[..i].into(), false, term[i + 2..].into())),
            b'=' if bytes.get(i + 1) == Some(&b'=') => return Some((term[..i].into(), true, term[i + 2..].into())),
            b'=' => return Some((term[..i].into(), true, term[i + 1..].into())),
            _ => {}
        }
        i += 1;
    }
    None
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut escaped = false;
    for c in v.chars() {
        if c == '\\' && !escaped {
            escaped = true;
        } else {
            escaped = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;
    use serde_json::json;

    fn def(group: &str, plural: &str) -> ResourceDef {
        builtins().into_iter().find(|d| d.group == group && d.plural == plural).expect("built in")
    }

    #[test]
    fn kubectl_describe_selects_core_events_by_involved_object() {
        let core = def("", "events");
        let sel = FieldSelector::parse(
            &core,
            "involvedObject.name=legacy,involvedObject.namespace=default,involvedObject.kind=Database,involvedObject.uid=u1",
        )
        .expect("parses");
        let ev = |name: &str| json!({"involvedObject": {"kind": "Database", "name": name, "namespace": "default", "uid": "u1"}});
        assert!(sel.matches(&ev("legacy")));
        assert!(!sel.matches(&ev("orders")));
        let source = FieldSelector::parse(&core, "source=kreflex,type!=Normal").expect("parses");
        assert!(source.matches(&json!({"source": {"component": "kreflex"}, "type": "Warning"})));
    }

    #[test]
    fn each_kind_accepts_only_its_field_labels() {
        let events = def("events.k8s.io", "events");
        assert!(FieldSelector::parse(&events, "regarding.name==legacy").is_ok());
        let err = FieldSelector::parse(&events, "involvedObject.name=legacy").expect_err("core label");
        assert_eq!((err.code, err.message.as_str()), (400, "field label not supported: involvedObject.name"));
        assert!(FieldSelector::parse(&def("", "configmaps"), "type=x").is_err());
        assert!(FieldSelector::parse(&def("", "secrets"), "type=Opaque,metadata.name=a").is_ok());
        assert!(FieldSelector::parse(&def("", "secrets"), "type").is_err());
    }

    #[test]
    fn escaped_separators_are_part_of_the_value() {
        let sel = FieldSelector::parse(&def("", "configmaps"), r"metadata.name=a\,b").expect("parses");
        assert!(sel.matches(&json!({"metadata": {"name": "a,b"}})));
    }
}
