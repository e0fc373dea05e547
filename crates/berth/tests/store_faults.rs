//! The store on a full disk: a request that cannot be recorded fails with
//! a message that names the place, and changes nothing; reads keep
//! working; once space is freed the daemon writes its state back by itself
//! and takes requests again, without a restart, and a restart finds
//! everything.

mod common;

use common::*;

#[test]
fn full_disk_fails_cleanly_and_heals_by_itself() {
    let Some(mut s) = Sandbox::bare() else { return };
    let root = s.dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    // A small filesystem of the daemon's own (in this test's mount namespace).
    sh(&format!("mount -t tmpfs -o size=2m tmpfs {}", root.display()));
    s.start_daemon();
    s.ok(&["network", "create", "--subnet", "10.61.0.0/16", "big"]);
    for i in 0..3 {
        s.ok(&["attach", "--netns", &netns(&format!("ok{i}")), "--name", &format!("ok{i}"), "--network", "big"]);
    }
    // Fill it up, then attach until the store runs out of room (its file
    // has some free pages left at first).
    sh(&format!("dd if=/dev/zero of={}/filler bs=4k 2>/dev/null || true", root.display()));
    let mut attached = 3;
    let (err, before) = loop {
        let name = format!("c{attached}");
        let ns = netns(&name);
        let before = (s.ok(&["ps", "-a", "-q"]), s.kernel_view());
        let o = s.berth(&["attach", "--netns", &ns, "--name", &name, "--network", "big", "-p", &format!("{}:80", 8000 + attached)]);
        if !o.status.success() {
            break (String::from_utf8_lossy(&o.stderr).into_owned(), before);
        }
        attached += 1;
        assert!(attached < 1000, "the store never filled up");
    };
    assert!(err.contains(&format!("disk full at {}", root.display())), "after {attached} attaches: {err}");
    assert_eq!((s.ok(&["ps", "-a", "-q"]), s.kernel_view()), before, "a refused attach changes nothing");
    // Reads are answered; other writes say the same.
    assert!(s.ok(&["network", "ls"]).contains("big"));
    assert!(s.ok(&["inspect", "ok1"]).contains("10.61."));
    // Later writes either fit (the store reopens itself and writes its
    // state back whenever it can) or fail the same way, changing nothing.
    let mut nets = vec!["big".to_string()];
    for i in 0..20 {
        let name = format!("later{i}");
        let view = s.kernel_view();
        let o = s.berth(&["network", "create", &name]);
        if o.status.success() {
            nets.push(name);
        } else {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("disk full at"), "{err}");
            assert_eq!(s.kernel_view(), view, "a refused network create changes nothing");
        }
    }
    // Space comes back: the daemon writes its state back without being asked.
    std::fs::remove_file(root.join("filler")).unwrap();
    s.eventually("the store is writable", || s.berth(&["network", "create", "probe"]).status.success());
    nets.push("probe".into());
    let last = format!("c{attached}");
    s.ok(&["attach", "--netns", &format!("/run/netns/{last}"), "--name", &last, "--network", "big", "-p", "8000:80"]);
    s.ok(&["network", "create", "after"]);
    nets.push("after".into());
    // All of it is on disk: a restart finds every container and network.
    s.stop_daemon(false);
    s.start_daemon();
    let ps = s.ok(&["ps", "-a"]);
    for i in 0..=attached {
        let name = if i < 3 { format!("ok{i}") } else { format!("c{i}") };
        assert!(ps.contains(&name), "{name} missing after restart:\n{ps}");
    }
    let ls = s.ok(&["network", "ls"]);
    for n in &nets {
        assert!(ls.contains(n.as_str()), "network {n} missing after restart:\n{ls}");
    }
    assert!(s.ok(&["reconcile"]).contains("nothing to change"));
}
