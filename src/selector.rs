//! Kubernetes label and field selectors: parsing and matching.
//!
//! Used wherever objects are filtered by selector without an API server doing it: the
//! host's `list-objects` over a directory of objects (`kreflex test`), subscription
//! matching in the router, and the embedded API server.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the key is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed selector: all requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

/// A selector that does not parse.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector text.
    pub selector: String,
    /// What is wrong.
    pub reason: String,
}

impl Selector {
    /// Parses a label selector (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError { selector: text.to_owned(), reason };
        let mut reqs = Vec::new();
        for term in split_terms(text).map_err(err)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_term(term).map_err(err)?);
        }
        Ok(Selector(reqs))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Whether the labels of a JSON object (`metadata.labels`) satisfy the selector.
    pub fn matches_object(&self, object: &serde_json::Value) -> bool {
        self.matches(&labels_of(object))
    }

    /// True for the empty selector.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `metadata.labels` of a JSON object (non-string values are ignored).
pub fn labels_of(object: &serde_json::Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.as_object())
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// Splits on commas that are not inside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    out.push(&text[start..]);
    Ok(out)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(valid_key(key.trim())?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(valid_key(k.trim())?, valid_value(v.trim())?));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(valid_key(k.trim())?, valid_value(v.trim())?));
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words.as_slice() {
        let rest = rest.trim();
        let (op, set) = if let Some(s) = rest.strip_prefix("notin") {
            ("notin", s)
        } else if let Some(s) = rest.strip_prefix("in") {
            ("in", s)
        } else {
            return Err(format!("unknown operator in {term:?}"));
        };
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("expected a parenthesised set of values in {term:?}"))?;
        let values = inner.split(',').map(|v| valid_value(v.trim())).collect::<Result<Vec<_>, _>>()?;
        let key = valid_key(key)?;
        return Ok(if op == "in" { Requirement::In(key, values) } else { Requirement::NotIn(key, values) });
    }
    Ok(Requirement::Exists(valid_key(term)?))
}

fn valid_key(key: &str) -> Result<String, String> {
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key.len() <= 317;
    if ok { Ok(key.to_owned()) } else { Err(format!("invalid label key {key:?}")) }
}

fn valid_value(v: &str) -> Result<String, String> {
    let ok = v.len() <= 63 && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(v.to_owned()) } else { Err(format!("invalid label value {v:?}")) }
}

/// A field selector over `metadata.name` and `metadata.namespace` (`=`, `==`, `!=`), the
/// fields every kind supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError { selector: text.to_owned(), reason };
        let mut out = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(err(format!("{term:?} is not field=value or field!=value")));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(err(format!("field label not supported: {field}")));
            }
            out.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(out))
    }

    /// Whether a JSON object satisfies the selector.
    pub fn matches_object(&self, object: &serde_json::Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = if field == "metadata.name" { "/metadata/name" } else { "/metadata/namespace" };
            let actual = object.pointer(pointer).and_then(|v| v.as_str()).unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn matches_every_label_operator() {
        let l = labels(&[("app", "web"), ("tier", "db")]);
        let yes =
            ["app=web", "app==web", "app!=api", "tier in (db,cache)", "tier notin (x)", "app", "!gone", "app=web,tier"];
        for s in yes {
            assert!(Selector::parse(s).expect(s).matches(&l), "{s} should match");
        }
        let no = ["app=api", "app!=web", "tier in (cache)", "tier notin (db)", "gone", "!app", "app=web,gone"];
        for s in no {
            assert!(!Selector::parse(s).expect(s).matches(&l), "{s} should not match");
        }
        assert!(Selector::parse("").expect("empty").matches(&l));
        assert!(Selector::parse("missing!=x").expect("ne").matches(&l));
    }

    #[test]
    fn rejects_malformed_selectors() {
        for s in ["app in (a", "app in a", "a b c", "=x", "app=a b"] {
            assert!(Selector::parse(s).is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn field_selector_supports_name_and_namespace_only() {
        let o = serde_json::json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(FieldSelector::parse("metadata.name=a").expect("ok").matches_object(&o));
        assert!(!FieldSelector::parse("metadata.namespace!=ns").expect("ok").matches_object(&o));
        assert!(FieldSelector::parse("spec.x=1").is_err());
    }
}
