//! Structured logging: `tracing` with text or JSON output, level from `--log-level` /
//! `RUST_LOG`, colour only on a terminal. And the rule for retried transient failures
//! ([`RetryEpisode`]): ERROR means a person has to act, so a failure kreflex retries on
//! its own is one WARN when the episode starts and one INFO, with the retry count, when
//! it resolves.

use std::ffi::OsStr;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// kube-client's HTTP layer logs every failed request at ERROR, retried or not; the caller
/// (informer, apply) reports the failure with its context and its retries instead.
const KUBE_CLIENT_REQUEST_ERRORS: &str = "kube_client::client::builder=off";

/// Installs the global subscriber, writing to stderr (stdout is for command output).
/// `level` is an `EnvFilter` directive such as `info` or `kreflex=debug,warn`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(directives(level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = use_colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

/// The filter directives for `level`: kube-client's per-request ERRORs are off unless the
/// user's directives name `kube_client`.
fn directives(level: &str) -> String {
    if level.contains("kube_client") { level.to_owned() } else { format!("{level},{KUBE_CLIENT_REQUEST_ERRORS}") }
}

/// ANSI colour only on a terminal, and never with `NO_COLOR` set to anything non-empty
/// (<https://no-color.org>).
fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// One episode of a transient failure that is retried: from the first failed attempt to
/// the next success. Callers log at WARN when [`RetryEpisode::failed`] says the episode
/// starts, at DEBUG for the attempts after it, and at INFO with the count when
/// [`RetryEpisode::succeeded`] says it resolved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetryEpisode {
    failures: u32,
}

impl RetryEpisode {
    /// Records a failed attempt; true when it starts an episode.
    pub fn failed(&mut self) -> bool {
        self.failures += 1;
        self.failures == 1
    }

    /// Failed attempts in the current episode.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a success: the failed attempts of the episode it ends, if any.
    pub fn succeeded(&mut self) -> Option<u32> {
        (self.failures > 0).then(|| std::mem::take(&mut self.failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None), "a file or a pipe gets no escape codes");
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(use_colour(true, Some(OsStr::new(""))), "an empty NO_COLOR is unset");
    }

    #[test]
    fn kube_client_request_errors_are_off_unless_asked_for() {
        assert_eq!(directives("info"), "info,kube_client::client::builder=off");
        assert_eq!(directives("kube_client=debug"), "kube_client=debug");
        assert!(EnvFilter::try_new(directives("kreflex=debug,warn")).is_ok());
    }

    #[test]
    fn an_episode_warns_once_and_reports_its_retries_when_it_resolves() {
        let mut e = RetryEpisode::default();
        assert_eq!(e.succeeded(), None, "no episode, nothing to report");
        assert!(e.failed());
        assert!(!e.failed());
        assert!(!e.failed());
        assert_eq!(e.failures(), 3);
        assert_eq!(e.succeeded(), Some(3));
        assert_eq!(e.succeeded(), None);
        assert!(e.failed(), "the next failure starts a new episode");
    }
}
