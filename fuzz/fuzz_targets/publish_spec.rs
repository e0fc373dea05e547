#![no_main]
//! See berth_core::fuzzing::publish_spec.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_core::fuzzing::publish_spec(data));
