//! Which namespaces kreflex watches (`--watch-namespace`): the whole cluster (the default)
//! or a set of namespaces. In: the operator's flag. Out: the watches a kind needs (one per
//! watched namespace for a namespaced kind; one cluster-wide for a cluster-scoped kind,
//! which a namespace list cannot narrow) and whether a namespace is watched at all, which
//! decides what the cache can hold and so what plugins may read. Pure, no I/O.

use crate::names::is_dns_label;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// The flag that narrows the watched namespaces, as messages name it.
pub const WATCH_NAMESPACE_FLAG: &str = "--watch-namespace";

/// The namespaces kreflex watches. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace: one cluster-wide watch per kind.
    #[default]
    Cluster,
    /// Only these namespaces (never empty): one watch per kind and namespace.
    Namespaces(Arc<BTreeSet<String>>),
}

/// A namespace name the flag cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a namespace name (a DNS label: at most 63 lowercase letters, digits and '-')")]
pub struct InvalidNamespace(pub String);

/// Checks one `--watch-namespace` value (the flag's parser).
pub fn parse_namespace(s: &str) -> Result<String, InvalidNamespace> {
    if is_dns_label(s) { Ok(s.to_owned()) } else { Err(InvalidNamespace(s.to_owned())) }
}

impl WatchScope {
    /// The scope of `namespaces`: the whole cluster if there are none. Duplicates collapse.
    pub fn namespaces<S: Into<String>>(namespaces: impl IntoIterator<Item = S>) -> Self {
        let set: BTreeSet<String> = namespaces.into_iter().map(Into::into).collect();
        if set.is_empty() { WatchScope::Cluster } else { WatchScope::Namespaces(Arc::new(set)) }
    }

    /// Whether objects of `namespace` are watched.
    pub fn includes(&self, namespace: &str) -> bool {
        match self {
            WatchScope::Cluster => true,
            WatchScope::Namespaces(set) => set.contains(namespace),
        }
    }

    /// Those of `namespaces` that are not watched (a subscription naming them gets no
    /// events from them).
    pub fn unwatched<'a>(&self, namespaces: &'a [String]) -> Vec<&'a str> {
        namespaces.iter().map(String::as_str).filter(|ns| !self.includes(ns)).collect()
    }

    /// The watches a kind needs, as the namespace each is limited to (`None`: cluster-wide).
    /// A cluster-scoped kind is watched cluster-wide whatever the scope: its objects belong
    /// to no namespace, so a namespace list can neither select nor exclude them.
    pub fn watches(&self, namespaced: bool) -> Vec<Option<String>> {
        match self {
            WatchScope::Namespaces(set) if namespaced => set.iter().cloned().map(Some).collect(),
            _ => vec![None],
        }
    }
}

impl fmt::Display for WatchScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchScope::Cluster => f.write_str("all namespaces"),
            WatchScope::Namespaces(set) => {
                let names: Vec<&str> = set.iter().map(String::as_str).collect();
                write!(f, "namespaces {}", names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_namespace_means_the_whole_cluster() {
        let none: [&str; 0] = [];
        assert_eq!(WatchScope::namespaces(none), WatchScope::Cluster);
        assert!(WatchScope::Cluster.includes("anything"));
        assert_eq!(WatchScope::Cluster.watches(true), vec![None]);
        assert_eq!(WatchScope::Cluster.to_string(), "all namespaces");
    }

    #[test]
    fn one_watch_per_namespace_for_namespaced_kinds_only() {
        let scope = WatchScope::namespaces(["b", "a", "b"]);
        assert_eq!(scope.watches(true), vec![Some("a".to_owned()), Some("b".to_owned())]);
        assert_eq!(scope.watches(false), vec![None], "cluster-scoped kinds are watched cluster-wide");
        assert_eq!((scope.includes("a"), scope.includes("c")), (true, false));
        assert_eq!(scope.to_string(), "namespaces a, b");
        let named = ["a".to_owned(), "c".to_owned()];
        assert_eq!(scope.unwatched(&named), ["c"]);
        assert!(WatchScope::Cluster.unwatched(&named).is_empty());
    }

    #[test]
    fn the_flag_takes_namespace_names_only() {
        assert_eq!(parse_namespace("team-a"), Ok("team-a".to_owned()));
        for bad in ["", "Team", "a/b", "a,b", &"x".repeat(64)] {
            assert!(parse_namespace(bad).is_err(), "{bad:?}");
        }
    }
}
