#![no_main]
//! See berth_core::fuzzing::api_bodies.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_core::fuzzing::api_bodies(data));
