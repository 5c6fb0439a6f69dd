#![no_main]
//! See `shoal_fuzz::sync_message`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::sync_message::check(data));
