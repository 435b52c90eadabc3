//! One plugin file → a [`LoadedPlugin`]: reads `NAME.wasm` (or `NAME.wasm.zst`, decompressed
//! up to [`MAX_DECOMPRESSED_BYTES`]) and its optional `NAME.json`, checks the plugin file's
//! size and limit overrides against their bounds, compiles and validates the component,
//! binds its identity to the file (`NAME.wasm` must declare `NAME`: the name decides the
//! service account, field manager and finalizer, so a file cannot take another plugin's)
//! and compiles its subscriptions' selectors.
//!
//! In: a path (or the bytes already read from it). Out: a [`LoadedPlugin`] without an
//! applier (the installer gives it one), or a [`LoadError`] naming the file. Blocking: it
//! compiles; the installer runs it off the async workers.

use super::dir::{Fingerprint, MAX_PLUGIN_FILE_BYTES, config_path, is_compressed, plugin_name, read_optional};
use super::registry::LoadedPlugin;
use crate::rbac::Allowed;
use crate::route::Route;
use crate::selector::SelectorError;
use crate::wasm::{LoadOptions, Plugin, Runtime};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The largest memory limit a `NAME.json` may ask for, in MiB (the runtime's default
/// memory ceiling).
pub const MAX_MEMORY_LIMIT_MIB: usize = 512;
/// The largest CPU deadline per call a `NAME.json` may ask for, in milliseconds (10 s): a
/// longer one holds a worker that long.
pub const MAX_CALL_TIMEOUT_MS: u64 = 10_000;

/// The largest component a `NAME.wasm.zst` may decompress to (256 MiB, over ten times the
/// largest plugin we build: Python's 18 MB). A file that would decompress further (a
/// "zip bomb") is refused having held no more than this in memory.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// `NAME.json` next to `NAME.wasm`: configuration handed to the plugin and per-plugin
/// overrides of the sandbox limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginFile {
    /// Any JSON; the plugin reads it with `get-config`.
    pub config: Option<serde_json::Value>,
    /// Memory limit in MiB.
    pub memory_limit_mib: Option<usize>,
    /// CPU deadline per call in milliseconds.
    pub call_timeout_ms: Option<u64>,
    /// Sensitive resources (`RESOURCE[.GROUP]`, e.g. `secrets`) the operator allows this
    /// plugin to declare permissions on (see [`crate::rbac::sensitive`]).
    #[serde(default)]
    pub allow_sensitive: Vec<crate::rbac::sensitive::GroupResource>,
}

