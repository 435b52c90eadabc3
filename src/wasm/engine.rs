//! The one wasmtime [`Engine`] of the process, configured in one place, and the [`Runtime`]
//! that loads plugins into it.
//!
//! Everything about how plugins are compiled and sandboxed is decided here: component
//! model on, cranelift, the pooling allocator (instantiation in microseconds, which is what
//! makes a fresh instance per call affordable), epoch interruption so that guest code yields
//! to the call's deadline, async WASI so that a guest waiting in WASI does too, and the
//! precompiled-artifact cache.

use super::cache::ArtifactCache;
use super::compiler::Compiler;
use super::executor::Executor;
use super::host::HostState;
use super::limits::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch ticks. Guest code yields to its call's deadline (and to other
/// guests) at every tick, so this is how far past its deadline a computing guest can run;
/// 10 ms keeps the ticker thread's cost negligible.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Elements of one table in the instance pool. The largest measured: 7,692 (a JS
/// plugin's function table); Go 6,583, Python 5,674.
const TABLE_ELEMENTS: usize = 100_000;

/// Sandbox limits and engine settings. Every field has a sane default.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Memory a plugin instance may use: all its linear memories and tables together, in
    /// all of its core instances (default 64 MiB).
    pub memory_limit: usize,
    /// The largest memory limit any plugin may be given through a per-plugin override;
    /// it sizes the pooling allocator's slots (default 512 MiB, virtual address space only).
    pub memory_ceiling: usize,
    /// Deadline of one call, wall-clock, whatever the plugin does meanwhile: computing,
    /// calling the host or waiting in WASI (default 1 s).
    pub call_timeout: Duration,
    /// Instances alive at once across all plugins (default 64).
    pub max_instances: u32,
    /// Bytes of guest stdout/stderr kept per call; the rest is dropped and counted (default 64 KiB).
    pub max_output: usize,
    /// Bytes a plugin may hand the host in one transfer: its result, or the arguments of
    /// one host call (default 8 MiB). This bounds what the host allocates for a call
    /// whatever the plugin's own memory holds: lifting stops, and the call fails, as soon
    /// as the total would pass it (100 Events pointing at one 40 MB string would otherwise
    /// be 4 GB of host strings). A valid result is far smaller: one action body is at most
    /// 1 MiB (`actions::Limits::max_body_bytes`), an Event message 1,024 characters.
    pub max_transfer: usize,
    /// Bytes of host `log` messages one call may write; the rest is dropped and counted
    /// (default 64 KiB, as for stdout/stderr).
    pub max_log_per_call: usize,
    /// Bytes of `log` messages and stdout/stderr one plugin may write per second, over all
    /// its calls; the rest is dropped and counted (default 128 KiB: about a thousand
    /// lines a second, or 11 GB a day at most).
    pub max_log_per_second: usize,
    /// Where precompiled artifacts are stored; `None` disables the on-disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling allocator (default true). Off is slower to instantiate but needs
    /// no up-front address-space reservation.
    pub pooling: bool,
    /// Where components are compiled (default: [`Compiler::detect`], a child process when
    /// running as the `kreflex` binary).
    pub compiler: Compiler,
}

impl Default for WasmConfig {
    fn default() -> Self {
        Self {
            memory_limit: 64 << 20,
            memory_ceiling: 512 << 20,
            call_timeout: Duration::from_secs(1),
            max_instances: 64,
            max_output: 64 << 10,
            max_transfer: 8 << 20,
            max_log_per_call: 64 << 10,
            max_log_per_second: 128 << 10,
            cache_dir: ArtifactCache::default_dir(),
            pooling: true,
            compiler: Compiler::detect(),
        }
    }
}

