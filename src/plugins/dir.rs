//! The plugin directory as files: which `NAME.wasm` (or zstd-compressed `NAME.wasm.zst`)
//! files it holds and a fingerprint of each one's content (SHA-256 of the file as stored
//! plus `NAME.json`), so that a file is identified by what it contains, however it arrived
//! (written in place, renamed into place, or a ConfigMap volume's `..data` symlink swapped
//! to a new directory). A plain and a compressed file of one name are both unreadable
//! until one goes: which one was meant is not a guess to make.
//!
//! In: a directory path. Out: a map from plugin file path to [`FileScan`]. Only file-system
//! reads, no engine types; the first stage of hot reload (directory → installer).

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// SHA-256 (hex) of a plugin file and its `NAME.json`: equal fingerprints, same plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `wasm` with its optional `json` configuration.
    pub fn of(wasm: &[u8], json: Option<&[u8]>) -> Self {
        let mut h = Sha256::new();
        h.update(wasm);
        if let Some(json) = json {
            h.update(b"\0config\0");
            h.update(json);
        }
        Self(hex::encode(h.finalize()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one read of a present plugin file found. A present file is never reported absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileScan {
    /// Read whole, and it did not change while it was read.
    Stable(Fingerprint),
    /// It changed while it was read: a writer is at it.
    Changing,
    /// It is there but cannot be read (the message says why).
    Unreadable(String),
}

/// The directory itself cannot be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the plugin directory {}", dir.display())]
pub struct ScanError {
    /// The directory.
    pub dir: PathBuf,
    /// What the file system said.
    #[source]
    pub source: io::Error,
}

/// The suffix of a plugin component file.
pub const PLAIN: &str = ".wasm";
/// The suffix of a zstd-compressed plugin component file.
pub const COMPRESSED: &str = ".wasm.zst";

/// The plugin name a file stands for: `NAME` of `NAME.wasm` or `NAME.wasm.zst`; `None` for
/// any other file and for hidden ones (a name starting with `.`, such as a file being
/// staged).
pub fn plugin_name(path: &Path) -> Option<&str> {
    let file = path.file_name()?.to_str()?;
    let name = file.strip_suffix(COMPRESSED).or_else(|| file.strip_suffix(PLAIN))?;
    (!name.is_empty() && !name.starts_with('.')).then_some(name)
}

/// Whether `path` is a compressed plugin file (`NAME.wasm.zst`).
pub fn is_compressed(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.ends_with(COMPRESSED))
}

/// The `NAME.json` of a plugin file.
pub fn config_path(path: &Path) -> PathBuf {
    let name = plugin_name(path).unwrap_or_default();
    path.with_file_name(format!("{name}.json"))
}

/// The other form of a plugin file: `NAME.wasm.zst` for `NAME.wasm`, and back.
pub fn twin(path: &Path) -> PathBuf {
    let name = plugin_name(path).unwrap_or_default();
    path.with_file_name(format!("{name}{}", if is_compressed(path) { PLAIN } else { COMPRESSED }))
}

/// Why a plugin file has a twin of the other form: both are named in it.
pub fn twin_message(path: &Path) -> String {
    format!(
        "{} and {} are both in the plugin directory: one plugin, two files; remove one",
        path.display(),
        twin(path).display()
    )
}

/// Every `NAME.wasm` and `NAME.wasm.zst` of `dir` (following symlinks; names starting with
/// `.` are skipped) with what a read of it found. A file that vanishes between listing and
/// reading is absent; a plain and a compressed file of one name are both
/// [`FileScan::Unreadable`], with a message naming both.
pub fn scan(dir: &Path) -> Result<BTreeMap<PathBuf, FileScan>, ScanError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ScanError { dir: dir.to_path_buf(), source })?;
    let mut out = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if plugin_name(&path).is_none() {
            continue;
        }
        if twin(&path).exists() {
            out.insert(path.clone(), FileScan::Unreadable(twin_message(&path)));
            continue;
        }
        match read_file(&path) {
            Ok(found) => {
                out.insert(path, found);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                out.insert(path, FileScan::Unreadable(e.to_string()));
            }
        }
    }
    Ok(out)
}

/// Size and modification time: if either moved while the file was read, the bytes read may
/// be a mix of two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Self> {
        let m = std::fs::metadata(path)?;
        Ok(Self { len: m.len(), modified: m.modified().ok() })
    }
}

/// Whether `read` bytes taken between stamps `before` and `after` are one consistent version.
fn unchanged(before: Stamp, after: Stamp, read: usize) -> bool {
    before == after && after.len == read as u64
}

fn read_file(path: &Path) -> io::Result<FileScan> {
    let before = Stamp::of(path)?;
    let wasm = std::fs::read(path)?;
    let json = read_optional(&config_path(path))?;
    let after = Stamp::of(path)?;
    Ok(if unchanged(before, after, wasm.len()) {
        FileScan::Stable(Fingerprint::of(&wasm, json.as_deref()))
    } else {
        FileScan::Changing
    })
}

/// The largest `NAME.json` accepted (64 KiB): it is configuration, not data.
pub const MAX_PLUGIN_FILE_BYTES: usize = 64 << 10;