/// Why a plugin file did not load. The message names the file; the cause is the
/// [`std::error::Error::source`] (render the whole chain with [`error_text`]).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `NAME.wasm` or `NAME.json` cannot be read.
    #[error("{}: cannot read", file.display())]
    Read {
        /// The file that cannot be read.
        file: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// `NAME.wasm` and `NAME.wasm.zst` are both there.
    #[error("{}", super::dir::twin_message(file))]
    Twin {
        /// The file being loaded.
        file: PathBuf,
    },
    /// `NAME.wasm.zst` is not a valid zstd stream.
    #[error("{}: cannot decompress (zstd)", file.display())]
    Decompress {
        /// The `NAME.wasm.zst`.
        file: PathBuf,
        /// What the decoder said.
        #[source]
        source: std::io::Error,
    },
    /// `NAME.wasm.zst` decompresses to more than [`MAX_DECOMPRESSED_BYTES`].
    #[error("{}: decompresses to more than {max} bytes; refused", file.display())]
    Inflated {
        /// The `NAME.wasm.zst`.
        file: PathBuf,
        /// The largest size accepted.
        max: usize,
    },
    /// `NAME.json` is not a valid plugin file.
    #[error("{}: invalid plugin file", file.display())]
    Config {
        /// The `NAME.json`.
        file: PathBuf,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// `NAME.json` is larger than [`MAX_PLUGIN_FILE_BYTES`].
    #[error("{}: the plugin file is larger than {max} bytes", file.display())]
    TooLarge {
        /// The `NAME.json`.
        file: PathBuf,
        /// The largest size accepted.
        max: usize,
    },
    /// A limit override in `NAME.json` is outside its bounds.
    #[error("{}: {field} is {value}; it must be between 1 and {max}", file.display())]
    Limit {
        /// The `NAME.json`.
        file: PathBuf,
        /// The field, as written in the file (`callTimeoutMs`).
        field: &'static str,
        /// Its value.
        value: u64,
        /// Its largest accepted value.
        max: u64,
    },
    /// `NAME.wasm` (or `NAME.wasm.zst`) declares a name other than `NAME`.
    #[error("{}: the plugin declares the name {declared:?}; a plugin file must be named after its plugin ({declared}.wasm or {declared}.wasm.zst)", file.display())]
    Identity {
        /// The `NAME.wasm`.
        file: PathBuf,
        /// The name `describe()` declared.
        declared: String,
    },
    /// The component did not load (its message names the file).
    #[error(transparent)]
    Wasm(#[from] crate::wasm::LoadError),
    /// A declared permission is refused (sensitive and not allowed, unreachable, or a
    /// finalizer without a write).
    #[error("{}", file.display())]
    Refused {
        /// The `NAME.wasm`.
        file: PathBuf,
        /// What is refused.
        #[source]
        source: Box<crate::rbac::Refused>,
    },
    /// A subscription's label or field selector does not parse.
    #[error("{}: plugin {plugin}", file.display())]
    Selector {
        /// The `NAME.wasm`.
        file: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// The selector error.
        #[source]
        source: SelectorError,
    },
}

/// An error with its causes, `: `-separated (as `lastError` and Events show it).
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The bytes of `NAME.wasm` (decompressed, for `NAME.wasm.zst`) and `NAME.json`, read once
/// so that what is fingerprinted is exactly what is loaded.
pub struct PluginSource {
    /// The component.
    pub wasm: Vec<u8>,
    /// The plugin file, if there is one.
    pub json: Option<Vec<u8>>,
    /// Of the files as stored (as [`super::dir::scan`] computes it).
    fingerprint: Fingerprint,
}

impl PluginSource {
    /// Reads `path` (decompressing a `NAME.wasm.zst`) and its `NAME.json` (of which no more
    /// than one byte past [`MAX_PLUGIN_FILE_BYTES`]: enough to refuse it). A plain and a
    /// compressed file of one name are refused, naming both.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let file = path.to_path_buf();
        let stored = std::fs::read(path).map_err(|source| LoadError::Read { file: file.clone(), source })?;
        if super::dir::twin(path).exists() {
            return Err(LoadError::Twin { file });
        }
        let side = config_path(path);
        let json = read_optional(&side).map_err(|source| LoadError::Read { file: side, source })?;
        let fingerprint = Fingerprint::of(&stored, json.as_deref());
        let wasm = if is_compressed(path) {
            decompress(&stored, MAX_DECOMPRESSED_BYTES).map_err(|e| match e {
                None => LoadError::Inflated { file, max: MAX_DECOMPRESSED_BYTES },
                Some(source) => LoadError::Decompress { file, source },
            })?
        } else {
            stored
        };
        Ok(Self { wasm, json, fingerprint })
    }

    /// The fingerprint of the files as stored (as [`super::dir::scan`] computes it).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint.clone()
    }
}

/// The zstd stream `compressed`, decompressed; `Err(None)` if it holds more than `max`
/// bytes (no more than `max + 1` are ever produced), `Err(Some(_))` if it is not zstd.
fn decompress(compressed: &[u8], max: usize) -> Result<Vec<u8>, Option<std::io::Error>> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::new(compressed).map_err(Some)?;
    let mut out = Vec::new();
    decoder.take(max as u64 + 1).read_to_end(&mut out).map_err(Some)?;
    if out.len() > max {
        return Err(None);
    }
    Ok(out)
}

/// Loads one `.wasm` file (with its optional `.json`). Blocking: compiles.
pub fn load_file(runtime: &Runtime, path: &Path, allowed: &Allowed) -> Result<LoadedPlugin, LoadError> {
    load(runtime, path, &PluginSource::read(path)?, allowed)
}

