//! The cgroup socket programs behind socket translation, and the byte
//! layout of the maps they share with berth.
//!
//! `connect4` runs in `connect()` of every IPv4 socket of the host's cgroup
//! tree. For a TCP socket in berth's network namespace that is not bound to
//! an address yet and connects to a published port, it rewrites the
//! destination to the container's address and port — the same translation
//! the `publish` chain's DNAT makes, once per connection instead of once per
//! packet (a locally DNAT'ed packet is re-routed each time, see
//! `ip_route_me_harder`). Everything else is left to the nft rules.
//!
//! `connect6` does the same for IPv6 sockets, with the IPv6 maps: a mapping
//! on the very address, else one on every address if the destination is
//! `::1` or in `local6`. Two more cases:
//! - A v4-mapped destination (`::ffff:a.b.c.d`) is an IPv4 connection: it
//!   follows connect4's rules on a.b.c.d with the IPv4 maps, and the new
//!   destination is v4-mapped too (connect4 never sees these sockets).
//! - No IPv6 mapping for a host-local destination (`::1` or `local6`), but
//!   an IPv4 one on every address (an IPv4-only network): the destination
//!   becomes `::ffff:` + the container's IPv4 address and port, and
//!   `tcp_v6_connect` carries on over IPv4 — what docker-proxy gives
//!   Docker's users on `[::1]:PORT`. The nft rules have no equivalent. An
//!   `IPV6_V6ONLY` socket cannot do that (`connect()` fails with
//!   ENETUNREACH; the option is not readable from these programs), and UDP,
//!   never translated, is not served on `[::1]` for such a network at all.
//!
//! `getpeername4` / `getpeername6` give such a socket back the address it
//! asked for, as DNAT would, so a client still sees `127.0.0.1:8080` or
//! `[::1]:8080` as its peer.
//!
//! Maps (all keys and values in network byte order where they hold
//! addresses or ports):
//! - `ports`: key `[ip4; 4] [port; 2] [proto] [0]` (ip4 0.0.0.0 for a
//!   mapping on every address) → value `[ip4; 4] [port; 2] [0; 2]`.
//! - `ports6`: key `[ip6; 16] [port; 2] [proto] [0]` (`::` for every
//!   address) → value `[ip6; 16] [port; 2] [0; 2]`.
//! - `local` / `local6`: the namespace's IPv4 / IPv6 addresses → 1, kept
//!   current by the daemon. A mapping on every address applies to these and
//!   to 127.0.0.0/8 / `::1`, as `fib daddr type local` in the nft rules does.
//! - `origin`: socket cookie → `[asked ip4; 4] [asked port; 2] [0; 2]
//!   [translated ip4; 4] [translated port; 2] [0; 2]`; an LRU map, so
//!   closed sockets age out.
//! - `origin6`: the same for IPv6 sockets, with `[ip6; 16]` addresses (40
//!   bytes; a v4-mapped translation is stored v4-mapped). Kept apart from
//!   `origin`: a socket's family never changes (an IPv6 socket connected
//!   over IPv4 is still seen by the `*6` hooks only), so each getpeername
//!   program looks in its own map, and IPv4 entries stay 16 bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::asm::*;

pub const PORTS_KEY: u32 = 8;
pub const PORTS_VALUE: u32 = 8;
pub const ORIGIN_VALUE: u32 = 16;
pub const PORTS6_KEY: u32 = 20;
pub const PORTS6_VALUE: u32 = 20;
pub const ORIGIN6_VALUE: u32 = 40;

pub const IPPROTO_TCP: u8 = 6;

/// The `ports` map key of a mapping (`ip` 0.0.0.0: every address).
pub fn ports_key(ip: Ipv4Addr, port: u16, proto: u8) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&ip.octets());
    k[4..6].copy_from_slice(&port.to_be_bytes());
    k[6] = proto;
    k
}

/// The `ports` map value: where connections go.
pub fn ports_value(ip: Ipv4Addr, port: u16) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&ip.octets());
    v[4..6].copy_from_slice(&port.to_be_bytes());
    v
}

/// The `ports6` map key of a mapping (`ip` `::`: every address).
pub fn ports6_key(ip: Ipv6Addr, port: u16, proto: u8) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(&ip.octets());
    k[16..18].copy_from_slice(&port.to_be_bytes());
    k[18] = proto;
    k
}

