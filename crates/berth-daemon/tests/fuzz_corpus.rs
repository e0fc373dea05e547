//! Replays the DNS packet fuzz corpus on stable (see fuzz/README.md).

#[test]
fn dns_corpus_replays_without_panics() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dns_packet");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        berth_daemon::dns::wire::fuzz_entry(&std::fs::read(e.path()).unwrap());
        n += 1;
    }
    assert!(n > 0);
}
