//! The sandbox's resource limits for one store (one plugin call): what wasmtime asks
//! before a memory or table grows.

use wasmtime::ResourceLimiter;

/// Per-store resource limits; remembers whether a memory grow was refused so that the
/// resulting trap can be reported as "out of memory" rather than a generic crash.
pub(crate) struct Limiter {
    memory_limit: usize,
    /// A memory grow was refused in this store.
    pub(crate) memory_denied: bool,
}

impl Limiter {
    pub(crate) fn new(memory_limit: usize) -> Self {
        Self { memory_limit, memory_denied: false }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
