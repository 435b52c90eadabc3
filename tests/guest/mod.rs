//! Builds the guest plugins in `plugins/rust` (SDK, example, fixtures) for wasm32-wasip2,
//! once per test binary (builds from several test binaries at once wait on cargo's lock of
//! the guest target directory), and hands out their paths.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Directory holding the built `.wasm` components.
pub fn wasm_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("plugins/rust/build.sh");
        let out = Command::new("bash").arg(&script).output().expect("run plugins/rust/build.sh");
        assert!(out.status.success(), "building the guest plugins failed:\n{}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
}

/// Path of a built component: `database_status`, `fixture_chaos`, ...
pub fn wasm(name: &str) -> PathBuf {
    let p = wasm_dir().join(format!("{name}.wasm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// Bytes of a built component.
pub fn wasm_bytes(name: &str) -> Vec<u8> {
    std::fs::read(wasm(name)).expect("read component")
}

/// A runtime for loading the guests directly (no cache, 8 instance slots), changed by `f`.
pub fn runtime_with(f: impl FnOnce(&mut kreflex::wasm::WasmConfig)) -> kreflex::wasm::Runtime {
    let mut c = kreflex::wasm::WasmConfig { cache_dir: None, max_instances: 8, ..Default::default() };
    f(&mut c);
    kreflex::wasm::Runtime::new(c).expect("runtime")
}

/// A built guest loaded into `rt`.
pub fn load(rt: &kreflex::wasm::Runtime, name: &str) -> kreflex::wasm::Plugin {
    kreflex::wasm::Plugin::load(rt, &wasm_bytes(name), name).expect("plugin loads")
}
