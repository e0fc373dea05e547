#![no_main]
//! See berth_daemon::dns::wire::fuzz_entry.
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_daemon::dns::wire::fuzz_entry(data));
