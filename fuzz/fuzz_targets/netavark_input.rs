#![no_main]
//! See berth_core::fuzzing::netavark_input.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_core::fuzzing::netavark_input(data));
