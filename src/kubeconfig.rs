//! Where kreflex's Kubernetes client configuration comes from, in controller-runtime's
//! order: the `--kubeconfig` flag; else `$KUBECONFIG` (a list of files, merged); else, in
//! a pod (`KUBERNETES_SERVICE_HOST` set), the pod's service account; else
//! `~/.kube/config`. An explicitly named file is the answer or the error; the in-cluster
//! configuration and the home file are tried in turn, and when neither works the error says
//! what was tried and why each failed.
//!
//! kube's `Config::infer` looks at `~/.kube/config` before the service account; inside a
//! pod the service account must win (a stray home file in an image must not redirect
//! kreflex to another cluster), so the order is spelled out here with kube's loaders.
//! [`plan`] decides the order from the environment without touching it (unit-tested); [`load`]
//! follows it. Sits before everything: `kreflex run` hands the result to the engine.

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// One place a configuration can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The file given with `--kubeconfig`.
    Flag(PathBuf),
    /// The files listed in `$KUBECONFIG`, merged as kubectl does.
    Env(Vec<PathBuf>),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token, CA and
    /// namespace files under `/var/run/secrets/kubernetes.io/serviceaccount`).
    InCluster,
    /// `~/.kube/config`.
    Home(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(p) => write!(f, "--kubeconfig {}", p.display()),
            Source::Env(paths) => {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(f, "$KUBECONFIG ({})", list.join(", "))
            }
            Source::InCluster => f.write_str("the pod's service account (in-cluster)"),
            Source::Home(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The sources to try, in order, and the ones left out with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Tried in order; the first that loads wins.
    pub sources: Vec<Source>,
    /// Sources not tried, with the reason (for the error when nothing loads).
    pub skipped: Vec<String>,
}

/// Why no configuration could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source that was named explicitly (flag or `$KUBECONFIG`) does not load.
    #[error("cannot load the Kubernetes configuration from {source_name}: {error}")]
    Named {
        /// The source named.
        source_name: Source,
        /// Why it failed.
        error: kube::config::KubeconfigError,
    },
    /// No source loaded.
    #[error("no Kubernetes configuration found; tried {}", describe(.tried, .skipped))]
    NotFound {
        /// Each source tried, with its failure.
        tried: Vec<(Source, String)>,
        /// Sources not tried, with the reason.
        skipped: Vec<String>,
    },
}

fn describe(tried: &[(Source, String)], skipped: &[String]) -> String {
    let tried: Vec<String> = tried.iter().map(|(s, e)| format!("{s}: {e}")).collect();
    let tried = if tried.is_empty() { "nothing".to_owned() } else { tried.join("; ") };
    if skipped.is_empty() { tried } else { format!("{tried} (not tried: {})", skipped.join(", ")) }
}

