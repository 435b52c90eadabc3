//! What a plugin writes to kreflex's log: its host `log` calls and its captured
//! stdout/stderr, bounded and escaped on the way to `tracing`.
//!
//! In: messages and output bytes from one call. Out: log lines tagged with the plugin,
//! and a count of what was dropped. Bounds: [`WasmConfig::max_log_per_call`] bytes of
//! `log` messages and [`WasmConfig::max_output`] bytes of output per call, and
//! [`WasmConfig::max_log_per_second`] bytes of both per plugin across all its calls (a
//! token bucket holding one second's worth). What does not fit is dropped and counted in
//! [`LogBudget::dropped`] (`Plugin::log_dropped_bytes`), with at most one notice per plugin
//! per second. Control characters (newlines, carriage returns, ANSI escapes, all of C0 and
//! C1) and Unicode line separators and bidirectional overrides are escaped, so that a
//! plugin's text never starts a log line or rewrites one in any log format.
//!
//! [`WasmConfig::max_log_per_call`]: super::WasmConfig::max_log_per_call
//! [`WasmConfig::max_output`]: super::WasmConfig::max_output
//! [`WasmConfig::max_log_per_second`]: super::WasmConfig::max_log_per_second

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// What one log line costs beyond its text, charged against the caps so that many tiny
/// messages cannot multiply the log: about what the text format adds (timestamp, level,
/// target, plugin field).
const LINE_COST: usize = 100;

/// One plugin's log allowance per second, shared by all its calls, and the count of what
/// it lost.
#[derive(Debug)]
pub(crate) struct LogBudget {
    per_second: usize,
    bucket: Mutex<Bucket>,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may be logged now.
    tokens: f64,
    /// When `tokens` was last refilled.
    at: Instant,
    /// When the last "dropped" notice was logged.
    noticed: Option<Instant>,
}

impl LogBudget {
    /// A full bucket of `per_second` bytes.
    pub(crate) fn new(per_second: usize) -> Self {
        let bucket = Bucket { tokens: per_second as f64, at: Instant::now(), noticed: None };
        Self { per_second, bucket: Mutex::new(bucket), dropped: AtomicU64::new(0) }
    }

    /// Takes up to `want` bytes from the bucket at `now`; returns how many were granted.
    fn take(&self, want: usize, now: Instant) -> usize {
        let mut b = self.bucket.lock();
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.per_second as f64;
        b.tokens = (b.tokens + refill).min(self.per_second as f64);
        b.at = now;
        let granted = want.min(b.tokens as usize);
        b.tokens -= granted as f64;
        granted
    }

    /// Bytes dropped so far, over the plugin's lifetime.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether a notice about dropped bytes is due: one per plugin per second, so that the
    /// notices cannot become a flood of their own.
    fn notice_due(&self, now: Instant) -> bool {
        let mut b = self.bucket.lock();
        let due = b.noticed.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if due {
            b.noticed = Some(now);
        }
        due
    }
}

/// The log of one call: its share of the plugin's budget and its own per-call caps.
pub(crate) struct CallLog {
    plugin: Arc<str>,
    budget: Arc<LogBudget>,
    /// Bytes of `log` messages this call may still write.
    left: usize,
    /// Bytes dropped in this call.
    dropped: usize,
}

impl CallLog {
    pub(crate) fn new(plugin: Arc<str>, budget: Arc<LogBudget>, per_call: usize) -> Self {
        Self { plugin, budget, left: per_call, dropped: 0 }
    }

    /// The plugin whose call this is.
    pub(crate) fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Logs one message of the plugin's host `log` call, within the caps.
    pub(crate) fn message(&mut self, level: tracing::Level, message: &str) {
        let (kept, charged) = self.admit(message, self.left);
        self.left -= charged;
        if kept.is_empty() {
            return;
        }
        let (plugin, text) = (&*self.plugin, escape(kept));
        match level {
            tracing::Level::TRACE => tracing::trace!(plugin, "{text}"),
            tracing::Level::DEBUG => tracing::debug!(plugin, "{text}"),
            tracing::Level::INFO => tracing::info!(plugin, "{text}"),
            tracing::Level::WARN => tracing::warn!(plugin, "{text}"),
            tracing::Level::ERROR => tracing::error!(plugin, "{text}"),
        }
    }