/// The `ports6` map value: where connections go.
pub fn ports6_value(ip: Ipv6Addr, port: u16) -> [u8; 20] {
    let mut v = [0u8; 20];
    v[..16].copy_from_slice(&ip.octets());
    v[16..18].copy_from_slice(&port.to_be_bytes());
    v
}

/// File descriptors of the maps, as the programs refer to them.
#[derive(Clone, Copy)]
pub struct Maps {
    pub ports: i32,
    pub local: i32,
    pub origin: i32,
    pub ports6: i32,
    pub local6: i32,
    pub origin6: i32,
}

// Offsets in `struct bpf_sock_addr` and `struct bpf_sock`
// (include/uapi/linux/bpf.h).
const USER_IP4: i16 = 4;
const USER_IP6: i16 = 8; // __u32 user_ip6[4], 8..24
const USER_PORT: i16 = 24;
const PROTOCOL: i16 = 36;
const SK: i16 = 64;
const SK_SRC_IP4: i16 = 24;
const SK_SRC_IP6: i16 = 28; // __u32 src_ip6[4], 28..44

/// A 32-bit word of an address as a 4-byte load sees it (on either byte
/// order), zero-extended: compared through a register, since a jump's
/// immediate is sign-extended.
fn word(bytes: [u8; 4]) -> u64 {
    u32::from_ne_bytes(bytes) as u64
}

/// The third word of a v4-mapped address, `::ffff:0:0/96`.
const MAPPED: [u8; 4] = [0, 0, 0xff, 0xff];

/// Leaves the program at `allow` unless the socket is in the namespace
/// whose cookie is `netns`: the programs are attached host-wide, but each
/// berth daemon only translates for its own namespace.
fn only_in_netns(a: &mut Asm, netns: u64) {
    a.mov(R6, R1).call(GET_NETNS_COOKIE).ld_imm64(R1, netns).jump_reg(Cond::Ne, R0, R1, "allow");
}

fn allow(a: &mut Asm) -> Vec<Insn> {
    a.label("allow").mov_imm(R0, 1).exit().finish()
}

/// `connect4`. Registers: r6 context, r7 asked address, r8 asked port,
/// r9 the matching `ports` value. Stack: -8 ports key, -16 local key,
/// -48..-32 origin value, -56 socket cookie.
pub fn connect4(netns: u64, m: Maps) -> Vec<Insn> {
    let mut a = Asm::default();
    only_in_netns(&mut a, netns);
    a.load(Size::W, R1, R6, PROTOCOL).jump_imm(Cond::Ne, R1, IPPROTO_TCP as i32, "allow");
    // A socket bound to an address (say 127.0.0.1) could not reach a
    // container address from it: such connections keep the nft path.
    a.load(Size::DW, R1, R6, SK).load(Size::W, R1, R1, SK_SRC_IP4).jump_imm(Cond::Ne, R1, 0, "allow");
    a.load(Size::W, R7, R6, USER_IP4).load(Size::W, R8, R6, USER_PORT);
    a.store(Size::W, FP, -8, R7).store(Size::H, FP, -4, R8).store_imm(Size::H, FP, -2, IPPROTO_TCP as i32);
    // A mapping on this very address (-p IP:HPORT:CPORT) …
    a.ld_map(R1, m.ports).stack_ptr(R2, -8).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Ne, R0, 0, "found");
    // … else one on every address, if this address is the host's.
    // (The first octet of the address as loaded, on either byte order.)
    let first_octet = |o: u8| u32::from_ne_bytes([o, 0, 0, 0]) as i32;
    a.mov(R1, R7).and_imm(R1, first_octet(0xff)).jump_imm(Cond::Eq, R1, first_octet(127), "any_address");
    a.store(Size::W, FP, -16, R7).ld_map(R1, m.local).stack_ptr(R2, -16).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Eq, R0, 0, "allow");
    a.label("any_address");
    a.store_imm(Size::W, FP, -8, 0).ld_map(R1, m.ports).stack_ptr(R2, -8).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Eq, R0, 0, "allow");
    a.label("found").mov(R9, R0);
    // Remember what was asked for, for getpeername.
    a.store(Size::W, FP, -48, R7).store(Size::H, FP, -44, R8).store_imm(Size::H, FP, -42, 0);
    a.load(Size::W, R1, R9, 0).store(Size::W, FP, -40, R1);
    a.load(Size::H, R1, R9, 4).store(Size::H, FP, -36, R1).store_imm(Size::H, FP, -34, 0);
    a.mov(R1, R6).call(GET_SOCKET_COOKIE).store(Size::DW, FP, -56, R0);
    a.ld_map(R1, m.origin).stack_ptr(R2, -56).stack_ptr(R3, -48).mov_imm(R4, 0).call(MAP_UPDATE_ELEM);
    // The translation itself.
    a.load(Size::W, R1, R9, 0).store(Size::W, R6, USER_IP4, R1);
    a.load(Size::H, R1, R9, 4).store(Size::W, R6, USER_PORT, R1);
    allow(&mut a)
}

