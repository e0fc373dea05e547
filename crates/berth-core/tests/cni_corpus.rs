//! Replays the `cni_config` fuzz corpus (seeds from captured runtime
//! requests, inputs the fuzzer kept) through `fuzzing::cni_config` on
//! stable, so every input it ever found stays a regression test.

#[test]
fn cni_config_corpus_replays_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cni_config");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        berth_core::fuzzing::cni_config(&std::fs::read(e.path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}