/// The `NAME.json` at `path`, `None` if there is none. No more than one byte past
/// [`MAX_PLUGIN_FILE_BYTES`] is read: enough to refuse it, and a hostile one is never read
/// whole.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, MAX_PLUGIN_FILE_BYTES as u64 + 1), &mut bytes)?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).expect("write");
    }

    fn stable(scan: &BTreeMap<PathBuf, FileScan>, path: &Path) -> Fingerprint {
        match scan.get(path) {
            Some(FileScan::Stable(f)) => f.clone(),
            other => panic!("{} not stable: {other:?}", path.display()),
        }
    }

    #[test]
    fn lists_wasm_files_and_skips_hidden_and_other_files() {
        let d = tempfile::tempdir().expect("tempdir");
        write(d.path(), "a.wasm", b"a");
        write(d.path(), "a.json", b"{}");
        write(d.path(), ".a.wasm.tmp", b"partial");
        write(d.path(), ".hidden.wasm", b"h");
        write(d.path(), "notes.txt", b"n");
        let found = scan(d.path()).expect("scan");
        assert_eq!(found.keys().cloned().collect::<Vec<_>>(), [d.path().join("a.wasm")]);
    }

    #[test]
    fn compressed_files_are_plugin_files_and_a_plain_twin_makes_both_unreadable() {
        let d = tempfile::tempdir().expect("tempdir");
        write(d.path(), "a.wasm.zst", b"compressed");
        write(d.path(), "a.json", b"{}");
        write(d.path(), ".b.wasm.zst", b"hidden");
        write(d.path(), "c.zst", b"not a plugin");
        let a = d.path().join("a.wasm.zst");
        let found = scan(d.path()).expect("scan");
        assert_eq!(found.keys().cloned().collect::<Vec<_>>(), std::slice::from_ref(&a));
        assert_eq!(stable(&found, &a), Fingerprint::of(b"compressed", Some(b"{}")), "the file as stored");
        write(d.path(), "a.wasm", b"plain");
        let found = scan(d.path()).expect("scan");
        assert_eq!(found.len(), 2);
        for (path, other) in [(&a, d.path().join("a.wasm")), (&d.path().join("a.wasm"), a.clone())] {
            match &found[path] {
                FileScan::Unreadable(why) => {
                    assert!(
                        why.contains(&path.display().to_string()) && why.contains(&other.display().to_string()),
                        "{why}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn names_of_plugin_files() {
        let cases = [
            ("/p/db.wasm", Some("db"), false, "/p/db.json", "/p/db.wasm.zst"),
            ("/p/db.wasm.zst", Some("db"), true, "/p/db.json", "/p/db.wasm"),
            ("/p/db.zst", None, false, "", ""),
            ("/p/.db.wasm", None, false, "", ""),
            ("/p/.wasm", None, false, "", ""),
        ];
        for (path, name, compressed, json, other) in cases {
            let path = Path::new(path);
            assert_eq!(plugin_name(path), name, "{path:?}");
            assert_eq!(is_compressed(path), compressed, "{path:?}");
            if name.is_some() {
                assert_eq!(config_path(path), Path::new(json), "{path:?}");
                assert_eq!(twin(path), Path::new(other), "{path:?}");
            }
        }
    }

    #[test]
    fn fingerprint_covers_the_component_and_its_configuration() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = d.path().join("a.wasm");
        write(d.path(), "a.wasm", b"component");
        let bare = stable(&scan(d.path()).expect("scan"), &a);
        assert_eq!(bare, Fingerprint::of(b"component", None));
        write(d.path(), "a.json", b"{\"config\":1}");
        let configured = stable(&scan(d.path()).expect("scan"), &a);
        assert_ne!(configured, bare);
        write(d.path(), "a.json", b"{\"config\":2}");
        assert_ne!(stable(&scan(d.path()).expect("scan"), &a), configured);
        write(d.path(), "a.json", b"{\"config\":1}");
        assert_eq!(stable(&scan(d.path()).expect("scan"), &a), configured, "same content, same fingerprint");
    }

    #[test]
    fn follows_symlinks_like_a_configmap_volume() {
        let d = tempfile::tempdir().expect("tempdir");
        let v1 = d.path().join("..2026_v1");
        std::fs::create_dir(&v1).expect("dir");
        write(&v1, "cm.wasm", b"v1");
        std::os::unix::fs::symlink("..2026_v1", d.path().join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/cm.wasm", d.path().join("cm.wasm")).expect("link");
        let found = scan(d.path()).expect("scan");
        assert_eq!(stable(&found, &d.path().join("cm.wasm")), Fingerprint::of(b"v1", None));
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn a_dangling_link_is_absent_and_a_missing_directory_is_an_error() {
        let d = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("nowhere.wasm", d.path().join("gone.wasm")).expect("link");
        assert!(scan(d.path()).expect("scan").is_empty());
        let e = scan(&d.path().join("missing")).expect_err("no directory");
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn a_read_overlapping_a_write_is_not_one_version() {
        let t = SystemTime::UNIX_EPOCH;
        let s = |len, secs| Stamp { len, modified: Some(t + std::time::Duration::from_secs(secs)) };
        assert!(unchanged(s(10, 1), s(10, 1), 10));
        assert!(!unchanged(s(10, 1), s(20, 2), 20), "grew while read");
        assert!(!unchanged(s(10, 1), s(10, 2), 10), "rewritten to the same size while read");
        assert!(!unchanged(s(10, 1), s(10, 1), 4), "shorter read than the file");
    }
}
