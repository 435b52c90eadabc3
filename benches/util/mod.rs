//! Shared by the benchmarks: timing loops and percentiles.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Runs `f` `n` times after a warm-up of `n / 10`; returns the durations, sorted.
pub fn measure(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

/// The `p` quantile of sorted samples.
pub fn pct(s: &[Duration], p: f64) -> Duration {
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

/// Mean of samples.
pub fn mean(s: &[Duration]) -> Duration {
    s.iter().sum::<Duration>() / s.len() as u32
}
