//! What the kernel charges per attach as one network fills up, for three
//! layouts of the network's segment, N namespaces each with a veth pair
//! (the same netlink requests as an attach, from one thread, nothing of
//! berth's daemon around them):
//! - `single`: every host end a port of one bridge (today's layout; the
//!   kernel refuses the 1,024th port);
//! - `tree:K`: leaf bridges of at most K ports, each joined to one root
//!   bridge by a veth pair (one L2 segment);
//! - `none`: no bridge at all (the floor: what the veth pair and the
//!   namespaces alone cost).
//!
//! ```text
//! cargo run --release -p berth-linux --example bridge_tree_cost -- N MODE
//! ```
//!
//! Runs in a private network namespace (root needed). Prints the median
//! total of 20 attaches at every tenth of N, in ms.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth_linux::netlink::{self, RtSocket};
use berth_linux::netns::Netns;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ip(args: &str) {
    let st = Command::new("sh").arg("-c").arg(format!("ip {args}")).status().expect("ip");
    assert!(st.success(), "ip {args}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000).max(40);
    let mode = args.get(1).cloned().unwrap_or_else(|| "tree:256".into());
    let leaf: Option<usize> = mode.strip_prefix("tree:").and_then(|k| k.parse().ok());
    berth_linux::sandbox::enter()?;
    let mut s = RtSocket::open()?;
    let mac = "02:42:ac:11:00:01";
    if mode != "none" {
        netlink::add_bridge(&mut s, "costroot", mac, 1500, "berth")?;
        ip("link set costroot up");
    }
    let mut rows: Vec<f64> = Vec::with_capacity(n);
    let mut br = if mode == "none" { 0 } else { netlink::link_index(&mut s, "costroot")?.ok_or("root missing")?.index };
    for i in 0..n {
        if let Some(k) = leaf {
            if i % k == 0 {
                // A new leaf, joined to the root (not measured).
                let l = i / k;
                ip(&format!("link add costl{l} type bridge && ip link set costl{l} up"));
                ip(&format!("link add costp{l} type veth peer name costr{l} && ip link set costp{l} master costl{l} up && ip link set costr{l} master costroot up"));
                br = netlink::link_index(&mut s, &format!("costl{l}"))?.ok_or("leaf missing")?.index;
            }
        }
        let name = format!("cost{i}");
        Command::new("ip").args(["netns", "add", &name]).status()?;
        let ns = Netns::open(Path::new(&format!("/run/netns/{name}")))?;
        let host = format!("costv{i}");
        let t0 = Instant::now();
        netlink::add_veth_into_netns(&mut s, &host, mac, "eth0", "02:42:0a:00:00:02", Some(ns.fd()), 1500, br)?;
        berth_linux::sysctl::disable_ipv6(&host)?;
        if br != 0 {
            netlink::set_port_up(&mut s, &host)?;
        } else {
            let idx = netlink::link_index(&mut s, &host)?.ok_or("veth missing")?.index;
            netlink::set_link_up(&mut s, idx, None)?;
        }
        let addr: ipnet::IpNet = format!("10.1.{}.{}/16", i / 250, i % 250 + 2).parse()?;
        ns.run(|| -> berth_linux::Result<()> {
            let mut c = RtSocket::open()?;
            if let Some(eth) = netlink::link_index(&mut c, "eth0")? {
                netlink::add_address(&mut c, eth.index, addr)?;
            }
            netlink::set_up_without_ipv6_ll(&mut c, "eth0")
        })??;
        rows.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    println!("mode {mode}, {n} attaches: median of 20 (ms)");
    let starts: Vec<usize> = (0..10).map(|t| t * n / 10).chain([n - 20]).collect();
    for j in starts {
        println!("{:>6} {:>8.3}", j, median(rows[j..j + 20].to_vec()));
    }
    Ok(())
}
