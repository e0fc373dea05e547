#![no_main]
//! See berth_core::fuzzing::docker_request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_core::fuzzing::docker_request(data));
