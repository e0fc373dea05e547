//! Rendering of the whole `inet berth` table as an nft script.
//!
//! The rules below are the same for every installation; only set elements
//! differ. Comments on rules are fixed strings (never user input) so that
//! `berth rules` / `nft list table inet berth` reads as documentation.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::element::Element;

pub const TABLE_FAMILY: &str = "inet";
pub const TABLE: &str = "berth";

/// (name, nft type, flags) of every set and map, in listing order; the
/// address-bearing ones once per family.
const SETS: &[(&str, &str, &str)] = &[
    ("bridges", "ifname", ""),
    ("internal_bridges", "ifname", ""),
    ("icc_off_bridges", "ifname", ""),
    ("masq_bridges", "ifname", ""),
    ("bridge_pairs", "ifname . ifname", ""),
    ("subnets4", "ipv4_addr . ifname", "interval"),
    ("subnets6", "ipv6_addr . ifname", "interval"),
    ("resolver_addrs4", "ipv4_addr", ""),
    ("resolver_addrs6", "ipv6_addr", ""),
    ("resolvers4", "ipv4_addr . ifname", ""),
    ("resolvers6", "ipv6_addr . ifname", ""),
    ("links4", "ipv4_addr . ipv4_addr . inet_proto . inet_service", ""),
    ("links6", "ipv6_addr . ipv6_addr . inet_proto . inet_service", ""),
    ("ports_any4", "inet_proto . inet_service : ipv4_addr . inet_service", ""),
    ("ports_any6", "inet_proto . inet_service : ipv6_addr . inet_service", ""),
    ("ports_addr4", "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service", ""),
    ("ports_addr6", "ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service", ""),
    ("deny4", "ipv4_addr . ipv4_addr . inet_proto . inet_service", "interval"),
    ("deny6", "ipv6_addr . ipv6_addr . inet_proto . inet_service", "interval"),
    ("allow4", "ipv4_addr . ipv4_addr . inet_proto . inet_service", "interval"),
    ("allow6", "ipv6_addr . ipv6_addr . inet_proto . inet_service", "interval"),
    ("guarded4", "ipv4_addr . inet_proto . inet_service", "interval"),
    ("guarded6", "ipv6_addr . inet_proto . inet_service", "interval"),
    ("tunnels", "ifname", ""),
    ("tunnel_out", "ifname . ifname", ""),
    ("vxlan_ports", "inet_service", ""),
    ("vtep_peers4", "ipv4_addr . inet_service", ""),
    ("vtep_peers6", "ipv6_addr . inet_service", ""),
];