/// `getpeername4`: the asked address, if this socket was translated and is
/// still connected where the translation sent it (a socket may connect
/// again elsewhere after a failed attempt).
pub fn getpeername4(netns: u64, m: Maps) -> Vec<Insn> {
    let mut a = Asm::default();
    only_in_netns(&mut a, netns);
    a.mov(R1, R6).call(GET_SOCKET_COOKIE).store(Size::DW, FP, -8, R0);
    a.ld_map(R1, m.origin).stack_ptr(R2, -8).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Eq, R0, 0, "allow");
    a.load(Size::W, R1, R0, 8).load(Size::W, R2, R6, USER_IP4).jump_reg(Cond::Ne, R1, R2, "allow");
    a.load(Size::H, R1, R0, 12).load(Size::W, R2, R6, USER_PORT).jump_reg(Cond::Ne, R1, R2, "allow");
    a.load(Size::W, R1, R0, 0).store(Size::W, R6, USER_IP4, R1);
    a.load(Size::H, R1, R0, 4).store(Size::W, R6, USER_PORT, R1);
    allow(&mut a)
}

// Stack of `connect6`: the `ports6` key (its first 16 bytes the `local6`
// key), the `ports` key (its first 4 the `local` key), the `origin6` value
// (asked, then translated) and the socket cookie.
const KEY6: i16 = -24;
const KEY4: i16 = -32;
const ASKED: i16 = -88;
const SENT: i16 = -68;
const COOKIE: i16 = -96;