/// Loads the plugin whose bytes were read from `path`; its declared permissions are judged
/// against `allowed` (the operator's flags) and its `NAME.json` allow list. Blocking:
/// compiles.
pub fn load(
    runtime: &Runtime,
    path: &Path,
    source: &PluginSource,
    allowed: &Allowed,
) -> Result<LoadedPlugin, LoadError> {
    let file = plugin_file(path, source.json.as_deref())?;
    let config: Option<Arc<str>> = file.config.map(|c| Arc::from(c.to_string()));
    let opts = LoadOptions {
        memory_limit: file.memory_limit_mib.map(|m| m << 20),
        timeout: file.call_timeout_ms.map(Duration::from_millis),
        config: config.clone(),
    };
    let plugin = Plugin::load_with(runtime, &source.wasm, &path.display().to_string(), &opts)?;
    check_identity(path, plugin.name())?;
    let allowed = allowed.with_file(plugin.name(), &file.allow_sensitive);
    crate::rbac::check_declared(plugin.info(), &allowed, &|g| crate::model::guess_plural(&g.kind))
        .map_err(|source| LoadError::Refused { file: path.to_path_buf(), source: Box::new(source) })?;
    let routes =
        plugin.info().subscriptions.iter().map(Route::compile).collect::<Result<Vec<_>, _>>().map_err(|source| {
            LoadError::Selector { file: path.to_path_buf(), plugin: plugin.name().to_owned(), source }
        })?;
    Ok(LoadedPlugin {
        finalizer: crate::route::finalizer_name(plugin.name()),
        routes,
        config,
        source: path.to_path_buf(),
        loaded_at: SystemTime::now(),
        applier: None,
        log_dropped_counted: Default::default(),
        plugin,
    })
}

/// Parses the `NAME.json` of `path` (none: defaults) and checks its size and limit
/// overrides against their bounds.
fn plugin_file(path: &Path, json: Option<&[u8]>) -> Result<PluginFile, LoadError> {
    let Some(json) = json else {
        return Ok(PluginFile::default());
    };
    let file = config_path(path);
    if json.len() > MAX_PLUGIN_FILE_BYTES {
        return Err(LoadError::TooLarge { file, max: MAX_PLUGIN_FILE_BYTES });
    }
    let parsed: PluginFile =
        serde_json::from_slice(json).map_err(|source| LoadError::Config { file: file.clone(), source })?;
    let bounds = [
        ("memoryLimitMib", parsed.memory_limit_mib.map(|m| m as u64), MAX_MEMORY_LIMIT_MIB as u64),
        ("callTimeoutMs", parsed.call_timeout_ms, MAX_CALL_TIMEOUT_MS),
    ];
    for (field, value, max) in bounds {
        if let Some(value) = value.filter(|v| !(1..=max).contains(v)) {
            return Err(LoadError::Limit { file, field, value, max });
        }
    }
    Ok(parsed)
}

