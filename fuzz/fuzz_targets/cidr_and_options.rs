#![no_main]
//! See berth_core::fuzzing::cidr_and_options.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_core::fuzzing::cidr_and_options(data));
