//! Where plugin components are compiled to native code.
//!
//! The `kreflex` binary compiles in a child process (`kreflex precompile`), which writes the
//! artifact into the content-addressed cache; the engine then deserializes it, which takes
//! milliseconds. A compile of a 10+ MB component runs cranelift on every core for seconds and
//! allocates hundreds of MB. In a child it shares nothing with the threads handling events:
//! no allocator, no address space (so no `mmap_lock` or TLB shootdowns), no locks a starved
//! low-priority thread could hold; its memory is returned when it exits; a compile that
//! crashes, is killed by the OOM killer or runs past its deadline takes only the child down.
//! The child runs under `SCHED_IDLE`, so it uses only CPU time nothing else wants and a
//! waking event thread preempts it at once.
//!
//! Compiling in this process remains available (libraries embedding kreflex, tests, or
//! `--compile-in-process`) and is used when the compiler binary cannot be started.

use super::cache::{ArtifactCache, CacheOutcome, PrecompileError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How plugins are compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiler {
    /// On a low-priority thread of this process.
    InProcess,
    /// In a child process: `exe precompile --background`, killed after `timeout`.
    Process {
        /// The `kreflex` binary.
        exe: PathBuf,
        /// A compile still running after this is killed and the plugin reported as failed.
        timeout: Duration,
    },
}

/// Default deadline of one out-of-process compile. The largest components we know of (18 MB
/// Python) compile in about 10 s on two cores; a compile still running after five minutes is
/// a hostile or broken component.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

impl Compiler {
    /// Out of process when this process is the `kreflex` binary (it is its own compiler),
    /// else in process (a test harness or another program embedding the library).
    pub fn detect() -> Self {
        match std::env::current_exe() {
            Ok(exe) if exe.file_stem().is_some_and(|s| s == "kreflex") => {
                Compiler::Process { exe, timeout: DEFAULT_COMPILE_TIMEOUT }
            }
            _ => Compiler::InProcess,
        }
    }
}

/// Why a component could not be compiled.
#[derive(Debug)]
pub(crate) enum CompileError {
    /// The bytes are not a valid component (wasmtime's message).
    Invalid(String),
    /// The compiler failed (crashed, killed, timed out, could not store its artifact).
    Failed(String),
}

/// Why a compile in a child process did not produce a usable component.
#[derive(Debug)]
enum ChildFailure {
    /// The load fails with this: compiling in process would not do better (and a compiler
    /// that crashed on these bytes could crash the engine).
    Compile(CompileError),
    /// The compiler could not be started, or its artifact is of no use here (another kreflex
    /// build, no writable directory); compiling in process still can.
    Fallback(String),
}

/// The compiled component for `bytes` (whose SHA-256 is `hash`) for `engine`: from the
/// artifact cache, or compiled the way `compiler` says. Blocking.
pub(crate) fn obtain(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    compiler: &Compiler,
    bytes: &[u8],
    hash: &str,
) -> Result<(Component, CacheOutcome), CompileError> {
    if let Some(c) = cache.and_then(|cache| cache.load(engine, hash)) {
        return Ok((c, CacheOutcome::Hit));
    }
    if let Compiler::Process { exe, timeout } = compiler {
        match in_child(engine, cache, exe, *timeout, bytes, hash) {
            Ok(c) => return Ok((c, CacheOutcome::Compiled)),
            Err(ChildFailure::Compile(e)) => return Err(e),
            Err(ChildFailure::Fallback(why)) => {
                tracing::warn!(error = %why, "compiling in this process instead of a child process");
            }
        }
    }
    let compiled = match cache {
        Some(cache) => cache.compile(engine, bytes, hash),
        None => Component::from_binary(engine, bytes),
    };
    compiled.map(|c| (c, CacheOutcome::Compiled)).map_err(|e| CompileError::Invalid(format!("{e:#}")))
}

/// Compiles in a child into the cache (or, when the cache is off or cannot be written, a
/// private temporary directory removed afterwards) and loads the artifact.
fn in_child(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    exe: &Path,
    timeout: Duration,
    bytes: &[u8],
    hash: &str,
) -> Result<Component, ChildFailure> {
    let (cache, _tmp) = match cache.filter(|c| c.ensure_writable().is_ok()) {
        Some(cache) => (cache.clone(), None),
        None => {
            let tmp = tempfile::Builder::new().prefix("kreflex-compile-").tempdir().map_err(|e| {
                ChildFailure::Fallback(format!("no writable directory for the compiler's artifact: {e}"))
            })?;
            (ArtifactCache::new(tmp.path().to_path_buf(), engine), Some(tmp))
        }
    };
    let path = compile_in_child(exe, timeout, cache.dir(), bytes)?;
    let expected = cache.path_for(hash);
    if path != expected {
        return Err(ChildFailure::Fallback(format!(
            "the compiler {} wrote {} where this engine expects {}: it is a different kreflex build",
            exe.display(),
            path.display(),
            expected.display()
        )));
    }
    cache.load_path(engine, &path).ok_or_else(|| {
        ChildFailure::Fallback(format!("the artifact {} cannot be loaded by this engine", path.display()))
    })
}

/// One line of `kreflex precompile` output.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct PrecompileReport {
    /// The input (`-` for stdin).
    pub file: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// The artifact written.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub artifact: Option<PathBuf>,
    /// Compile time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub millis: Option<u64>,
    /// Why it could not be compiled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// The bytes are not a valid component (as opposed to a failure to write the artifact).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub invalid: bool,
}

