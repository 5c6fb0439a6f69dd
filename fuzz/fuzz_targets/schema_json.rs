#![no_main]
//! See `shoal_fuzz::schema_json`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::schema_json::check(data));
