//! Shoal's benchmarks are this package's benches; the library is empty. Run them from the
//! repository root:
//!
//! - `cargo bench --bench shoal_bench`: Shoal against SQLite and raw redb (`SHOAL_BENCH_N`);
//! - `cargo bench --bench sync_bench`: sync end to end against automerge (`SYNC_BENCH_OBJECTS`).
//!
//! `--profile profiling` builds them with symbols for `perf`.