    /// Logs what the guest printed, line by line, then the call's dropped-bytes notice if
    /// one is due. Called once, when the call ends.
    pub(crate) fn finish(&mut self, output: &CapturedOutput) {
        let (text, overflow) = output.take();
        self.count_dropped(overflow);
        for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.trim().is_empty()) {
            let (kept, _) = self.admit(line, usize::MAX);
            if !kept.is_empty() {
                tracing::info!(target: "kreflex::plugin_output", plugin = &*self.plugin, "{}", escape(kept));
            }
        }
        if self.dropped > 0 && self.budget.notice_due(Instant::now()) {
            tracing::warn!(
                plugin = &*self.plugin,
                dropped_bytes = self.dropped,
                dropped_bytes_total = self.budget.dropped(),
                "plugin log and output past their limits were dropped"
            );
        }
    }

    /// The part of `text` (cut at a character boundary) whose line fits `cap` and the
    /// plugin's budget, and what it was charged; the rest is counted as dropped. A line
    /// that would keep no text is not written at all.
    fn admit<'a>(&mut self, text: &'a str, cap: usize) -> (&'a str, usize) {
        let granted = self.budget.take((text.len() + LINE_COST).min(cap), Instant::now());
        let mut end = granted.saturating_sub(LINE_COST).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.count_dropped(text.len() - end);
        (&text[..end], granted)
    }

    fn count_dropped(&mut self, bytes: usize) {
        if bytes > 0 {
            self.dropped += bytes;
            self.budget.dropped.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
}

/// Whether `c` could end, rewrite or disguise a log line: every control character (C0,
/// DEL, C1 — newline, carriage return, the ANSI escape), the Unicode line and paragraph
/// separators, and the bidirectional formatting characters.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{feff}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` with every character of [`needs_escape`] written as `\n`, `\r`, `\t` or
/// `\u{…}`; borrowed when nothing needs escaping.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Guest stdout/stderr for one call, bounded: output past the capacity is dropped (and
/// counted) rather than failing the guest's write, so a chatty plugin cannot crash itself
/// or flood the host.
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    buf: BytesMut,
    capacity: usize,
    dropped: usize,
}

impl CapturedOutput {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { inner: Arc::new(Mutex::new(Captured { buf: BytesMut::new(), capacity, dropped: 0 })) }
    }

    /// What was captured and how many bytes did not fit; empties the buffer.
    fn take(&self) -> (BytesMut, usize) {
        let mut c = self.inner.lock();
        let dropped = std::mem::take(&mut c.dropped);
        (c.buf.split(), dropped)
    }

    fn append(&self, bytes: &[u8]) {
        let mut c = self.inner.lock();
        let room = c.capacity.saturating_sub(c.buf.len());
        let take = room.min(bytes.len());
        c.buf.extend_from_slice(&bytes[..take]);
        c.dropped += bytes.len() - take;
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_separators_and_bidi_overrides_are_escaped() {
        let cases = [
            ("plain text, \\n as typed stays", "plain text, \\n as typed stays"),
            ("a\nb\rc\td", "a\\nb\\rc\\td"),
            ("\x1b[2K\x1b[31mred", "\\u{1b}[2K\\u{1b}[31mred"),
            ("nul\0del\x7fnel\u{85}csi\u{9b}", "nul\\u{0}del\\u{7f}nel\\u{85}csi\\u{9b}"),
            ("ls\u{2028}ps\u{2029}rlo\u{202e}fsi\u{2068}", "ls\\u{2028}ps\\u{2029}rlo\\u{202e}fsi\\u{2068}"),
            ("ünïcödé ✓", "ünïcödé ✓"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape(input), expected, "{input:?}");
        }
        assert!(matches!(escape("nothing to do"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_bucket_holds_one_second_and_refills_with_time() {
        let budget = LogBudget::new(1000);
        let t0 = Instant::now();
        assert_eq!(budget.take(600, t0), 600);
        assert_eq!(budget.take(600, t0), 400, "only what is left");
        assert_eq!(budget.take(10, t0), 0);
        assert_eq!(budget.take(600, t0 + Duration::from_millis(500)), 500, "half a second refills half");
        assert_eq!(budget.take(5000, t0 + Duration::from_secs(60)), 1000, "never more than one second's worth");
    }

    #[test]
    fn a_call_keeps_what_fits_cut_at_a_character_and_counts_the_rest() {
        let budget = Arc::new(LogBudget::new(1 << 20));
        let mut log = CallLog::new(Arc::from("p"), budget.clone(), LINE_COST + 10);
        let (kept, charged) = log.admit("héllo wörld", LINE_COST + 9);
        assert_eq!(kept, "héllo w", "cut before the ö that byte 9 splits");
        assert_eq!(charged, LINE_COST + 9);
        assert_eq!(log.dropped, 13 - 8);
        log.message(tracing::Level::INFO, "0123456789abc");
        assert_eq!(log.left, 0);
        log.message(tracing::Level::INFO, "more");
        assert_eq!(budget.dropped(), 5 + 3 + 4);
        // Once the budget cannot pay for a line, tiny messages are dropped, not written as
        // lines of nothing.
        let tight = Arc::new(LogBudget::new(LINE_COST + 1));
        let mut log = CallLog::new(Arc::from("p"), tight.clone(), usize::MAX);
        assert_eq!(log.admit("x", usize::MAX).0, "x");
        assert_eq!(log.admit("y", usize::MAX).0, "");
        assert_eq!(tight.dropped(), 1);
    }

    #[test]
    fn drops_are_noticed_at_most_once_a_second() {
        let budget = LogBudget::new(10);
        let t0 = Instant::now();
        assert!(budget.notice_due(t0));
        assert!(!budget.notice_due(t0 + Duration::from_millis(900)));
        assert!(budget.notice_due(t0 + Duration::from_millis(1000)));
    }
}