/// The process-wide WebAssembly runtime: engine, linker, artifact cache and the epoch
/// ticker. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<HostState>>,
    pub(crate) config: Arc<WasmConfig>,
    pub(crate) cache: Option<ArtifactCache>,
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    pub(crate) executor: Arc<Executor>,
    _ticker: Arc<EpochTicker>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Runtime {
    /// Builds the engine and the linker. Fails only if the configuration is impossible on
    /// this machine (e.g. the pooling allocator cannot reserve its address space).
    pub fn new(config: WasmConfig) -> wasmtime::Result<Self> {
        background_compile_pool();
        let engine = Engine::new(&engine_config(&config))?;
        let mut linker = Linker::<HostState>::new(&engine);
        // WASI p2 is linked because every component built by a real toolchain imports
        // some of it (std's stdio, clocks, random). The capabilities behind it are
        // withheld per store in `HostState::new`: no preopens, env, args or sockets. The
        // async flavour, so that a guest waiting in WASI (a sleep, a poll) is a future the
        // call's deadline can drop, not a blocked thread.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        super::bindings::Reactor::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;
        let cache = config.cache_dir.clone().map(|dir| ArtifactCache::new(dir, &engine));
        let ticker = EpochTicker::start(engine.clone());
        let executor = Executor::start()?;
        Ok(Self {
            slots: Arc::new(tokio::sync::Semaphore::new(config.max_instances as usize)),
            engine,
            linker: Arc::new(linker),
            config: Arc::new(config),
            cache,
            executor: Arc::new(executor),
            _ticker: Arc::new(ticker),
        })
    }

    /// The sandbox settings in force.
    pub fn config(&self) -> &WasmConfig {
        &self.config
    }

    /// The precompiled-artifact cache, if enabled.
    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.cache.as_ref()
    }
}

/// The settings that decide what code is generated: everything a compiler process needs to
/// produce artifacts this engine accepts. (Instance allocation is not among them: see the
/// test `a_compile_only_engine_makes_artifacts_the_full_engine_accepts`.)
fn compile_config() -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.parallel_compilation(true);
    // Guests must not be able to exhaust the host's stack.
    c.max_wasm_stack(1 << 20);
    c
}

/// An engine for compiling only (`kreflex precompile`): the code-generation settings of
/// [`Runtime`]'s engine without its instance pool.
pub(crate) fn compile_engine() -> wasmtime::Result<Engine> {
    Engine::new(&compile_config())
}

fn engine_config(config: &WasmConfig) -> Config {
    let mut c = compile_config();
    if config.pooling {
        let mut pool = PoolingAllocationConfig::new();
        let n = config.max_instances;
        // Per component what one plugin may have (see `limits`); the totals, that many
        // times `max_instances`, so that any mix of plugins fits. Memory slots reserve
        // address space only; what a plugin may touch is bounded by the store's limiter
        // over all its memories and tables together.
        pool.total_component_instances(n)
            .total_core_instances(n * MAX_CORE_INSTANCES)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .max_memories_per_module(MAX_MEMORIES)
            .max_tables_per_module(MAX_TABLES)
            .total_memories(n * MAX_MEMORIES)
            .total_tables(n * MAX_TABLES)
            .total_stacks(n)
            .table_elements(TABLE_ELEMENTS)
            .max_memory_size(config.memory_ceiling.max(config.memory_limit))
            .max_unused_warm_slots(n);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// Nice value of the threads that compile plugins, in effect where `SCHED_IDLE` cannot be
/// set (see [`lower_this_thread_priority`]).
pub const COMPILE_NICE: i32 = 10;

/// Runs `f` (a plugin load that may compile) on a fresh thread at background priority (see
/// [`lower_this_thread_priority`]), and waits for it. The engine's reload path uses this so
/// that compiling stays off the event path in CPU time too, not only off the async workers.
/// Only that thread's priority changes (lowering it needs no privilege; raising it back
/// would, hence a fresh thread).
pub fn compile_in_background<T: Send>(f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new().name("kreflex-load".into()).spawn_scoped(s, || {
            lower_this_thread_priority();
            f()
        })?;
        Ok(handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Builds rayon's global pool, which wasmtime's parallel compilation runs on, with its
/// threads at background priority. Done once per process, before the first compile.
fn background_compile_pool() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let built = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("kreflex-compile-{i}"))
            .start_handler(|_| lower_this_thread_priority())
            .build_global();
        if let Err(e) = built {
            tracing::debug!(error = %e, "rayon's global pool already exists; plugin compiles run at its priority");
        }
    });
}

