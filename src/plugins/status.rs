//! What `kreflex plugins` shows, as one type: [`PluginStatus`] per plugin file, published by
//! the installer on the admin endpoint's `/plugins`, computed for a directory by
//! [`directory_status`], fetched from a running kreflex by [`fetch`] and rendered by
//! [`table`].
//!
//! In: loaded plugins and load errors (or the admin endpoint's JSON). Out: the JSON list
//! (camelCase keys, a file that did not load has only `file`, `lastError` and what is known)
//! and its table. Off the event path: read by operators only.

use super::dir::{FileScan, ScanError, scan};
use super::load::{error_text, load_file};
use super::registry::LoadedPlugin;
use crate::model::{Permission, Subscription};
use crate::wasm::Runtime;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// One plugin file: the plugin in service from it (if any) and why its current content is
/// not in service (if it is not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    /// Plugin name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version the plugin declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// SHA-256 of the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where the plugin in service was loaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The plugin file.
    pub file: String,
    /// When it was loaded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
    /// How long loading took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_millis: Option<u64>,
    /// Whether the compiled code came from the artifact cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cache: Option<bool>,
    /// What the plugin subscribes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<Subscription>>,
    /// What the plugin may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
    /// Why the file's current content is not in service (`null` when it is).
    pub last_error: Option<String>,
}

impl PluginStatus {
    /// A file with nothing known about it yet.
    pub fn of_file(file: &Path) -> Self {
        Self { file: file.display().to_string(), ..Self::default() }
    }

    /// `file` serving `lp`.
    pub fn serving(file: &Path, lp: &LoadedPlugin) -> Self {
        let info = lp.plugin.info();
        Self {
            name: Some(lp.name().to_owned()),
            version: Some(info.version.clone()),
            sha256: Some(lp.plugin.hash().to_owned()),
            source: Some(lp.source.display().to_string()),
            loaded_at: Some(jiff::Timestamp::try_from(lp.loaded_at).map(|t| t.to_string()).unwrap_or_default()),
            load_millis: Some(lp.plugin.load_time().as_millis() as u64),
            from_cache: Some(lp.plugin.loaded_from_cache()),
            subscriptions: Some(info.subscriptions.clone()),
            permissions: Some(info.permissions.clone()),
            ..Self::of_file(file)
        }
    }

    /// The same with `error` as the last error.
    pub fn with_error(self, error: impl Into<String>) -> Self {
        Self { last_error: Some(error.into()), ..self }
    }
}

/// Whether any file of `list` has an error (`kreflex plugins` then exits with 1).
pub fn any_failed(list: &[PluginStatus]) -> bool {
    list.iter().any(|p| p.last_error.is_some())
}

/// What `kreflex plugins --dir` shows: every plugin file of `dir` loaded as the engine would
/// load it (same validation, names unique), with its status or the error that keeps it out.
pub fn directory_status(
    runtime: &Runtime,
    dir: &Path,
    allowed: &crate::rbac::Allowed,
) -> Result<Vec<PluginStatus>, ScanError> {
    let mut names = HashSet::new();
    Ok(scan(dir)?
        .into_iter()
        .map(|(path, found)| match found {
            FileScan::Stable(_) => match load_file(runtime, &path, allowed) {
                Ok(lp) if !names.insert(lp.name().to_owned()) => {
                    let error = format!("plugin name {:?} is already used by another file", lp.name());
                    PluginStatus { name: Some(lp.name().to_owned()), ..PluginStatus::of_file(&path) }.with_error(error)
                }
                Ok(lp) => PluginStatus::serving(&path, &lp),
                Err(e) => PluginStatus::of_file(&path).with_error(error_text(&e)),
            },
            FileScan::Changing => PluginStatus::of_file(&path).with_error("the file changed while it was read"),
            FileScan::Unreadable(e) => PluginStatus::of_file(&path).with_error(format!("cannot read: {e}")),
        })
        .collect())
}

