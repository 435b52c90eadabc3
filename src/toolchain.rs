//! Plugin-author tooling that needs no extra install: turning a core WebAssembly module
//! (from clang/wasi-libc, Go, TinyGo, …) into a kreflex component with the WASI reactor
//! adapter that matches this build's wasmtime, and generating C bindings for the contract.
//! Both use the same wasm-tools crates wasmtime is built with, so they cost no compile time
//! beyond kreflex itself and never drift from the host.

use anyhow::{Context, bail};
use std::path::Path;
use wit_bindgen_core::wit_parser::{Resolve, WorldId};

/// The plugin contract this kreflex was built with (`wit/kreflex.wit`).
pub const CONTRACT_WIT: &str = include_str!("../wit/kreflex.wit");

/// The world every plugin implements.
pub const WORLD: &str = "reactor";

/// The contract as a resolved world: from `wit` (a file or directory) or the built-in one.
pub fn contract(wit: Option<&Path>) -> anyhow::Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let pkg = match wit {
        Some(path) => resolve.push_path(path).with_context(|| format!("cannot read WIT from {}", path.display()))?.0,
        None => resolve.push_str("kreflex.wit", CONTRACT_WIT).context("the built-in contract does not parse")?,
    };
    let world = resolve.select_world(&[pkg], Some(WORLD))?;
    Ok((resolve, world))
}

/// Whether a core module already carries component type information (a `component-type*`
/// custom section, as wit-bindgen's generated object file adds).
fn has_component_type(module: &[u8]) -> anyhow::Result<bool> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::CustomSection(s) = payload.context("not a valid WebAssembly module")?
            && s.name().starts_with("component-type")
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Turns a core module (WASI preview 1 reactor) into a component of the kreflex world:
/// embeds the contract's type information unless the module has it already, then adapts
/// `wasi_snapshot_preview1` imports with the reactor adapter of this wasmtime release.
pub fn componentize(module: &[u8], wit: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    if wasmparser::Parser::is_component(module) {
        bail!("this is already a component; `kreflex componentize` takes a core module");
    }
    if !wasmparser::Parser::is_core_wasm(module) {
        bail!("not a WebAssembly module (no \\0asm header)");
    }
    let mut bytes = module.to_vec();
    if !has_component_type(module)? {
        let (resolve, world) = contract(wit)?;
        wit_component::embed_component_metadata(&mut bytes, &resolve, world, wit_component::StringEncoding::UTF8)?;
    }
    wit_component::ComponentEncoder::default()
        .module(&bytes)
        .context("the module does not fit the kreflex world")?
        .validate(true)
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
        .context("cannot build the component (do the module's exports match the kreflex world?)")
}

/// C bindings for the contract (`reactor.h`, `reactor.c`, `reactor_component_type.o`) as
/// `(file name, contents)`.
pub fn c_bindings(wit: Option<&Path>) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let (mut resolve, world) = contract(wit)?;
    let mut files = wit_bindgen_core::Files::default();
    let mut generator = wit_bindgen_c::Opts::default().build();
    generator.generate(&mut resolve, world, &mut files)?;
    Ok(files.iter().map(|(name, bytes)| (name.to_owned(), bytes.to_vec())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_bindings_cover_both_exports_and_every_host_import() {
        let files = c_bindings(None).expect("bindings");
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"reactor.h") && names.contains(&"reactor.c"), "{names:?}");
        assert!(names.contains(&"reactor_component_type.o"), "{names:?}");
        let header = String::from_utf8_lossy(&files.iter().find(|(n, _)| n == "reactor.h").expect("header").1);
        for f in ["exports_reactor_describe", "exports_reactor_on_event", "kreflex_plugin_host_get_config"] {
            assert!(header.contains(f), "{f} missing from reactor.h");
        }
    }

    #[test]
    fn componentize_refuses_what_is_not_a_core_module() {
        assert!(componentize(b"not wasm", None).unwrap_err().to_string().contains("not a WebAssembly module"));
        let component = wat_component();
        assert!(componentize(&component, None).unwrap_err().to_string().contains("already a component"));
        // A core module that exports nothing of the world.
        let empty = [0, b'a', b's', b'm', 1, 0, 0, 0];
        assert!(componentize(&empty, None).is_err());
    }

    fn wat_component() -> Vec<u8> {
        // The smallest component: header only.
        vec![0, b'a', b's', b'm', 0x0d, 0, 1, 0]
    }
}