/// The fixed chains. Order of rules matters and is explained inline. Each
/// rule that matches addresses is there once per family.
const CHAINS: &str = r#"	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname != "lo" ip daddr 127.0.0.0/8 drop comment "loopback addresses only from the host itself (published 127.0.0.1 ports)"
		iifname != "lo" ip6 daddr ::1 drop comment "and [::1] too"
	}

	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local jump publish comment "published ports, from outside and from containers"
	}

	chain nat_output {
		type nat hook output priority -100; policy accept;
		fib daddr type local jump publish comment "published ports, from the host itself"
	}

	chain publish {
		meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports_addr4 comment "-p HOSTIP:HOSTPORT:PORT"
		meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports_any4 comment "-p HOSTPORT:PORT"
		meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports_addr6 comment "-p [HOSTIP]:HOSTPORT:PORT"
		meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports_any6 comment "-p HOSTPORT:PORT, IPv6"
	}

	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname @bridges ip saddr 127.0.0.0/8 masquerade comment "host loopback to a published port"
		ct status dnat ip saddr . oifname @subnets4 masquerade comment "hairpin: container to a published port on its own network"
		ct status dnat ip6 saddr . oifname @subnets6 masquerade comment "hairpin, IPv6"
		oifname @tunnels accept comment "overlay traffic to other hosts keeps its source address"
		iifname @masq_bridges oifname != @bridges masquerade comment "containers to the outside"
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept comment "replies of allowed connections"
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept comment "IPv6 neighbour discovery between containers (ARP's job in IPv4)"
		oifname @tunnels jump to_tunnel
		oifname @bridges jump to_container
		iifname @bridges jump from_container
		iifname @tunnels drop comment "from other hosts' containers: only to their own network's containers here"
	}

	chain to_tunnel {
		iifname . oifname @tunnel_out accept comment "an overlay's containers to the same overlay on other hosts (the host there filters)"
		drop comment "nothing else goes into an overlay's tunnel"
	}

	chain to_container {
		jump policies
		iifname . oifname @bridge_pairs jump same_network
		ct status dnat accept comment "published ports"
		drop comment "unpublished ports from outside or from other networks"
	}

	chain same_network {
		oifname @icc_off_bridges jump icc_off
		accept
	}

	chain icc_off {
		ct status dnat accept comment "published ports stay reachable via the host address"
		ip saddr . ip daddr . meta l4proto . th dport @links4 accept comment "--link: exposed ports of linked containers"
		ip6 saddr . ip6 daddr . meta l4proto . th dport @links6 accept comment "--link, IPv6"
		drop comment "icc=false"
	}

	chain from_container {
		iifname @internal_bridges drop comment "internal networks have no way out"
		accept
	}

	chain policies {
		ip saddr . ip daddr . meta l4proto . th dport @deny4 drop comment "berth policy deny"
		ip daddr . meta l4proto . th dport @guarded4 ip saddr . ip daddr . meta l4proto . th dport != @allow4 drop comment "berth policy allow"
		ip6 saddr . ip6 daddr . meta l4proto . th dport @deny6 drop comment "berth policy deny, IPv6"
		ip6 daddr . meta l4proto . th dport @guarded6 ip6 saddr . ip6 daddr . meta l4proto . th dport != @allow6 drop comment "berth policy allow, IPv6"
	}

	chain output {
		type filter hook output priority filter; policy accept;
		oifname @bridges ct state new jump policies comment "policies also hold for the host itself"
	}

	chain input {
		type filter hook input priority filter; policy accept;
		meta l4proto { tcp, udp } th dport 53 ip daddr @resolver_addrs4 jump resolver comment "berth's embedded DNS"
		meta l4proto { tcp, udp } th dport 53 ip6 daddr @resolver_addrs6 jump resolver comment "berth's embedded DNS, IPv6"
		udp dport @vxlan_ports ip saddr . udp dport != @vtep_peers4 drop comment "VXLAN only from the cluster's hosts"
		udp dport @vxlan_ports ip6 saddr . udp dport != @vtep_peers6 drop comment "VXLAN only from the cluster's hosts, IPv6"
	}

	chain resolver {
		ip daddr . iifname @resolvers4 ip saddr . iifname @subnets4 accept comment "a container of the resolver's own network"
		ip6 daddr . iifname @resolvers6 ip6 saddr . iifname @subnets6 accept comment "a container of the resolver's own network, IPv6"
		drop comment "resolvers answer only their networks' containers"
	}
"#;

/// The `table inet berth { ... }` block with the given elements.
pub fn render_table(elements: &BTreeSet<Element>) -> String {
    let mut s = format!("table {TABLE_FAMILY} {TABLE} {{\n");
    for (name, ty, flags) in SETS {
        let kind = if ty.contains(" : ") { "map" } else { "set" };
        let _ = writeln!(s, "\t{kind} {name} {{");
        let _ = writeln!(s, "\t\ttype {ty}");
        if !flags.is_empty() {
            let _ = writeln!(s, "\t\tflags {flags}");
        }
        let elems: Vec<String> = elements.iter().filter(|e| e.set() == *name).map(|e| e.text()).collect();
        if !elems.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", elems.join(",\n\t\t\t     "));
        }
        s.push_str("\t}\n\n");
    }
    s.push_str(CHAINS);
    s.push_str("}\n");
    s
}

/// A script that atomically replaces the table (used by reconcile): nft
/// applies a whole `-f` file as one transaction, so packets see either the
/// old table or the new one, never none.
pub fn render_reset_script(elements: &BTreeSet<Element>) -> String {
    format!("table {TABLE_FAMILY} {TABLE}\ndelete table {TABLE_FAMILY} {TABLE}\n{}", render_table(elements))
}
