//! When to rescan the plugin directory, as a pure state machine over the changes seen and
//! the rescans done: soon after a file is complete (provisionally), and once the directory
//! has been quiet for the debounce period (settled, when a file that does not load counts as
//! broken).
//!
//! In: [`Change`]s and rescan results, each with the time it happened. Out: the [`Rescan`]
//! due and the next deadline. Driven by [`super::watcher`]; no I/O, no clock of its own.

use std::time::Duration;
use tokio::time::Instant;

/// How long after a completing change (close after write, rename, removal) the directory
/// is rescanned: long enough to batch the events of one `mv` or symlink swap.
pub(crate) const SETTLE: Duration = Duration::from_millis(5);

/// What a file-system event means for when to rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// A file is complete now: closed after writing, renamed into place, removed.
    Complete,
    /// Data is still arriving (or the event says nothing certain).
    Settling,
    /// Nothing changed (a file was opened or read).
    Unchanged,
}

/// What a rescan may conclude about a file that does not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rescan {
    /// The directory changed a moment ago: a file that does not load may still be being
    /// written, so it is pending, not failed.
    Provisional,
    /// The directory has been quiet for the debounce period: a file that does not load now
    /// is broken.
    Settled,
}

/// When to rescan, from the changes seen and the rescans done. Pure: the caller passes the
/// time.
#[derive(Debug)]
pub(crate) struct Schedule {
    quiet: Duration,
    /// The last change (or pending rescan): the quiet period counts from here.
    last_change: Option<Instant>,
    /// When a provisional rescan is due.
    fast: Option<Instant>,
    /// A settled rescan is owed once the directory is quiet.
    settle: bool,
}

impl Schedule {
    /// A schedule judging files after `quiet` without changes.
    pub(crate) fn new(quiet: Duration) -> Self {
        Self { quiet, last_change: None, fast: None, settle: false }
    }

    /// Takes in a change seen at `now`.
    pub(crate) fn changed(&mut self, change: Change, now: Instant) {
        match change {
            Change::Unchanged => return,
            Change::Complete => self.fast = Some(self.fast.map_or(now + SETTLE, |f| f.min(now + SETTLE))),
            Change::Settling => {}
        }
        self.last_change = Some(now);
        self.settle = true;
    }

    /// Takes in the result of a rescan finished at `now`: `pending` if some file could not
    /// be judged yet (still changing, or not loadable while the directory was not quiet).
    pub(crate) fn rescanned(&mut self, pending: bool, now: Instant) {
        if pending {
            self.last_change = Some(self.last_change.map_or(now, |t| t.max(now)));
            self.settle = true;
        }
    }

    /// The rescan due at `now`, if any (a settled one covers a provisional one).
    pub(crate) fn due(&mut self, now: Instant) -> Option<Rescan> {
        if self.settle && self.quiet_since().is_none_or(|t| now >= t) {
            (self.settle, self.fast) = (false, None);
            return Some(Rescan::Settled);
        }
        if self.fast.is_some_and(|f| now >= f) {
            self.fast = None;
            return Some(Rescan::Provisional);
        }
        None
    }

    /// When the next rescan is due, if one is owed.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let settled = if self.settle { self.quiet_since() } else { None };
        self.fast.into_iter().chain(settled).min()
    }

    fn quiet_since(&self) -> Option<Instant> {
        self.last_change.map(|t| t + self.quiet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const QUIET: Duration = Duration::from_millis(300);

    #[tokio::test(start_paused = true)]
    async fn a_completed_file_is_rescanned_soon_and_judged_once_the_directory_is_quiet() {
        let mut s = Schedule::new(QUIET);
        assert_eq!((s.deadline(), s.due(Instant::now())), (None, None));
        s.changed(Change::Complete, Instant::now());
        assert_eq!(s.deadline(), Some(Instant::now() + SETTLE));
        advance(SETTLE).await;
        assert_eq!(s.due(Instant::now()), Some(Rescan::Provisional));
        assert_eq!(s.due(Instant::now()), None);
        s.rescanned(false, Instant::now());
        advance(QUIET - SETTLE - Duration::from_millis(1)).await;
        assert_eq!(s.due(Instant::now()), None);
        advance(Duration::from_millis(1)).await;
        assert_eq!(s.due(Instant::now()), Some(Rescan::Settled));
        assert_eq!((s.deadline(), s.due(Instant::now())), (None, None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_written_in_chunks_is_only_judged_after_the_writer_stops() {
        let mut s = Schedule::new(QUIET);
        // Truncate, then a chunk every 50 ms for 2 s, each closed after writing.
        for _ in 0..40 {
            s.changed(Change::Settling, Instant::now());
            s.changed(Change::Complete, Instant::now());
            advance(SETTLE).await;
            assert_eq!(s.due(Instant::now()), Some(Rescan::Provisional), "a closed file is looked at soon");
            s.rescanned(true, Instant::now());
            advance(Duration::from_millis(45)).await;
            assert_eq!(s.due(Instant::now()), None, "never judged while the writer is at it");
        }
        // The last provisional rescan (5 ms after the last chunk) starts the quiet period.
        advance(QUIET - Duration::from_millis(46)).await;
        assert_eq!(s.due(Instant::now()), None);
        advance(Duration::from_millis(1)).await;
        assert_eq!(s.due(Instant::now()), Some(Rescan::Settled));
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_still_changing_at_a_settled_rescan_is_looked_at_again_after_another_quiet_period() {
        let mut s = Schedule::new(QUIET);
        s.changed(Change::Settling, Instant::now());
        advance(QUIET).await;
        assert_eq!(s.due(Instant::now()), Some(Rescan::Settled));
        s.rescanned(true, Instant::now());
        assert_eq!(s.deadline(), Some(Instant::now() + QUIET));
        advance(QUIET).await;
        assert_eq!(s.due(Instant::now()), Some(Rescan::Settled));
        s.rescanned(false, Instant::now());
        assert_eq!(s.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_and_reads_change_nothing() {
        let mut s = Schedule::new(QUIET);
        s.changed(Change::Unchanged, Instant::now());
        advance(QUIET).await;
        assert_eq!((s.deadline(), s.due(Instant::now())), (None, None));
    }
}
