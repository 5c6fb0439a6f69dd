#![no_main]
//! See `shoal_fuzz::changeset`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::changeset::check(data));
