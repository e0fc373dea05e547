//! The two cgroup socket programs behind socket translation, and the byte
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
//! `getpeername4` gives such a socket back the address it asked for, as
//! DNAT would, so a client still sees `127.0.0.1:8080` as its peer.
//!
//! Maps (all keys and values in network byte order where they hold
//! addresses or ports):
//! - `ports`: key `[ip4; 4] [port; 2] [proto] [0]` (ip4 0.0.0.0 for a
//!   mapping on every address) → value `[ip4; 4] [port; 2] [0; 2]`.
//! - `local`: the namespace's IPv4 addresses → 1, kept current by the
//!   daemon. A mapping on every address applies to these and to
//!   127.0.0.0/8, as `fib daddr type local` in the nft rules does.
//! - `origin`: socket cookie → `[asked ip4; 4] [asked port; 2] [0; 2]
//!   [translated ip4; 4] [translated port; 2] [0; 2]`; an LRU map, so
//!   closed sockets age out.

use std::net::Ipv4Addr;

use super::asm::*;

pub const PORTS_KEY: u32 = 8;
pub const PORTS_VALUE: u32 = 8;
pub const ORIGIN_VALUE: u32 = 16;

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

/// File descriptors of the maps, as the programs refer to them.
#[derive(Clone, Copy)]
pub struct Maps {
    pub ports: i32,
    pub local: i32,
    pub origin: i32,
}

// Offsets in `struct bpf_sock_addr` and `struct bpf_sock`.
const USER_IP4: i16 = 4;
const USER_PORT: i16 = 24;
const PROTOCOL: i16 = 36;
const SK: i16 = 64;
const SK_SRC_IP4: i16 = 24;

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
    fn programs_end_in_return_one_and_name_their_maps() {
        let m = Maps { ports: 11, local: 12, origin: 13 };
        for p in [connect4(7, m), getpeername4(7, m)] {
            let n = p.len();
            assert_eq!((p[n - 2].code, p[n - 2].imm, p[n - 1].code), (0xb7, 1, 0x95));
            // Every jump lands inside the program.
            for (i, insn) in p.iter().enumerate() {
                if insn.code & 0x07 == 0x05 && insn.code != 0x85 && insn.code != 0x95 {
                    assert!(i + 1 + (insn.off as usize) < n);
                }
            }
        }
        let c = connect4(7, m);
        let maps: Vec<i32> = c.iter().filter(|i| i.code == 0x18 && i.regs >> 4 == 1).map(|i| i.imm).collect();
        assert_eq!(maps, [11, 12, 11, 13]);
        let g = getpeername4(7, m);
        assert!(g.iter().any(|i| i.code == 0x18 && i.regs >> 4 == 1 && i.imm == 13));
    }
}