/// Why the admin endpoint of a running kreflex did not answer with its plugins.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The address does not make a URL.
    #[error("invalid admin address {0:?}")]
    Address(String, #[source] http::uri::InvalidUri),
    /// No answer in time.
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
    /// No connection.
    #[error("cannot reach kreflex at {0} (is `kreflex run`/`dev` running with this --metrics-addr?)")]
    Unreachable(String, #[source] hyper_util::client::legacy::Error),
    /// The answer broke off.
    #[error("{0}: reading the answer")]
    Read(String, #[source] hyper::Error),
    /// Not a success.
    #[error("{0}: HTTP {1}")]
    Status(String, http::StatusCode),
    /// Not a list of plugin statuses.
    #[error("{0}: not JSON")]
    NotJson(String, #[source] serde_json::Error),
}

/// How long `kreflex plugins` waits for a running kreflex.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET http://ADDR/plugins` of a running kreflex.
pub async fn fetch(addr: &str) -> Result<Vec<PluginStatus>, FetchError> {
    let (url, status, body) = get(addr, "/plugins").await?;
    if !status.is_success() {
        return Err(FetchError::Status(url, status));
    }
    // `null` until the engine has scanned its directory once.
    let list: Option<Vec<PluginStatus>> = serde_json::from_slice(&body).map_err(|e| FetchError::NotJson(url, e))?;
    Ok(list.unwrap_or_default())
}

/// The `/readyz` line of a running kreflex: ready or why not, and its role (leader,
/// standby, shards held).
pub async fn fetch_readiness(addr: &str) -> Result<String, FetchError> {
    let (_, _, body) = get(addr, "/readyz").await?;
    Ok(String::from_utf8_lossy(&body).trim().to_owned())
}

async fn get(addr: &str, path: &str) -> Result<(String, hyper::StatusCode, bytes::Bytes), FetchError> {
    use http_body_util::BodyExt;
    let url = if addr.contains("://") { format!("{addr}{path}") } else { format!("http://{addr}{path}") };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: hyper::Uri = url.parse().map_err(|e| FetchError::Address(addr.to_owned(), e))?;
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
        .await
        .map_err(|_| FetchError::Timeout(url.clone(), FETCH_TIMEOUT))?
        .map_err(|e| FetchError::Unreachable(url.clone(), e))?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| FetchError::Read(url.clone(), e))?.to_bytes();
    Ok((url, status, body))
}

/// One line per plugin file: name, version, short hash, load time and source,
/// subscriptions, file and last error.
pub fn table(list: &[PluginStatus]) -> String {
    let dash = || "-".to_owned();
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|p| {
            let subs = p.subscriptions.as_ref().map_or_else(dash, |subs| {
                let kinds =
                    subs.iter().map(|s| format!("{}.{}", s.gvk.kind, s.gvk.group).trim_end_matches('.').to_owned());
                kinds.collect::<Vec<_>>().join(",")
            });
            let loaded = match (p.load_millis, p.from_cache) {
                (Some(ms), Some(true)) => format!("{ms}ms (cache)"),
                (Some(ms), _) => format!("{ms}ms (compiled)"),
                _ => dash(),
            };
            let file = Some(p.file.as_str()).filter(|f| !f.is_empty()).or(p.source.as_deref()).unwrap_or("-");
            let file = Path::new(file).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            [
                p.name.clone().unwrap_or_else(dash),
                p.version.clone().unwrap_or_else(dash),
                p.sha256.as_deref().map_or_else(dash, |h| h.chars().take(12).collect()),
                loaded,
                subs,
                p.last_error.as_ref().map_or_else(|| file.clone(), |e| format!("{file}: {e}")),
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "SHA256", "LOAD", "SUBSCRIPTIONS", "FILE / LAST ERROR"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_file_that_did_not_load_has_only_what_is_known() {
        let s = PluginStatus { source: Some("/p/a.wasm".into()), ..PluginStatus::of_file(Path::new("/p/a.wasm")) }
            .with_error("broken");
        let wire = serde_json::to_value(&s).expect("json");
        assert_eq!(wire, json!({"source": "/p/a.wasm", "file": "/p/a.wasm", "lastError": "broken"}));
        assert_eq!(serde_json::from_value::<PluginStatus>(wire).expect("back"), s);
        let ok = serde_json::to_value(PluginStatus::of_file(Path::new("/p/b.wasm"))).expect("json");
        assert_eq!(ok, json!({"file": "/p/b.wasm", "lastError": null}), "lastError is always there");
    }

    #[test]
    fn table_shows_one_line_per_file_with_its_error() {
        let list: Vec<PluginStatus> = serde_json::from_value(json!([
            {"name": "echo", "version": "0.1.0", "sha256": "0123456789abcdef", "source": "/p/echo.wasm",
             "file": "/p/echo.wasm", "loadedAt": "2026-12-01T00:00:00Z", "loadMillis": 7, "fromCache": true,
             "subscriptions": [{"gvk": {"group": "example.com", "version": "v1", "kind": "Database"},
                 "namespaces": [], "labelSelector": null, "fieldSelector": null,
                 "generationChangedOnly": false, "finalizer": false}],
             "permissions": [], "lastError": null},
            {"file": "/p/bad.wasm", "lastError": "not a component"}
        ]))
        .expect("statuses");
        assert!(any_failed(&list) && !any_failed(&list[..1]));
        let text = table(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].ends_with("FILE / LAST ERROR"), "{text}");
        assert!(lines[1].starts_with("echo   0.1.0     0123456789ab   7ms (cache)"), "{text}");
        assert!(lines[1].contains("Database.example.com") && lines[1].ends_with("echo.wasm"), "{text}");
        assert!(lines[2].starts_with("-      -") && lines[2].ends_with("bad.wasm: not a component"), "{text}");
    }
}
