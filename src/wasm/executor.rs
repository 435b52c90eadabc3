//! Where plugin code runs: a small tokio runtime of the wasm host's own, on which every
//! plugin call (`describe` at load, `on-event`) is one future bounded by its deadline.
//!
//! In: a call future (instantiate + call an export, see `plugin.rs`). Out: its result, to an
//! async caller (`Plugin::call`) or a blocking one (`Plugin::call_blocking`, `Plugin::load`).
//! Guest code runs on wasmtime fibers and yields at every epoch tick; WASI calls that wait
//! (a sleep is a `wasi:io/poll` on a monotonic-clock pollable) are tokio futures. So a
//! call's deadline is a `tokio::time::timeout` around the whole call, run here, which drops
//! the call — guest code, host calls and WASI waits alike — when it fires.
//!
//! A runtime of its own, rather than the caller's, because callers are everywhere: engine
//! workers (async), the reload path's blocking load threads, `kreflex test` and
//! `kreflex inspect` (no runtime at all). Waiting for a spawned future works from all of
//! them, where entering a runtime would panic inside another one.

use std::future::Future;
use std::num::NonZeroUsize;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinError;

/// Threads plugin code runs on: one per core, at least 2 so that one guest busy until its
/// next yield never delays another guest's deadline, at most 16 (more threads than cores
/// buy nothing: guests yield every epoch tick and share them).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, NonZeroUsize::get).clamp(2, 16)
}

/// The runtime plugin calls run on. Shut down in the background when dropped, so that the
/// last `Runtime` clone may be dropped anywhere, also inside another async runtime.
pub(crate) struct Executor {
    runtime: Option<Runtime>,
}

impl Executor {
    /// Starts the threads.
    pub(crate) fn start() -> std::io::Result<Self> {
        let runtime =
            Builder::new_multi_thread().worker_threads(threads()).thread_name("kreflex-wasm").enable_time().build()?;
        Ok(Self { runtime: Some(runtime) })
    }

    fn handle(&self) -> &Handle {
        self.runtime.as_ref().expect("the executor's runtime is only taken when it is dropped").handle()
    }

    /// Runs `call` on the executor and waits for it. `Err` only if `call` panicked or the
    /// executor is shutting down.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, JoinError> {
        self.handle().spawn(call).await
    }

    /// [`Executor::run`] for a caller that may block: any thread, inside an async runtime
    /// or not. It waits on a plain future, so it neither needs nor enters a runtime.
    pub(crate) fn run_blocking<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, JoinError> {
        futures::executor::block_on(self.run(call))
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A call that would wait an hour, bounded as plugin calls are.
    async fn bounded_sleep() -> Option<()> {
        tokio::time::timeout(Duration::from_millis(20), tokio::time::sleep(Duration::from_secs(3600))).await.ok()
    }

    #[test]
    fn a_plain_thread_waits_for_a_call_whose_timers_run_on_the_executor() {
        let ex = Executor::start().expect("threads");
        assert_eq!(ex.run_blocking(bounded_sleep()).expect("joined"), None);
        assert_eq!(ex.run_blocking(async { 7 }).expect("joined"), 7);
    }

    #[tokio::test]
    async fn blocking_callers_inside_a_runtime_do_not_panic_and_it_drops_there() {
        let ex = Executor::start().expect("threads");
        assert_eq!(ex.run_blocking(bounded_sleep()).expect("joined"), None);
        assert_eq!(ex.run(async { 7 }).await.expect("joined"), 7);
        drop(ex);
    }
}