/// A plugin's identity is its file: `NAME.wasm` (or `NAME.wasm.zst`) must declare `NAME`.
fn check_identity(path: &Path, declared: &str) -> Result<(), LoadError> {
    if plugin_name(path) == Some(declared) {
        return Ok(());
    }
    Err(LoadError::Identity { file: path.to_path_buf(), declared: declared.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let wasm = d.path().join("p.wasm");
        let e = PluginSource::read(&wasm).err().expect("no file");
        assert!(matches!(&e, LoadError::Read { file, .. } if *file == wasm), "{e:?}");
        assert!(e.to_string().starts_with(&format!("{}: cannot read", wasm.display())), "{e}");

        std::fs::write(&wasm, b"x").expect("write");
        std::fs::write(d.path().join("p.json"), b"{\"unknownField\": 1}").expect("write");
        let source = PluginSource::read(&wasm).expect("read");
        assert_eq!(source.fingerprint(), Fingerprint::of(b"x", Some(b"{\"unknownField\": 1}")));
        let e = plugin_file(&wasm, source.json.as_deref()).expect_err("bad plugin file");
        assert!(matches!(&e, LoadError::Config { file, .. } if *file == d.path().join("p.json")), "{e:?}");
        assert!(e.to_string().ends_with("p.json: invalid plugin file"), "{e}");
        assert!(error_text(&e).contains("p.json: invalid plugin file: unknown field `unknownField`"), "{e:?}");
        let ok = plugin_file(&wasm, Some(b"{\"memoryLimitMib\": 8}")).expect("valid plugin file");
        assert_eq!(ok.memory_limit_mib, Some(8));
        let ok = plugin_file(&wasm, Some(b"{\"allowSensitive\": [\"secrets\"]}")).expect("valid allow list");
        assert_eq!(ok.allow_sensitive, vec!["secrets".parse().expect("parses")]);
        assert!(plugin_file(&wasm, Some(b"{\"allowSensitive\": [\"a/b\"]}")).is_err());
        assert!(plugin_file(&wasm, None).expect("defaults").config.is_none());
    }

    #[test]
    fn plugin_file_size_and_limit_overrides_are_bounded() {
        let wasm = Path::new("/plugins/p.wasm");
        let big = format!("{{\"config\": \"{}\"}}", "x".repeat(MAX_PLUGIN_FILE_BYTES));
        let e = plugin_file(wasm, Some(big.as_bytes())).expect_err("too large");
        assert_eq!(e.to_string(), "/plugins/p.json: the plugin file is larger than 65536 bytes");
        let cases: [(&str, &str); 4] = [
            ("{\"callTimeoutMs\": 3600000}", "callTimeoutMs is 3600000; it must be between 1 and 10000"),
            ("{\"callTimeoutMs\": 0}", "callTimeoutMs is 0; it must be between 1 and 10000"),
            ("{\"memoryLimitMib\": 65536}", "memoryLimitMib is 65536; it must be between 1 and 512"),
            ("{\"memoryLimitMib\": 0}", "memoryLimitMib is 0; it must be between 1 and 512"),
        ];
        for (json, why) in cases {
            let e = plugin_file(wasm, Some(json.as_bytes())).expect_err(json);
            assert_eq!(e.to_string(), format!("/plugins/p.json: {why}"), "{json}");
        }
        let ok =
            plugin_file(wasm, Some(b"{\"callTimeoutMs\": 10000, \"memoryLimitMib\": 512}")).expect("at the bounds");
        assert_eq!((ok.call_timeout_ms, ok.memory_limit_mib), (Some(10_000), Some(512)));
    }

    #[test]
    fn the_file_name_is_the_plugin_identity() {
        assert!(check_identity(Path::new("/plugins/database-status.wasm"), "database-status").is_ok());
        let e = check_identity(Path::new("/plugins/a-squat.wasm"), "database-status").expect_err("squatter");
        assert_eq!(
            e.to_string(),
            "/plugins/a-squat.wasm: the plugin declares the name \"database-status\"; a plugin file must be named after its plugin (database-status.wasm or database-status.wasm.zst)"
        );
        assert!(check_identity(Path::new("/plugins/database-status.wasm.zst"), "database-status").is_ok());
        assert!(check_identity(Path::new("/plugins/a-squat.wasm.zst"), "database-status").is_err());
        assert!(check_identity(Path::new("/plugins/database_status.wasm"), "database-status").is_err());
    }

    #[test]
    fn a_compressed_file_is_read_decompressed_and_fingerprinted_as_stored() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("p.wasm.zst");
        let stored = zstd::encode_all(&b"component"[..], 3).expect("compress");
        std::fs::write(&path, &stored).expect("write");
        std::fs::write(d.path().join("p.json"), b"{}").expect("write");
        let source = PluginSource::read(&path).expect("read");
        assert_eq!(source.wasm, b"component");
        assert_eq!(source.json.as_deref(), Some(&b"{}"[..]), "NAME.json applies to NAME.wasm.zst");
        assert_eq!(source.fingerprint(), Fingerprint::of(&stored, Some(b"{}")));

        std::fs::write(&path, b"not zstd").expect("write");
        let e = PluginSource::read(&path).err().expect("not zstd");
        assert!(matches!(e, LoadError::Decompress { .. }), "{e:?}");
        assert!(e.to_string().ends_with("p.wasm.zst: cannot decompress (zstd)"), "{e}");

        std::fs::write(d.path().join("p.wasm"), b"plain").expect("write");
        for file in ["p.wasm", "p.wasm.zst"] {
            let e = PluginSource::read(&d.path().join(file)).err().expect("twins");
            let both = [d.path().join("p.wasm"), d.path().join("p.wasm.zst")].map(|p| p.display().to_string());
            assert!(both.iter().all(|p| e.to_string().contains(p.as_str())), "{e}");
        }
    }

    #[test]
    fn decompression_stops_at_the_bound() {
        let bomb = zstd::encode_all(&vec![0u8; 1 << 20][..], 19).expect("compress");
        assert!(bomb.len() < 1 << 10, "a megabyte of zeros compresses to {} bytes", bomb.len());
        assert_eq!(decompress(&bomb, 1 << 20).expect("at the bound").len(), 1 << 20);
        assert!(matches!(decompress(&bomb, (1 << 20) - 1), Err(None)), "one byte over");
        let e = LoadError::Inflated { file: "/plugins/p.wasm.zst".into(), max: MAX_DECOMPRESSED_BYTES };
        assert_eq!(e.to_string(), "/plugins/p.wasm.zst: decompresses to more than 268435456 bytes; refused");
    }
}
