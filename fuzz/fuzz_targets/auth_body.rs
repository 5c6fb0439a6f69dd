#![no_main]
//! See `shoal_fuzz::auth_body`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::auth_body::check(data));
