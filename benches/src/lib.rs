//! Benchmarks for the resilience crate and the gateway (filled in by issue 5).