/// Where the in-cluster configuration is read from, for its error.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The order to try sources in, given the `--kubeconfig` flag, `--context`, an environment
/// lookup and the home directory. Pure: reads nothing but its arguments.
pub fn plan(
    flag: Option<&Path>,
    context: Option<&str>,
    env: impl Fn(&str) -> Option<OsString>,
    home: Option<&Path>,
) -> Plan {
    if let Some(p) = flag {
        return Plan { sources: vec![Source::Flag(p.to_owned())], skipped: Vec::new() };
    }
    let listed: Vec<PathBuf> = env("KUBECONFIG")
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    if !listed.is_empty() {
        return Plan { sources: vec![Source::Env(listed)], skipped: Vec::new() };
    }
    let mut sources = Vec::new();
    let mut skipped = vec!["no --kubeconfig".to_owned(), "$KUBECONFIG unset".to_owned()];
    match (env("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty()), context) {
        (true, None) => sources.push(Source::InCluster),
        (true, Some(c)) => skipped.push(format!("in-cluster: not with --context {c} (a service account has none)")),
        (false, _) => skipped.push("in-cluster: KUBERNETES_SERVICE_HOST unset (not in a pod)".to_owned()),
    }
    match home {
        Some(h) => sources.push(Source::Home(h.join(".kube").join("config"))),
        None => skipped.push("~/.kube/config: no home directory".to_owned()),
    }
    Plan { sources, skipped }
}

/// Loads the configuration following [`plan`] over this process's environment.
pub async fn load(flag: Option<&Path>, context: Option<&str>) -> Result<kube::Config, ConfigError> {
    let plan = plan(flag, context, |k| std::env::var_os(k), std::env::home_dir().as_deref());
    let mut config = follow(plan, context).await?;
    // What `Config::infer` does too: KUBE_RS_DEBUG_* overrides for debugging.
    config.apply_debug_overrides();
    Ok(config)
}

async fn follow(plan: Plan, context: Option<&str>) -> Result<kube::Config, ConfigError> {
    let options = KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
    let mut tried = Vec::new();
    for source in plan.sources {
        let result = match &source {
            Source::Flag(p) => from_files(std::slice::from_ref(p), &options).await,
            Source::Env(paths) => from_files(paths, &options).await,
            Source::Home(p) => from_files(std::slice::from_ref(p), &options).await,
            Source::InCluster => match kube::Config::incluster_env() {
                Ok(c) => return Ok(c),
                Err(e) => {
                    let hint = format!(
                        "{e} (token, ca.crt and namespace are read from {SERVICE_ACCOUNT_DIR}: is the service account token mounted?)"
                    );
                    tried.push((source, hint));
                    continue;
                }
            },
        };
        match (result, &source) {
            (Ok(c), _) => return Ok(c),
            (Err(error), Source::Flag(_) | Source::Env(_)) => {
                return Err(ConfigError::Named { source_name: source, error });
            }
            (Err(error), _) => tried.push((source, error.to_string())),
        }
    }
    Err(ConfigError::NotFound { tried, skipped: plan.skipped })
}

async fn from_files(
    paths: &[PathBuf],
    options: &KubeConfigOptions,
) -> Result<kube::Config, kube::config::KubeconfigError> {
    let merged = paths
        .iter()
        .try_fold(Kubeconfig::default(), |merged, p| Kubeconfig::read_from(p).and_then(|c| merged.merge(c)))?;
    kube::Config::from_custom_kubeconfig(merged, options).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect();
        move |k| vars.get(k).cloned()
    }

    const POD: [(&str, &str); 2] = [("KUBERNETES_SERVICE_HOST", "10.0.0.1"), ("KUBERNETES_SERVICE_PORT", "443")];

    #[test]
    fn in_a_pod_without_kubeconfig_the_service_account_comes_before_the_home_file() {
        let p = plan(None, None, env(&POD), Some(Path::new("/home/k")));
        assert_eq!(p.sources, [Source::InCluster, Source::Home(PathBuf::from("/home/k/.kube/config"))]);
    }

    #[test]
    fn an_explicit_kubeconfig_is_the_only_source() {
        let p = plan(Some(Path::new("/f")), None, env(&POD), Some(Path::new("/h")));
        assert_eq!(p.sources, [Source::Flag(PathBuf::from("/f"))]);
        let mut vars = POD.to_vec();
        vars.push(("KUBECONFIG", "/a:/b"));
        let p = plan(None, None, env(&vars), Some(Path::new("/h")));
        assert_eq!(p.sources, [Source::Env(vec![PathBuf::from("/a"), PathBuf::from("/b")])], "a list, merged");
    }

    #[test]
    fn an_empty_kubeconfig_variable_counts_as_unset() {
        let mut vars = POD.to_vec();
        vars.push(("KUBECONFIG", ""));
        assert_eq!(plan(None, None, env(&vars), None).sources, [Source::InCluster]);
    }

    #[test]
    fn outside_a_pod_or_with_a_context_only_the_home_file_is_tried() {
        let home = Some(Path::new("/h"));
        let outside = plan(None, None, env(&[]), home);
        assert_eq!(outside.sources, [Source::Home(PathBuf::from("/h/.kube/config"))]);
        assert!(outside.skipped.iter().any(|s| s.contains("KUBERNETES_SERVICE_HOST unset")), "{:?}", outside.skipped);
        let with_context = plan(None, Some("prod"), env(&POD), home);
        assert_eq!(with_context.sources, [Source::Home(PathBuf::from("/h/.kube/config"))]);
    }

    #[tokio::test]
    async fn when_nothing_loads_the_error_says_what_was_tried() {
        let home = tempfile::tempdir().expect("tempdir");
        let p = plan(None, None, env(&[]), Some(home.path()));
        let e = follow(p, None).await.expect_err("no configuration anywhere").to_string();
        let file = home.path().join(".kube/config");
        assert!(e.starts_with("no Kubernetes configuration found; tried "), "{e}");
        for part in
            [&file.display().to_string(), "no --kubeconfig", "$KUBECONFIG unset", "KUBERNETES_SERVICE_HOST unset"]
        {
            assert!(e.contains(part), "{part:?} missing from: {e}");
        }
    }

    #[tokio::test]
    async fn a_named_file_that_does_not_load_is_an_error_not_a_fallback() {
        let p = plan(Some(Path::new("/nonexistent/kubeconfig")), None, env(&POD), None);
        let e = follow(p, None).await.expect_err("missing file").to_string();
        assert!(
            e.starts_with("cannot load the Kubernetes configuration from --kubeconfig /nonexistent/kubeconfig"),
            "{e}"
        );
    }
}
