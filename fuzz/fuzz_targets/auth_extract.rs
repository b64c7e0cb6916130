#![no_main]

#[path = "../checks/auth_extract.rs"]
mod auth_extract;

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_extract::check(data));
