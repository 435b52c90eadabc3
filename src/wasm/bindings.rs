//! Host-side bindings generated from `wit/kreflex.wit`.

wasmtime::component::bindgen!({
    world: "reactor",
    path: "wit",
    additional_derives: [PartialEq],
});
