//! Precompiled-artifact cache: a component is compiled to native code once and stored on
//! disk, keyed by the SHA-256 of its bytes and by the engine's compatibility hash (which
//! covers the wasmtime version and every setting that changes code generation). A 15 MB
//! JavaScript component takes seconds to compile and milliseconds to load from here.
//!
//! Trust: artifacts are native code and are loaded without validation, so the directory
//! must be writable only by kreflex itself (it is created with mode 0700).

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a precompiled artifact.
    Hit,
    /// Compiled now (and stored if the cache is enabled).
    Compiled,
}

impl ArtifactCache {
    /// `$KREFLEX_CACHE_DIR`, else `$XDG_CACHE_HOME/kreflex`, else `~/.cache/kreflex`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("KREFLEX_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("kreflex"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("kreflex"))
    }

    /// A cache in `dir` for artifacts of `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self { dir, engine_key: format!("{:016x}", h.finish()) }
    }

    /// The directory artifacts live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the artifact of the component with `content_hash` is (or would be) kept.
    pub(crate) fn path_for(&self, content_hash: &str) -> PathBuf {
        self.dir.join(format!("{content_hash}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `content_hash`, if its artifact is here. An artifact that
    /// cannot be used (truncated, from another build) is removed and `None` returned.
    pub(crate) fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        self.load_path(engine, &self.path_for(content_hash))
    }

    /// Deserializes the artifact at `path` (one of this cache's, as written by
    /// [`Self::compile_and_store`], possibly by a child process); removes it if unusable.
    pub(crate) fn load_path(&self, engine: &Engine, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the artifact was written by `store` below into a directory only kreflex can
        // write to, from a component with this exact content hash, for an engine with this
        // exact compatibility hash (both are in the file name), and wasmtime re-checks the
        // engine compatibility header before using it.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable precompiled artifact");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    /// Compiles `bytes` (whose SHA-256 is `content_hash`) and stores the artifact. A failure
    /// to write it is logged, never fatal: the next load compiles again.
    pub(crate) fn compile(&self, engine: &Engine, bytes: &[u8], content_hash: &str) -> wasmtime::Result<Component> {
        let component = Component::from_binary(engine, bytes)?;
        let path = self.path_for(content_hash);
        if let Err(e) = self.store(&component, &path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write precompiled artifact; the next load compiles again");
        }
        Ok(component)
    }

    /// Compiles `bytes` and stores the artifact, for a process that does not need the
    /// component itself (`kreflex precompile`). Returns the artifact's path.
    pub(crate) fn compile_and_store(
        &self,
        engine: &Engine,
        bytes: &[u8],
        content_hash: &str,
    ) -> Result<PathBuf, PrecompileError> {
        let component =
            Component::from_binary(engine, bytes).map_err(|e| PrecompileError::Invalid(format!("{e:#}")))?;
        let path = self.path_for(content_hash);
        self.store(&component, &path).map_err(|e| PrecompileError::Store(format!("{}: {e:#}", path.display())))?;
        Ok(path)
    }

    /// Creates the directory (mode 0700) if needed and checks that it can be written to.
    pub(crate) fn ensure_writable(&self) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let probe = self.dir.join(format!(".probe{}", std::process::id()));
        std::fs::write(&probe, b"")?;
        std::fs::remove_file(&probe)
    }

    fn store(&self, component: &Component, path: &Path) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let bytes = component.serialize().map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        // Write to a unique temporary name and rename: a reader never sees a torn file,
        // and two processes compiling the same component at once do not interfere.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Why `kreflex precompile` produced no artifact.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrecompileError {
    /// Not a valid component (wasmtime's message).
    #[error("{0}")]
    Invalid(String),
    /// Compiled, but the artifact could not be written.
    #[error("cannot write the artifact {0}")]
    Store(String),
}

/// SHA-256 of a component's bytes, hex-encoded: the plugin's identity in the cache, in
/// logs and in `kreflex inspect`.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
