//! Watching the plugin directory: file-system signals (inotify through `notify`, or polling
//! where inotify is unavailable) go through a bounded channel into a [`Schedule`], which
//! says when to rescan and whether the directory has been quiet long enough for a file that
//! does not load to count as broken.
//!
//! In: the directory and a rescan function. Out: calls of that function with a
//! [`Rescan`] kind, until cancelled. First stage of hot reload: watcher → reconciler.

use super::schedule::{Change, Rescan, Schedule};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the directory is watched.
#[derive(Debug, Clone)]
pub struct ReloadConfig {
    /// Quiet period after the last file event before a file that does not load is judged.
    pub debounce: Duration,
    /// Poll every this often instead of using inotify (`None` = inotify).
    pub poll: Option<Duration>,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self { debounce: Duration::from_millis(300), poll: None }
    }
}

/// Signals between the notify thread and the watch loop. notify calls back once per
/// file-system event (a 12 MB `cp` is about a hundred, a chunked writer more); the loop
/// drains the channel before every rescan, so this holds a burst that arrives while a
/// rescan compiles. Beyond it, events add nothing: one overflow flag stands for all of them.
const SIGNALS: usize = 256;

/// What a file-system event means for when to rescan.
fn classify(kind: &notify::EventKind) -> Change {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write))
        | notify::EventKind::Modify(ModifyKind::Name(_))
        | notify::EventKind::Remove(_) => Change::Complete,
        // Opens and reads (ours included) change nothing.
        notify::EventKind::Access(_) => Change::Unchanged,
        _ => Change::Settling,
    }
}

/// The notify side of the channel: never blocks the notify thread.
#[derive(Clone)]
struct Signal {
    tx: mpsc::Sender<Change>,
    overflow: Arc<AtomicBool>,
}

impl Signal {
    fn send(&self, change: Change) {
        if change != Change::Unchanged && self.tx.try_send(change).is_err() {
            self.overflow.store(true, Ordering::Release);
        }
    }
}

/// Watches `dir` until `cancel`, calling `rescan` when the schedule says so; `rescan`
/// returns whether some file is pending.
///
/// With inotify, a change that leaves a file complete is rescanned within milliseconds, so
/// a new version is soon in service; every change postpones the settled rescan until
/// the directory has been quiet for `debounce`. Polling cannot see completion: each change
/// waits for the quiet period, which is at least two poll intervals (a change is only seen
/// at the next poll).
pub(crate) async fn watch<F, Fut>(dir: PathBuf, config: ReloadConfig, cancel: CancellationToken, mut rescan: F)
where
    F: FnMut(Rescan) -> Fut,
    Fut: Future<Output = bool>,
{
    let (tx, mut rx) = mpsc::channel(SIGNALS);
    let overflow = Arc::new(AtomicBool::new(false));
    let signal = Signal { tx, overflow: overflow.clone() };
    let watch_error = |e: &notify::Error| tracing::warn!(error = %e, "plugin directory watch error");
    let watcher: notify::Result<Box<dyn std::any::Any + Send>> = match config.poll {
        None => notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let change = match res {
                Ok(e) => classify(&e.kind),
                Err(e) => {
                    watch_error(&e);
                    Change::Settling
                }
            };
            signal.send(change)
        })
        .and_then(|mut w| notify::Watcher::watch(&mut w, &dir, notify::RecursiveMode::NonRecursive).map(|_| w))
        .map(|w| Box::new(w) as Box<dyn std::any::Any + Send>),
        Some(interval) => notify::PollWatcher::new(
            move |res: notify::Result<notify::Event>| {
                if let Err(e) = &res {
                    watch_error(e);
                }
                signal.send(Change::Settling)
            },
            notify::Config::default().with_poll_interval(interval).with_compare_contents(true),
        )
        .and_then(|mut w| notify::Watcher::watch(&mut w, &dir, notify::RecursiveMode::Recursive).map(|_| w))
        .map(|w| Box::new(w) as Box<dyn std::any::Any + Send>),
    };
    let _watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot watch the plugin directory; hot reload is off");
            return;
        }
    };
    tracing::info!(dir = %dir.display(), poll = ?config.poll, "watching the plugin directory");
    let quiet = config.poll.map_or(config.debounce, |interval| config.debounce.max(2 * interval));
    let mut schedule = Schedule::new(quiet);
    // One settled rescan a quiet period from now catches a file that was still being
    // written when the directory was first loaded.
    schedule.rescanned(true, Instant::now());
    loop {
        // Everything already signalled counts before deciding whether the directory is quiet.
        while let Ok(change) = rx.try_recv() {
            schedule.changed(change, Instant::now());
        }
        if overflow.swap(false, Ordering::Acquire) {
            schedule.changed(Change::Settling, Instant::now());
        }
        if let Some(kind) = schedule.due(Instant::now()) {
            let pending = rescan(kind).await;
            schedule.rescanned(pending, Instant::now());
            continue;
        }
        let deadline = schedule.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            change = rx.recv() => match change {
                Some(change) => schedule.changed(change, Instant::now()),
                None => {
                    tracing::error!(dir = %dir.display(), "the plugin directory watcher stopped; hot reload is off");
                    return;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_channel_folds_signals_into_the_overflow_flag() {
        let (tx, mut rx) = mpsc::channel(1);
        let signal = Signal { tx, overflow: Arc::default() };
        signal.send(Change::Complete);
        signal.send(Change::Unchanged);
        assert!(!signal.overflow.load(Ordering::Acquire), "nothing to fold yet");
        signal.send(Change::Settling);
        assert!(signal.overflow.load(Ordering::Acquire));
        assert_eq!(rx.try_recv().ok(), Some(Change::Complete));
    }

    #[test]
    fn file_system_events_are_classified_by_whether_the_file_is_complete() {
        use notify::EventKind as K;
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode};
        assert_eq!(classify(&K::Access(AccessKind::Close(AccessMode::Write))), Change::Complete);
        assert_eq!(classify(&K::Modify(ModifyKind::Name(RenameMode::To))), Change::Complete);
        assert_eq!(classify(&K::Remove(RemoveKind::File)), Change::Complete);
        assert_eq!(classify(&K::Modify(ModifyKind::Data(DataChange::Any))), Change::Settling);
        assert_eq!(classify(&K::Create(CreateKind::File)), Change::Settling);
        assert_eq!(classify(&K::Access(AccessKind::Open(AccessMode::Any))), Change::Unchanged);
    }
}