/// Puts the calling thread (and threads it starts later) in the `SCHED_IDLE` class at nice
/// [`COMPILE_NICE`]. A compile of a 10+ MB component keeps every core busy for seconds. At
/// nice 10 alone a thread handling an event that wakes up may still wait out the compile
/// thread's time slice (milliseconds); a `SCHED_IDLE` thread is preempted by any normal
/// thread as soon as it wakes, and gets only CPU time nothing else wants. Measured with
/// `cargo bench --bench reload`: p99 while a 12 MB component compiles 6.5–6.7 ms at nice 10,
/// 4.4–5.3 ms under `SCHED_IDLE`, about what two idle-class busy loops cost.
#[cfg(target_os = "linux")]
pub(crate) fn lower_this_thread_priority() {
    // On Linux the nice value and the scheduling policy are per thread: `setpriority(
    // PRIO_PROCESS, tid)` and `sched_setscheduler(0)` change the calling thread only.
    // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, COMPILE_NICE) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the compile thread's priority");
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot put the compile thread in SCHED_IDLE");
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lower_this_thread_priority() {}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a dedicated thread, so that calls
/// past their deadline trap. Stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // A plain thread: the tokio runtime may be busy or absent (e.g. `kreflex inspect`).
        let spawned = std::thread::Builder::new().name("kreflex-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the epoch ticker; busy plugin code will not yield and can run past its deadline");
        }
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (nice value, scheduling policy) of the calling thread.
    #[cfg(target_os = "linux")]
    fn priority_of_this_thread() -> (i32, i32) {
        // SAFETY: reads the calling thread's own nice value and policy.
        unsafe { (libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t), libc::sched_getscheduler(0)) }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn loads_and_compile_threads_run_at_idle_priority_and_the_caller_keeps_its_own() {
        let before = priority_of_this_thread();
        // Some sandboxes (e.g. gVisor) refuse scheduling policies; there nice 10 is all
        // that applies, and that is what is checked.
        let idle_allowed = std::thread::spawn(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: `param` is valid for the call; changes only this scratch thread.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
        })
        .join()
        .expect("probe");
        if !idle_allowed {
            eprintln!("SCHED_IDLE is refused on this system: checking the nice value only");
        }
        let policy = if idle_allowed { libc::SCHED_IDLE } else { before.1 };
        let background = (COMPILE_NICE.max(before.0), policy);
        let inside = compile_in_background(priority_of_this_thread).expect("thread");
        assert_eq!(inside, background, "the load thread is idle-class and niced");
        assert_eq!(priority_of_this_thread(), before, "the calling thread is untouched");

        background_compile_pool();
        let pool = rayon::broadcast(|_| priority_of_this_thread());
        assert!(!pool.is_empty());
        assert!(
            pool.iter().all(|&p| p == background),
            "rayon's global pool (wasmtime's compiles) runs at idle priority: {pool:?}"
        );
    }

    #[test]
    fn a_compile_only_engine_makes_artifacts_the_full_engine_accepts() {
        // rayon's pool is per process and built on first use: build it as `Runtime::new` does,
        // or this compile would build it at normal priority under the priority test's feet.
        background_compile_pool();
        use std::hash::{Hash, Hasher};
        let hash = |e: &Engine| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            e.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        };
        let full = Engine::new(&engine_config(&WasmConfig::default())).expect("engine");
        let compile_only = compile_engine().expect("engine");
        assert_eq!(hash(&full), hash(&compile_only));
        // The empty component: magic, component-model version and layer.
        let artifact = compile_only.precompile_component(b"\0asm\x0d\0\x01\0").expect("compiles");
        // SAFETY: produced just above by an engine with the same settings.
        unsafe { wasmtime::component::Component::deserialize(&full, &artifact) }.expect("accepted");
    }

    #[test]
    fn a_panicking_load_propagates_to_the_caller() {
        let r = std::panic::catch_unwind(|| compile_in_background(|| panic!("boom")));
        assert!(r.is_err());
    }
}
