//! Kubernetes name rules, in one place: object names (DNS-1123 subdomains), namespaces,
//! resource plurals and plugin names (DNS-1123 labels), API groups.
//!
//! The rules are Kubernetes' own (`k8s.io/apimachinery/pkg/util/validation`): a label is
//! at most 63 lowercase alphanumerics or `-`, starting and ending with an alphanumeric (a
//! leading digit is allowed); a subdomain is at most 253 characters of dot-separated
//! labels. Action validation, permission checks, plugin loading, the scaffold and the
//! embedded API server all ask here, so they cannot disagree.

use thiserror::Error;

/// A name that breaks the rule it is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{name:?} is not a valid {what} ({rule})")]
pub struct NameError {
    /// What the name names ("object name", "namespace", "plugin name").
    pub what: &'static str,
    /// The name.
    pub name: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

const LABEL_RULE: &str =
    "a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit";
const SUBDOMAIN_RULE: &str =
    "a DNS subdomain: at most 253 characters of dot-separated DNS labels (lowercase letters, digits, '-')";

/// A DNS-1123 label.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// An API group: empty (the core group) or a DNS subdomain.
pub fn is_group(g: &str) -> bool {
    g.is_empty() || is_dns_subdomain(g)
}

/// An object name (most kinds: a DNS subdomain).
pub fn check_object_name(name: &str) -> Result<(), NameError> {
    check(is_dns_subdomain(name), "object name", name, SUBDOMAIN_RULE)
}

/// A namespace name (a DNS label).
pub fn check_namespace(ns: &str) -> Result<(), NameError> {
    check(is_dns_label(ns), "namespace", ns, LABEL_RULE)
}

/// A plugin name (a DNS label): it becomes the finalizer `kreflex.io/<name>`, the field
/// manager `kreflex/<name>` and the service account `kreflex-<name>`.
pub fn check_plugin_name(name: &str) -> Result<(), NameError> {
    check(is_dns_label(name), "plugin name", name, LABEL_RULE)
}

fn check(ok: bool, what: &'static str, name: &str, rule: &'static str) -> Result<(), NameError> {
    if ok { Ok(()) } else { Err(NameError { what, name: name.to_owned(), rule }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_kubernetes_rules_including_a_leading_digit() {
        for good in ["a", "db", "0abc", "a-b", "a1", &"x".repeat(63)] {
            assert!(is_dns_label(good), "{good:?}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad:?}");
        }
    }

    #[test]
    fn subdomains_are_dot_separated_labels() {
        for good in ["a", "a.b", "0.example.com", "orders-1", &format!("{}.b", "a".repeat(63))] {
            assert!(is_dns_subdomain(good), "{good:?}");
        }
        for bad in ["", "a..b", ".a", "a.", "a-.b", "a.-b", "A.b", "a/b", "..", &"a.".repeat(127)] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
        assert!(is_group("") && is_group("stable.example.com") && !is_group("Example.com"));
    }

    #[test]
    fn errors_name_what_was_checked() {
        let e = check_namespace("a.b").unwrap_err();
        assert_eq!(e.what, "namespace");
        assert!(e.to_string().starts_with("\"a.b\" is not a valid namespace"), "{e}");
        assert!(check_object_name("orders.v1").is_ok() && check_plugin_name("orders.v1").is_err());
    }
}
