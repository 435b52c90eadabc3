//! The sandbox's resource limits for one store (one plugin call): what wasmtime asks
//! before a memory or table is created or grows.
//!
//! The memory limit bounds the instance as a whole: the linear memories and tables of all
//! the core instances of the component together, not each of them. A component may hold
//! many core instances (a Python plugin has 14), and a limit per memory would let it have
//! that many times the limit.

use wasmtime::ResourceLimiter;

/// Core instances one plugin may have. Measured: Rust and C components have 3, JS
/// (componentize-js) 4, Go (TinyGo) 5, Python (componentize-py, one core instance per
/// linked library) 14; twice the largest leaves room for a plugin with a few native
/// Python extensions. Each costs only its `VMContext` and is bounded here, in the
/// instance pool and per store.
pub(crate) const MAX_CORE_INSTANCES: u32 = 32;

/// Linear memories one plugin may have: every toolchain above makes one; a second one
/// is allowed, their total is what the memory limit bounds.
pub(crate) const MAX_MEMORIES: u32 = 2;

/// Tables one plugin may have: every toolchain above makes two (the program's indirect
/// function table and the component shim's); two more are allowed, and their elements are
/// charged against the memory limit with the memories'.
pub(crate) const MAX_TABLES: u32 = 4;

/// What one table element is charged against the memory limit: a function reference is a
/// pointer in wasmtime's tables.
pub(crate) const TABLE_ELEMENT_BYTES: usize = 8;

/// Per-store resource limits; remembers whether a grow was refused so that the resulting
/// trap can be reported as "out of memory" rather than a generic crash.
pub(crate) struct Limiter {
    memory_limit: usize,
    /// Bytes of all memories and tables of the store, as granted so far.
    used: usize,
    /// The last grant, taken back if wasmtime then fails the grow itself.
    pending: usize,
    /// A memory or table grow was refused in this store.
    pub(crate) memory_denied: bool,
}

impl Limiter {
    pub(crate) fn new(memory_limit: usize) -> Self {
        Self { memory_limit, used: 0, pending: 0, memory_denied: false }
    }

    /// Grants a grow from `current` to `desired` bytes if the store's total stays within
    /// the limit.
    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let more = desired.saturating_sub(current);
        match self.used.checked_add(more) {
            Some(total) if total <= self.memory_limit => {
                self.used = total;
                self.pending = more;
                true
            }
            _ => {
                self.memory_denied = true;
                self.pending = 0;
                false
            }
        }
    }

    fn grow_failed(&mut self) {
        self.used -= self.pending;
        self.pending = 0;
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let bytes = |elements: usize| elements.saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(self.grow(bytes(current), bytes(desired)))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    // The same counts as the instance pool's per-component limits, so that they hold also
    // when the pool is off: one store is one plugin instance.
    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn memories_and_tables_of_a_store_share_one_limit() {
        let mut l = Limiter::new(64 * MIB);
        // Two memories created at 40 and 20 MiB: 60 MiB in all, under the limit.
        assert!(l.memory_growing(0, 40 * MIB, None).expect("ok"));
        assert!(l.memory_growing(0, 20 * MIB, None).expect("ok"));
        // A third memory of 8 MiB is under the limit alone, not with the others.
        assert!(!l.memory_growing(0, 8 * MIB, None).expect("ok"));
        assert!(l.memory_denied);
        // Growing the first by 2 MiB still fits; a table of 1 Mi elements (8 MiB) does not.
        assert!(l.memory_growing(40 * MIB, 42 * MIB, None).expect("ok"));
        assert!(!l.table_growing(0, MIB, None).expect("ok"));
        assert!(l.table_growing(0, 1000, None).expect("ok"));
    }

    #[test]
    fn a_grow_wasmtime_then_fails_is_not_charged() {
        let mut l = Limiter::new(64 * MIB);
        assert!(l.memory_growing(0, 60 * MIB, None).expect("ok"));
        l.memory_grow_failed(wasmtime::Error::msg("no room in the pool")).expect("ok");
        assert!(l.memory_growing(0, 60 * MIB, None).expect("ok"), "the failed grow was given back");
        assert!(!l.memory_denied);
    }
}
