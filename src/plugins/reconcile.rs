//! Hot reload's decisions: brings the registry in line with the plugin directory. Each
//! rescan compares every file's fingerprint with the last verdict about it, and for a file
//! whose content changed: loads it off the async workers (see
//! [`crate::wasm::compile_in_background`]) and puts it in service, or judges it.
//!
//! A file that is present is never treated as removed. A file still being written (it
//! changes while read, or it does not load while the directory is not yet quiet) is
//! pending: a debug log, nothing counted or reported, and a settled rescan follows. A file
//! that does not load once the directory has been quiet for the debounce period is a
//! failure, reported once per content. In every case the last good version keeps handling
//! events until a new one is loaded; only a removed file unloads its plugin. A file refused
//! because another file serves its plugin name is judged again once that file no longer
//! does (a file must be named after its plugin, so only a file system that makes two paths
//! of one name, such as a case-insensitive one, can get there).
//!
//! In: the directory (from [`super::watcher`] or a direct rescan). Out: plugin sets and
//! verdicts handed to the [`Installer`].

use super::dir::{FileScan, Fingerprint, scan};
use super::installer::Installer;
use super::load::{LoadError, PluginSource, error_text, load};
use super::registry::{LoadedPlugin, Registry};
use super::schedule::Rescan;
use super::status::PluginStatus;
use super::watcher::{ReloadConfig, watch};
use crate::rbac::Allowed;
use crate::wasm::{Runtime, compile_in_background};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// The last verdict about one plugin file.
struct FileState {
    /// The content the verdict is about (`None`: the file could not be read).
    fingerprint: Option<Fingerprint>,
    /// The version in service (the last good one).
    loaded: Option<Arc<LoadedPlugin>>,
    /// Why the current content is not in service, if it is not.
    error: Option<String>,
    /// The file that served this content's plugin name when it was refused for that.
    clashed_with: Option<(PathBuf, String)>,
}

/// Why a file's content is not put in service.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{}: plugin name {name:?} is already loaded from {}", file.display(), other.display())]
    NameTaken { file: PathBuf, name: String, other: PathBuf },
    #[error("{}: cannot build a client", file.display())]
    Client { file: PathBuf, source: kube::Error },
    #[error("{}: cannot start a thread to load it", file.display())]
    Thread { file: PathBuf, source: std::io::Error },
    #[error("{}: loading it failed", file.display())]
    Crashed { file: PathBuf, source: tokio::task::JoinError },
}

/// One load of a file.
struct Attempt {
    /// What was read (`None`: nothing could be).
    fingerprint: Option<Fingerprint>,
    /// The content differs from what the scan saw: the file is being written.
    changed_since_scan: bool,
    result: Result<LoadedPlugin, Refusal>,
}

/// What one rescan did.
#[derive(Debug, Default)]
struct Outcome {
    loaded: Vec<String>,
    errors: Vec<String>,
    /// Some file could not be judged yet.
    pending: bool,
}

/// Keeps the registry in line with a plugin directory.
#[derive(Clone)]
pub struct Reconciler {
    installer: Installer,
    runtime: Runtime,
    allowed: Arc<Allowed>,
    files: Arc<Mutex<BTreeMap<PathBuf, FileState>>>,
}

impl Reconciler {
    /// A reconciler loading plugins into `runtime` and installing them with `installer`;
    /// `allowed` is the operator's allow list of sensitive permissions.
    pub fn new(installer: Installer, runtime: Runtime, allowed: Allowed) -> Self {
        Self { installer, runtime, allowed: Arc::new(allowed), files: Arc::default() }
    }

    /// Rescans `dir`, judging every file as settled, and brings the registry in line with
    /// it. Returns the names of the plugins (re)loaded and the errors.
    pub async fn rescan(&self, dir: &Path) -> (Vec<String>, Vec<String>) {
        let outcome = self.rescan_as(dir, Rescan::Settled).await;
        (outcome.loaded, outcome.errors)
    }

    /// Watches `dir` and rescans on changes until `cancel` (see [`super::watcher`]).
    pub async fn watch(self, dir: PathBuf, config: ReloadConfig, cancel: CancellationToken) {
        watch(dir.clone(), config, cancel, |kind| {
            let (me, dir) = (self.clone(), dir.clone());
            async move { me.rescan_as(&dir, kind).await.pending }
        })
        .await;
    }

