//! What the kernel alone charges for each port added to one Linux bridge,
//! as the bridge fills up: the same netlink requests berth makes for an
//! attach, from one thread, one after the other, with nothing of berth's
//! daemon around them (no store, no HTTP, no firewall).
//!
//! ```text
//! cargo run --release -p berth-linux --example bridge_port_cost -- [N] [--keep-ipv6]
//! ```
//!
//! Runs in a private network namespace (root needed) and removes what it
//! made. Prints the median of 20 ports at every tenth of N, in ms:
//! - `veth+master`: `ip link add vethN address BRIDGE_MAC master BR type veth peer name eth0 netns NS`
//! - `ipv6 off`: `sysctl -w net.ipv6.conf.vethN.disable_ipv6=1`
//! - `port up`: `ip link set vethN up type bridge_slave hairpin on`
//! - `container side`: address, up, in the container's namespace
//!
//! `--keep-ipv6` skips the second step, to show what IPv6 on bridge ports
//! costs as they multiply (every port's `ff00::/8` route in one table).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth_linux::netlink::{self, RtSocket};
use berth_linux::netns::Netns;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1000).clamp(20, 1000);
    let keep_ipv6 = args.iter().any(|a| a == "--keep-ipv6");
    berth_linux::sandbox::enter()?;
    let mut s = RtSocket::open()?;
    netlink::add_bridge(&mut s, "costbr", "02:42:ac:11:00:01", 1500, "berth")?;
    let br = netlink::link_index(&mut s, "costbr")?.ok_or("bridge missing")?.index;
    let mut rows: Vec<[f64; 4]> = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("cost{i}");
        Command::new("ip").args(["netns", "add", &name]).status()?;
        let ns = Netns::open(Path::new(&format!("/run/netns/{name}")))?;
        let host = format!("costv{i}");
        let t0 = Instant::now();
        netlink::add_veth_into_netns(&mut s, &host, "02:42:ac:11:00:01", "eth0", "02:42:0a:00:00:02", Some(ns.fd()), 1500, br)?;
        let t1 = Instant::now();
        if !keep_ipv6 {
            berth_linux::sysctl::disable_ipv6(&host)?;
        }
        let t2 = Instant::now();
        netlink::set_port_up(&mut s, &host)?;
        let t3 = Instant::now();
        let addr: ipnet::IpNet = format!("10.1.{}.{}/16", i / 250, i % 250 + 2).parse()?;
        ns.run(|| -> berth_linux::Result<()> {
            let mut c = RtSocket::open()?;
            if let Some(eth) = netlink::link_index(&mut c, "eth0")? {
                netlink::add_address(&mut c, eth.index, addr)?;
            }
            netlink::set_up_without_ipv6_ll(&mut c, "eth0")
        })??;
        let t4 = Instant::now();
        rows.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3].map(|d| d.as_secs_f64() * 1e3));
    }
    println!("{:>6} {:>12} {:>9} {:>8} {:>15} {:>8}", "ports", "veth+master", "ipv6 off", "port up", "container side", "total");
    let starts: Vec<usize> = (0..10).map(|t| t * n / 10).chain([n - 20]).collect();
    for j in starts {
        let col = |c: usize| median(rows[j..j + 20].iter().map(|r| r[c]).collect());
        let total = median(rows[j..j + 20].iter().map(|r| r.iter().sum()).collect());
        println!("{:>6} {:>12.3} {:>9.3} {:>8.3} {:>15.3} {:>8.3}", j, col(0), col(1), col(2), col(3), total);
    }
    for i in 0..n {
        let _ = Command::new("ip").args(["netns", "del", &format!("cost{i}")]).status();
    }
    Ok(())
}
