#![no_main]
//! See berth_core::fuzzing::cluster_event.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_core::fuzzing::cluster_event(data));
