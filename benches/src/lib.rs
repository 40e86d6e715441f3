//! Benchmarks live in `benches/bench_main.rs` and `benches/benchmarks/`.