    async fn rescan_as(&self, dir: &Path, kind: Rescan) -> Outcome {
        let mut files = self.files.lock().await;
        let found = match scan(dir) {
            Ok(found) => found,
            Err(e) => {
                let error = error_text(&e);
                tracing::error!(error, "cannot rescan the plugin directory");
                return Outcome { errors: vec![error], ..Outcome::default() };
            }
        };
        let mut outcome = Outcome::default();
        let mut changed = false;
        let gone: Vec<PathBuf> = files.keys().filter(|p| !found.contains_key(*p)).cloned().collect();
        for path in gone {
            if let Some(lp) = files.remove(&path).and_then(|s| s.loaded) {
                self.installer.removed(&path, &lp);
                changed = true;
            }
        }
        for (path, found) in found {
            let fingerprint = match found {
                FileScan::Stable(f) => Some(f),
                FileScan::Unreadable(_) => None,
                FileScan::Changing => {
                    tracing::debug!(file = %path.display(), "still being written; checking again once it is stable");
                    outcome.pending = true;
                    continue;
                }
            };
            let clash_over = files.get(&path).and_then(|s| s.clashed_with.as_ref()).is_some_and(|(other, name)| {
                files.get(other).and_then(|o| o.loaded.as_ref()).is_none_or(|lp| lp.name() != name)
            });
            let judged = files.get(&path).map(|s| s.fingerprint.clone()).filter(|_| !clash_over);
            if judged.as_ref() == Some(&fingerprint) {
                continue;
            }
            let Some(Attempt { fingerprint, changed_since_scan, result }) =
                self.load(&path, fingerprint, judged.flatten()).await
            else {
                continue;
            };
            let result = result.and_then(|mut lp| {
                let clash = files
                    .iter()
                    .find(|(other, s)| **other != path && s.loaded.as_ref().is_some_and(|o| o.name() == lp.name()));
                if let Some((other, _)) = clash {
                    return Err(Refusal::NameTaken {
                        file: path.clone(),
                        name: lp.name().into(),
                        other: other.clone(),
                    });
                }
                self.installer.equip(&mut lp).map_err(|source| Refusal::Client { file: path.clone(), source })?;
                Ok(lp)
            });
            match result {
                Err(e) if kind == Rescan::Provisional || changed_since_scan => {
                    tracing::debug!(file = %path.display(), error = %error_text(&e),
                        "not loadable yet; judged once the directory is quiet");
                    outcome.pending = true;
                }
                Err(e) => {
                    let error = error_text(&e);
                    let clashed_with = match e {
                        Refusal::NameTaken { other, name, .. } => Some((other, name)),
                        _ => None,
                    };
                    let previous = files.remove(&path).and_then(|s| s.loaded);
                    self.installer.failed(&error, previous.as_deref());
                    outcome.errors.push(error.clone());
                    files.insert(path, FileState { fingerprint, loaded: previous, error: Some(error), clashed_with });
                }
                Ok(lp) => {
                    let replaced = files.remove(&path).is_some_and(|s| s.loaded.is_some());
                    self.installer.loaded(&path, &lp, replaced);
                    outcome.loaded.push(lp.name().to_owned());
                    files.insert(
                        path,
                        FileState { fingerprint, loaded: Some(Arc::new(lp)), error: None, clashed_with: None },
                    );
                    changed = true;
                }
            }
        }
        if changed {
            let plugins = files.values().filter_map(|s| s.loaded.clone()).map(|lp| (lp.name().to_owned(), lp));
            self.installer.install(Registry { plugins: plugins.collect() }, &outcome.loaded).await;
        }
        self.installer.publish(&statuses(&files));
        outcome
    }

    /// Loads `path` as it is now. `scanned` is what the scan saw (`None`: unreadable),
    /// `judged` the content of the last verdict. `None` if the file is gone or holds the
    /// judged content again.
    async fn load(&self, path: &Path, scanned: Option<Fingerprint>, judged: Option<Fingerprint>) -> Option<Attempt> {
        let (runtime, file, fingerprint) = (self.runtime.clone(), path.to_path_buf(), scanned.clone());
        let allowed = self.allowed.clone();
        // Compiling is the expensive part: off the async workers, at background priority.
        let span = tracing::Span::current();
        let loaded = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            compile_in_background(|| {
                let source = match PluginSource::read(&file) {
                    Ok(source) => source,
                    Err(LoadError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                        return None;
                    }
                    Err(e) => {
                        let changed_since_scan = scanned.is_some();
                        return Some(Attempt { fingerprint: None, changed_since_scan, result: Err(e.into()) });
                    }
                };
                let fingerprint = source.fingerprint();
                if judged.as_ref() == Some(&fingerprint) {
                    return None;
                }
                let changed_since_scan = scanned.as_ref() != Some(&fingerprint);
                let result = load(&runtime, &file, &source, &allowed).map_err(Refusal::from);
                Some(Attempt { fingerprint: Some(fingerprint), changed_since_scan, result })
            })
        })
        .await;
        // Not about the content: judged as the scan saw it, so not retried until it changes.
        let file = path.to_path_buf();
        match loaded {
            Err(source) => {
                Some(Attempt { fingerprint, changed_since_scan: false, result: Err(Refusal::Crashed { file, source }) })
            }
            Ok(Err(source)) => {
                Some(Attempt { fingerprint, changed_since_scan: false, result: Err(Refusal::Thread { file, source }) })
            }
            Ok(Ok(attempt)) => attempt,
        }
    }
}

/// The `/plugins` list: every judged file, with the version it serves and its last error.
fn statuses(files: &BTreeMap<PathBuf, FileState>) -> Vec<PluginStatus> {
    let status = |(path, s): (&PathBuf, &FileState)| {
        let base = match &s.loaded {
            Some(lp) => PluginStatus::serving(path, lp),
            None => PluginStatus { source: Some(path.display().to_string()), ..PluginStatus::of_file(path) },
        };
        PluginStatus { last_error: s.error.clone(), ..base }
    };
    files.iter().map(status).collect()
}
