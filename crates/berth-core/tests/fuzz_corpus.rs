//! Replays every fuzz corpus input (seeds, inputs the fuzzers kept, and
//! crashes once found) through the fuzz entry points on stable, so they
//! stay regression tests.

use std::path::PathBuf;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        f(&std::fs::read(e.path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
    n
}

#[test]
fn corpora_replay_without_panics() {
    use berth_core::fuzzing::*;
    let n = replay("publish_spec", publish_spec)
        + replay("cidr_and_options", cidr_and_options)
        + replay("daemon_config", daemon_config)
        + replay("api_bodies", api_bodies)
        + replay("netavark_input", netavark_input)
        + replay("cluster_event", cluster_event)
        + replay("docker_request", docker_request);
    eprintln!("{n} corpus inputs replayed");
}