/// `connect6` (see the module's doc). Registers: r6 context, r7 the
/// socket, then the asked port, r0 the matching `ports6` (at `found6`) or `ports` (at `found4`)
/// value. Addresses are kept on the stack, four words each.
pub fn connect6(netns: u64, m: Maps) -> Vec<Insn> {
    let mut a = Asm::default();
    only_in_netns(&mut a, netns);
    a.load(Size::W, R1, R6, PROTOCOL).jump_imm(Cond::Ne, R1, IPPROTO_TCP as i32, "allow");
    // Bound to an address (`::1`, `::ffff:127.0.0.1`, …): the nft path.
    a.load(Size::DW, R7, R6, SK);
    for i in 0..4 {
        a.load(Size::W, R1, R7, SK_SRC_IP6 + 4 * i).jump_imm(Cond::Ne, R1, 0, "allow");
    }
    for i in 0..4 {
        a.load(Size::W, R1, R6, USER_IP6 + 4 * i).store(Size::W, FP, KEY6 + 4 * i, R1).store(Size::W, FP, ASKED + 4 * i, R1);
    }
    a.load(Size::W, R7, R6, USER_PORT);
    a.store(Size::H, FP, KEY6 + 16, R7).store_imm(Size::H, FP, KEY6 + 18, IPPROTO_TCP as i32);
    a.store(Size::H, FP, KEY4 + 4, R7).store_imm(Size::H, FP, KEY4 + 6, IPPROTO_TCP as i32);
    a.store(Size::H, FP, ASKED + 16, R7).store_imm(Size::H, FP, ASKED + 18, 0);
    // ::ffff:a.b.c.d is an IPv4 connection.
    a.load(Size::W, R1, FP, KEY6).jump_imm(Cond::Ne, R1, 0, "v6");
    a.load(Size::W, R1, FP, KEY6 + 4).jump_imm(Cond::Ne, R1, 0, "v6");
    a.load(Size::W, R1, FP, KEY6 + 8).ld_imm64(R2, word(MAPPED)).jump_reg(Cond::Eq, R1, R2, "mapped");

    // IPv6: a mapping on this very address …
    a.label("v6").ld_map(R1, m.ports6).stack_ptr(R2, KEY6.into()).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Ne, R0, 0, "found6");
    // … else one on every address, if this address is the host's: ::1 …
    a.load(Size::W, R1, FP, KEY6).jump_imm(Cond::Ne, R1, 0, "not_loopback");
    a.load(Size::W, R1, FP, KEY6 + 4).jump_imm(Cond::Ne, R1, 0, "not_loopback");
    a.load(Size::W, R1, FP, KEY6 + 8).jump_imm(Cond::Ne, R1, 0, "not_loopback");
    a.load(Size::W, R1, FP, KEY6 + 12).ld_imm64(R2, word([0, 0, 0, 1])).jump_reg(Cond::Eq, R1, R2, "any6");
    // … or one of the namespace's.
    a.label("not_loopback");
    a.ld_map(R1, m.local6).stack_ptr(R2, KEY6.into()).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Eq, R0, 0, "allow");
    a.label("any6").store_imm(Size::DW, FP, KEY6, 0).store_imm(Size::DW, FP, KEY6 + 8, 0);
    a.ld_map(R1, m.ports6).stack_ptr(R2, KEY6.into()).call(MAP_LOOKUP_ELEM);
    // None: the IPv4 mapping on every address, over IPv4 (at `any4`).
    a.jump_imm(Cond::Eq, R0, 0, "any4");
    a.label("found6");
    for i in 0..4 {
        a.load(Size::W, R1, R0, 4 * i).store(Size::W, FP, SENT + 4 * i, R1);
    }
    a.load(Size::H, R1, R0, 16).store(Size::H, FP, SENT + 16, R1).store_imm(Size::H, FP, SENT + 18, 0);
    a.goto("commit");

    // IPv4 (v4-mapped): connect4's rules on the last word.
    a.label("mapped").load(Size::W, R1, FP, KEY6 + 12).store(Size::W, FP, KEY4, R1);
    a.ld_map(R1, m.ports).stack_ptr(R2, KEY4.into()).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Ne, R0, 0, "found4");
    let first_octet = |o: u8| u32::from_ne_bytes([o, 0, 0, 0]) as i32;
    a.load(Size::W, R1, FP, KEY4).and_imm(R1, first_octet(0xff)).jump_imm(Cond::Eq, R1, first_octet(127), "any4");
    a.ld_map(R1, m.local).stack_ptr(R2, KEY4.into()).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Eq, R0, 0, "allow");
    a.label("any4").store_imm(Size::W, FP, KEY4, 0);
    a.ld_map(R1, m.ports).stack_ptr(R2, KEY4.into()).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Eq, R0, 0, "allow");
    a.label("found4").store_imm(Size::W, FP, SENT, 0).store_imm(Size::W, FP, SENT + 4, 0).store_imm(Size::W, FP, SENT + 8, word(MAPPED) as u32 as i32);
    a.load(Size::W, R1, R0, 0).store(Size::W, FP, SENT + 12, R1);
    a.load(Size::H, R1, R0, 4).store(Size::H, FP, SENT + 16, R1).store_imm(Size::H, FP, SENT + 18, 0);

    // Remember what was asked for, for getpeername; then translate.
    a.label("commit").mov(R1, R6).call(GET_SOCKET_COOKIE).store(Size::DW, FP, COOKIE, R0);
    a.ld_map(R1, m.origin6).stack_ptr(R2, COOKIE.into()).stack_ptr(R3, ASKED.into()).mov_imm(R4, 0).call(MAP_UPDATE_ELEM);
    for i in 0..4 {
        a.load(Size::W, R1, FP, SENT + 4 * i).store(Size::W, R6, USER_IP6 + 4 * i, R1);
    }
    a.load(Size::H, R1, FP, SENT + 16).store(Size::W, R6, USER_PORT, R1);
    allow(&mut a)
}

