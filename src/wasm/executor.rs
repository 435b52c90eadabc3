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
//! them, where entering a runtime would panic inside another one; a thread outside any
//! runtime runs the call on a current-thread runtime of its own instead.

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
    /// or not. A thread outside any runtime (`kreflex test`, a load thread) runs `call`
    /// itself, on a current-thread runtime of its own, which spares the hand-over to the
    /// executor's threads and back (tens of microseconds a call). A thread inside a runtime
    /// cannot enter another one: it spawns `call` on the executor and waits on a plain
    /// future, which neither needs nor enters a runtime.
    pub(crate) fn run_blocking<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, JoinError> {
        thread_local! {
            static LOCAL: Option<Runtime> = Builder::new_current_thread().enable_time().build().ok();
        }
        if Handle::try_current().is_err() {
            let mut call = Some(call);
            let ran = LOCAL.with(|local| local.as_ref().map(|rt| rt.block_on(call.take().expect("not yet taken"))));
            if let Some(out) = ran {
                return Ok(out);
            }
            // No local runtime could be built: the executor's threads run it instead.
            return futures::executor::block_on(self.run(call.expect("not taken when there is no local runtime")));
        }
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
    fn a_plain_thread_runs_a_call_with_its_timers_itself() {
        let ex = Executor::start().expect("threads");
        assert_eq!(ex.run_blocking(bounded_sleep()).expect("joined"), None);
        let here = std::thread::current().id();
        assert!(ex.run_blocking(async move { std::thread::current().id() == here }).expect("joined"));
    }

    #[test]
    fn a_blocking_thread_of_another_runtime_hands_the_call_to_the_executor() {
        let ex = std::sync::Arc::new(Executor::start().expect("threads"));
        let other = Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let ex2 = ex.clone();
        let out = other.block_on(async move {
            tokio::task::spawn_blocking(move || ex2.run_blocking(bounded_sleep()).expect("joined")).await
        });
        assert_eq!(out.expect("joined"), None);
    }

    #[tokio::test]
    async fn blocking_callers_inside_a_runtime_do_not_panic_and_it_drops_there() {
        let ex = Executor::start().expect("threads");
        assert_eq!(ex.run_blocking(bounded_sleep()).expect("joined"), None);
        assert_eq!(ex.run(async { 7 }).await.expect("joined"), 7);
        drop(ex);
    }
}
