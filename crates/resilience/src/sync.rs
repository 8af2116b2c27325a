//! The synchronisation primitives the breaker's state is built on: std's, or loom's when the
//! crate is built with `--cfg resilience_loom` to model-check every interleaving of its
//! admission, probe permits and generations (`circuit_breaker/loom_tests.rs`).

#[cfg(resilience_loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(resilience_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(resilience_loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(resilience_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