/// `getpeername6`: as `getpeername4`, with `origin6`.
pub fn getpeername6(netns: u64, m: Maps) -> Vec<Insn> {
    let mut a = Asm::default();
    only_in_netns(&mut a, netns);
    a.mov(R1, R6).call(GET_SOCKET_COOKIE).store(Size::DW, FP, -8, R0);
    a.ld_map(R1, m.origin6).stack_ptr(R2, -8).call(MAP_LOOKUP_ELEM).jump_imm(Cond::Eq, R0, 0, "allow");
    for i in 0..4 {
        a.load(Size::W, R1, R0, 20 + 4 * i).load(Size::W, R2, R6, USER_IP6 + 4 * i).jump_reg(Cond::Ne, R1, R2, "allow");
    }
    a.load(Size::H, R1, R0, 36).load(Size::W, R2, R6, USER_PORT).jump_reg(Cond::Ne, R1, R2, "allow");
    for i in 0..4 {
        a.load(Size::W, R1, R0, 4 * i).store(Size::W, R6, USER_IP6 + 4 * i, R1);
    }
    a.load(Size::H, R1, R0, 16).store(Size::W, R6, USER_PORT, R1);
    allow(&mut a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_in_network_order() {
        assert_eq!(ports_key(Ipv4Addr::new(127, 0, 0, 1), 8080, IPPROTO_TCP), [127, 0, 0, 1, 0x1f, 0x90, 6, 0]);
        assert_eq!(ports_key(Ipv4Addr::UNSPECIFIED, 80, IPPROTO_TCP), [0, 0, 0, 0, 0, 80, 6, 0]);
        assert_eq!(ports_value(Ipv4Addr::new(10, 0, 0, 2), 80), [10, 0, 0, 2, 0, 80, 0, 0]);
    }

    #[test]
    fn ipv6_keys_are_in_network_order() {
        let k = ports6_key("fd00::1".parse().unwrap(), 8080, IPPROTO_TCP);
        assert_eq!(k[..16], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(k[16..], [0x1f, 0x90, 6, 0]);
        assert_eq!(ports6_key(Ipv6Addr::UNSPECIFIED, 80, IPPROTO_TCP), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 80, 6, 0]);
        let v = ports6_value(Ipv6Addr::LOCALHOST, 80);
        assert_eq!((v[15], &v[16..]), (1, &[0, 80, 0, 0][..]));
        assert_eq!((PORTS6_KEY as usize, PORTS6_VALUE as usize), (k.len(), v.len()));
        // The words the program compares, as a 4-byte load of the address sees them.
        let mapped = Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped().octets();
        assert_eq!(word(mapped[8..12].try_into().unwrap()), word(MAPPED));
        assert_eq!(word(Ipv6Addr::LOCALHOST.octets()[12..].try_into().unwrap()), word([0, 0, 0, 1]));
    }

    const M: Maps = Maps { ports: 11, local: 12, origin: 13, ports6: 21, local6: 22, origin6: 23 };

    /// The map fds a program loads (`ld_imm64` with BPF_PSEUDO_MAP_FD), in order.
    fn maps_of(p: &[Insn]) -> Vec<i32> {
        p.iter().filter(|i| i.code == 0x18 && i.regs >> 4 == 1).map(|i| i.imm).collect()
    }

    #[test]
    fn programs_end_in_return_one_and_name_their_maps() {
        for p in [connect4(7, M), getpeername4(7, M), connect6(7, M), getpeername6(7, M)] {
            let n = p.len();
            assert_eq!((p[n - 2].code, p[n - 2].imm, p[n - 1].code), (0xb7, 1, 0x95));
            // Every jump (and goto) lands inside the program, after itself.
            for (i, insn) in p.iter().enumerate() {
                if insn.code & 0x07 == 0x05 && insn.code != 0x85 && insn.code != 0x95 {
                    assert!(insn.off >= 0 && i + 1 + (insn.off as usize) < n);
                }
            }
        }
        assert_eq!(maps_of(&connect4(7, M)), [11, 12, 11, 13]);
        assert_eq!(maps_of(&getpeername4(7, M)), [13]);
        // ports6 exact, local6, ports6 on every address; ports exact, local,
        // ports on every address (v4-mapped and the fallback); origin6.
        assert_eq!(maps_of(&connect6(7, M)), [21, 22, 21, 11, 12, 11, 23]);
        assert_eq!(maps_of(&getpeername6(7, M)), [23]);
    }

    #[test]
    fn connect6_falls_back_to_the_ipv4_mapping_on_every_address() {
        let p = connect6(7, M);
        let at = |fd: i32, nth: usize| p.iter().enumerate().filter(|(_, i)| i.code == 0x18 && i.regs >> 4 == 1 && i.imm == fd).nth(nth).unwrap().0;
        // After the lookup of `ports6` on every address, a miss jumps to
        // where `ports` is looked up on every address.
        let miss = (at(21, 1)..p.len()).find(|i| p[*i].code == 0x15 && p[*i].imm == 0).unwrap();
        let target = miss + 1 + p[miss].off as usize;
        // `any4`: zero the ports key's address (st W [fp-32], 0), then look up `ports`.
        assert_eq!((p[target].code, p[target].off, p[target].imm), (0x62, KEY4, 0));
        assert_eq!(at(11, 1), target + 1);
        // The translation stored for it is v4-mapped.
        assert!(p.iter().any(|i| i.code == 0x62 && i.off == SENT + 8 && i.imm as u32 as u64 == word(MAPPED)));
    }
}
