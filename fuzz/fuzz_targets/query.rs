#![no_main]
//! See `shoal_fuzz::query`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::query::check(data));
