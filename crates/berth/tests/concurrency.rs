//! The concurrency suite: 100 concurrent run/attach calls with published
//! ports and links, mixed with removals. Every call succeeds or fails with a
//! clear error; no address and no host port is given twice; and the end
//! state equals a sequential replay of the calls that succeeded.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;

use common::*;

/// Normalized end state: name → (networks, published host ports, links).
fn state(s: &Sandbox) -> BTreeMap<String, (Vec<String>, Vec<String>, Vec<String>)> {
    let ids = String::from_utf8_lossy(&s.berth(&["ps", "-q"]).stdout).into_owned();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return BTreeMap::new();
    }
    let mut args = vec!["inspect"];
    args.extend(ids.iter());
    let list: Vec<serde_json::Value> = serde_json::from_str(&s.ok(&args)).unwrap();
    let mut addrs = HashSet::new();
    let mut ports = HashSet::new();
    let mut out = BTreeMap::new();
    for c in list {
        let name = c["Name"].as_str().unwrap().trim_start_matches('/').to_string();
        let mut nets = vec![];
        for (n, ep) in c["NetworkSettings"]["Networks"].as_object().unwrap() {
            let ip = ep["IPAddress"].as_str().unwrap().to_string();
            assert!(addrs.insert((n.clone(), ip.clone())), "address {ip} on {n} given twice");
            nets.push(n.clone());
        }
        let mut hp = vec![];
        for b in c["NetworkSettings"]["Ports"].as_object().unwrap().values() {
            for x in b.as_array().into_iter().flatten() {
                let p = x["HostPort"].as_str().unwrap().to_string();
                assert!(ports.insert(p.clone()), "host port {p} given twice");
                hp.push(p);
            }
        }
        let links = c["HostConfig"]["Links"].as_array().map(|v| v.iter().map(|l| l.as_str().unwrap().to_string()).collect()).unwrap_or_default();
        out.insert(name, (nets, hp, links));
    }
    out
}

fn ops() -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = Vec::new();
    let s = |x: &[&str]| x.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    for i in 0..40 {
        // r0..r9 and a0..a9 race for the same host port: exactly one of each pair wins.
        let port = if i < 10 { 31000 + i } else { 30000 + i };
        let net = if i % 2 == 0 { "conc" } else { "berth0" };
        let mut o = s(&["run", "-d", "--name", &format!("r{i}"), "--network", net, "-p", &format!("{port}:80")]);
        if i % 3 == 0 {
            o.extend(s(&["--link", if net == "conc" { "base0" } else { "base1" }]));
        }
        o.extend(s(&["--", "sleep", "1000"]));
        v.push(o);
        let aport = if i < 10 { 31000 + i } else { 32000 + i };
        v.push(s(&["attach", "--netns", &format!("/run/netns/ns{i}"), "--name", &format!("a{i}"), "--network", net, "-p", &format!("{aport}:80")]));
    }
    // Removals of containers without contested ports; some run before their target exists.
    for i in 20..30 {
        v.push(s(&["rm", "-f", &format!("r{i}")]));
        v.push(s(&["rm", "-f", &format!("a{i}")]));
    }
    v
}

#[test]
fn hundred_concurrent_calls() {
    let Some(s) = Sandbox::new() else { return };
    s.ok(&["network", "create", "--subnet", "10.70.0.0/24", "conc"]);
    s.run("base0", &["--network", "conc", "--expose", "80"], "sleep 1000");
    s.run("base1", &["--expose", "80"], "sleep 1000");
    for i in 0..40 {
        netns(&format!("ns{i}"));
    }
    let ops = ops();
    assert_eq!(ops.len(), 100);
    let kids: Vec<_> = ops
        .iter()
        .map(|o| {
            let args: Vec<&str> = o.iter().map(String::as_str).collect();
            s.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let mut results: Vec<(usize, bool, String, std::time::Instant)> = Vec::new();
    for (i, k) in kids.into_iter().enumerate() {
        let o = k.wait_with_output().unwrap();
        results.push((i, o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned(), std::time::Instant::now()));
    }
    let (mut ok_n, mut refused) = (0, 0);
    for (i, ok, err, _) in &results {
        if *ok {
            ok_n += 1;
            continue;
        }
        refused += 1;
        let known = ["port is already allocated", "no such container", "is already in use", "address already in use"];
        assert!(
            err.starts_with("Error response from daemon: ") && known.iter().any(|k| err.contains(k)),
            "call {:?} failed without a clear error: {err}\n--- daemon log ---\n{}",
            ops[*i],
            s.daemon_log()
        );
    }
    // Each contested port went to exactly one of its two claimants.
    for i in 0..10 {
        let r = results[2 * i].1;
        let a = results[2 * i + 1].1;
        assert!(r ^ a, "r{i}/a{i} on port {}: run {r}, attach {a}", 31000 + i);
    }
    let end = state(&s);
    // Sequential replay on a fresh daemon: the successful creations, then the successful removals.
    let replay = Sandbox::new().unwrap();
    replay.ok(&["network", "create", "--subnet", "10.70.0.0/24", "conc"]);
    replay.run("base0", &["--network", "conc", "--expose", "80"], "sleep 1000");
    replay.run("base1", &["--expose", "80"], "sleep 1000");
    for i in 0..40 {
        netns(&format!("ns{i}"));
    }
    let (creates, rms): (Vec<_>, Vec<_>) = results.iter().filter(|r| r.1).partition(|r| ops[r.0][0] != "rm");
    for (i, ..) in creates.iter().chain(rms.iter()) {
        let args: Vec<&str> = ops[*i].iter().map(String::as_str).collect();
        replay.ok(&args);
    }
    let replayed = state(&replay);
    assert_eq!(end, replayed, "end state differs from a sequential replay of the successful calls");
    drop(replay);
    eprintln!("concurrency suite: 100 concurrent calls, {ok_n} succeeded, {refused} refused with clear errors; {} containers at the end, equal to the sequential replay", end.len());
}
