#![no_main]
//! See `shoal_fuzz::user_json`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::user_json::check(data));