/// Tells the compiler child its parent's pid (see [`exit_with_parent`]).
const PARENT_ENV: &str = "KREFLEX_COMPILER_PARENT";

/// Stderr kept from a failed child, for the error message.
const STDERR_TAIL: usize = 4096;

/// Compiles `bytes` in `exe precompile --background --cache-dir DIR -` and returns the
/// artifact it wrote into `dir`. Blocking.
fn compile_in_child(exe: &Path, timeout: Duration, dir: &Path, bytes: &[u8]) -> Result<PathBuf, ChildFailure> {
    let mut child = Command::new(exe)
        .args(["precompile", "--background", "--cache-dir"])
        .arg(dir)
        .arg("-")
        .env("KREFLEX_LOG_LEVEL", "warn")
        .env("KREFLEX_LOG_FORMAT", "text")
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ChildFailure::Fallback(format!("cannot start the compiler {}: {e}", exe.display())))?;
    let started = Instant::now();
    let (mut stdin, mut stdout, mut stderr) =
        (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let (status, stdout, stderr) = std::thread::scope(|s| {
        // The pipes are drained while the child runs, so that it never blocks on a full one.
        s.spawn(move || {
            // A child that dies early closes its end; its exit status tells why.
            let _ = stdin.write_all(bytes);
        });
        let out = s.spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = s.spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            String::from_utf8_lossy(&tail[tail.len().saturating_sub(STDERR_TAIL)..]).trim().to_owned()
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if started.elapsed() >= timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("the compile ran past its deadline of {timeout:?} and was killed"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("cannot wait for the compiler: {e}"));
                }
            }
        };
        (status, out.join().unwrap_or_default(), err.join().unwrap_or_default())
    });
    let failed = |e| Err(ChildFailure::Compile(e));
    let status = match status {
        Ok(status) => status,
        Err(e) => return failed(CompileError::Failed(e)),
    };
    let report = stdout.lines().find_map(|l| serde_json::from_str::<PrecompileReport>(l).ok());
    match (status.success(), report) {
        (true, Some(PrecompileReport { artifact: Some(path), .. })) => Ok(path),
        (_, Some(PrecompileReport { error: Some(e), invalid: true, .. })) => failed(CompileError::Invalid(e)),
        (_, Some(PrecompileReport { error: Some(e), .. })) => {
            failed(CompileError::Failed(format!("the compiler: {e}")))
        }
        _ => failed(CompileError::Failed(format!("the compiler {}: {}", describe_exit(status), last_line(&stderr)))),
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
        let hint = if sig == libc::SIGKILL { " (the OOM killer?)" } else { "" };
        return format!("was killed by signal {sig}{hint}");
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "ended without a status".into(),
    }
}

fn last_line(stderr: &str) -> &str {
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => l.trim(),
        None => "no error output",
    }
}

/// The child's side, first thing: a compile nobody waits for any more is not finished. The
/// child is killed when the thread that started it ends (the engine waits for the child on
/// that thread, so only if the engine itself dies).
#[cfg(target_os = "linux")]
pub(crate) fn exit_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and changes only this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot ask to be killed with the parent");
    }
    // The parent may have died before the request took effect: then this is an orphan,
    // adopted by another process. (Not "parent is 1": in a container the engine may be pid 1.)
    let parent = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse::<libc::pid_t>().ok());
    // SAFETY: getppid has no preconditions.
    if parent.is_some_and(|p| p != unsafe { libc::getppid() }) {
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn exit_with_parent() {}

/// The child's side: compiles one component into `cache` and reports the artifact.
pub(crate) fn precompile_one(
    engine: &wasmtime::Engine,
    cache: &ArtifactCache,
    file: &str,
    bytes: &[u8],
) -> PrecompileReport {
    let started = Instant::now();
    let sha256 = super::cache::content_hash(bytes);
    let outcome = cache.compile_and_store(engine, bytes, &sha256);
    let mut report =
        PrecompileReport { file: file.to_owned(), sha256, artifact: None, millis: None, error: None, invalid: false };
    match outcome {
        Ok(path) => {
            report.artifact = Some(path);
            report.millis = Some(started.elapsed().as_millis() as u64);
        }
        Err(e) => {
            report.invalid = matches!(e, PrecompileError::Invalid(_));
            report.error = Some(e.to_string());
        }
    }
    report
}
