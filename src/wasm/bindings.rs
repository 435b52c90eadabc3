//! Host-side bindings generated from `wit/kreflex.wit`.

wasmtime::component::bindgen!({
    world: "reactor",
    path: "wit",
    additional_derives: [PartialEq],
    // Exports are called on a fiber, so that guest code can yield at epoch ticks and a
    // call can be dropped at its deadline; the host functions themselves never wait.
    exports: { default: async },
});
