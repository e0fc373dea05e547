#![no_main]
//! See berth_core::fuzzing::cni_config.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_core::fuzzing::cni_config(data));
