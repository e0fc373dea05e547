//! A recording fake of the kernel, so the request flows — validation,
//! allocation, intent, rollback — are tested without root. It keeps the
//! objects it was asked to create and can be told to fail an operation.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Mutex;

use berth_core::model::PortMapping;
use berth_core::nft::Element;
use berth_core::plan::{EndpointPlan, NetworkPlan, TunnelPeers};
use ipnet::IpNet;

use super::{FirewallOps, HostOps, LinkOps, NsRef, OwnedKind, OwnedLink, Underlay};
use crate::error::{LinuxError, Result};

#[derive(Default)]
pub struct FakeKernel {
    pub links: Mutex<BTreeSet<String>>,
    /// Tunnel peers last written, by tunnel device.
    pub tunnels: Mutex<std::collections::BTreeMap<String, TunnelPeers>>,
    pub elements: Mutex<BTreeSet<Element>>,
    /// Operations that fail, by name ("add_endpoint", "apply_elements", ...).
    pub fail: Mutex<HashSet<&'static str>>,
    /// Host ports a "host process" holds.
    pub busy_ports: Mutex<HashSet<u16>>,
}

impl FakeKernel {
    fn check(&self, op: &'static str) -> Result<()> {
        if self.fail.lock().unwrap().contains(op) {
            return Err(LinuxError::kernel(op, std::io::Error::other("injected failure")));
        }
        Ok(())
    }
}

impl LinkOps for FakeKernel {
    fn ensure_network(&self, plan: &NetworkPlan) -> Result<()> {
        self.check("ensure_network")?;
        let mut links = self.links.lock().unwrap();
        match plan {
            NetworkPlan::Bridge(b) => {
                links.insert(b.name.clone());
            }
            NetworkPlan::Overlay(o) => {
                links.insert(o.bridge.name.clone());
                if let Some(t) = &o.tunnel {
                    links.insert(t.name.clone());
                }
            }
            NetworkPlan::Macvlan { .. } => {}
        }
        Ok(())
    }
    fn link_addresses(&self, _name: &str) -> Result<Option<Vec<IpNet>>> {
        Ok(None)
    }
    fn link_owned(&self, name: &str) -> Result<Option<bool>> {
        Ok(self.links.lock().unwrap().contains(name).then_some(true))
    }
    fn add_endpoint(&self, _ns: &NsRef, plan: &EndpointPlan) -> Result<()> {
        self.check("add_endpoint")?;
        self.links.lock().unwrap().insert(plan.host_ifname.clone());
        Ok(())
    }
    fn endpoint_ok(&self, _ns: &NsRef, plan: &EndpointPlan) -> Result<bool> {
        Ok(self.links.lock().unwrap().contains(&plan.host_ifname))
    }
    fn delete_link(&self, name: &str) -> Result<()> {
        self.links.lock().unwrap().remove(name);
        Ok(())
    }
    fn remove_endpoint(&self, host_ifname: &str) -> Result<()> {
        self.delete_link(host_ifname)
    }
    fn settle(&self) {}
    fn owned_links(&self) -> Result<Vec<OwnedLink>> {
        let kind = |n: &str| match n {
            n if n.starts_with("bthv") => OwnedKind::Veth,
            n if n.starts_with("btx-") => OwnedKind::Tunnel,
            _ => OwnedKind::Bridge,
        };
        Ok(self.links.lock().unwrap().iter().map(|n| OwnedLink { name: n.clone(), kind: kind(n) }).collect())
    }
    fn host_nets(&self, _exclude: &[String]) -> Result<Vec<IpNet>> {
        Ok(vec![])
    }
    fn check_netns(&self, path: &Path) -> Result<()> {
        if path.to_string_lossy().starts_with("/fake/ns/") {
            Ok(())
        } else {
            Err(LinuxError::NotNetns(path.display().to_string()))
        }
    }
    /// The fake host has `eth0` with 192.0.2.10 (MTU 1500).
    fn underlay(&self, addr_or_name: &str) -> Result<Option<Underlay>> {
        let eth0 = Underlay { dev: "eth0".into(), addr: "192.0.2.10".parse().unwrap(), mtu: 1500 };
        Ok(matches!(addr_or_name, "eth0" | "192.0.2.10").then_some(eth0))
    }
    fn sync_tunnel_peers(&self, peers: &TunnelPeers) -> Result<()> {
        self.check("sync_tunnel_peers")?;
        if !self.links.lock().unwrap().contains(&peers.tunnel) {
            return Err(LinuxError::kernel(format!("ip link show {}", peers.tunnel), std::io::Error::from_raw_os_error(libc::ENODEV)));
        }
        self.tunnels.lock().unwrap().insert(peers.tunnel.clone(), peers.clone());
        Ok(())
    }
    fn tunnel_peers(&self, tunnel: &str) -> Result<TunnelPeers> {
        Ok(self.tunnels.lock().unwrap().get(tunnel).cloned().unwrap_or_else(|| TunnelPeers { tunnel: tunnel.into(), ..Default::default() }))
    }
    fn remove_in_netns(&self, _ns: &NsRef, _ifname: &str) -> Result<()> {
        Ok(())
    }
}

impl FirewallOps for FakeKernel {
    fn apply_elements(&self, del: &BTreeSet<Element>, add: &BTreeSet<Element>) -> Result<()> {
        self.check("apply_elements")?;
        let mut e = self.elements.lock().unwrap();
        for d in del {
            if !e.remove(d) {
                return Err(LinuxError::Nft(format!("deleting a missing element {}", d.text())));
            }
        }
        e.extend(add.iter().cloned());
        Ok(())
    }
    fn reset_table(&self, elements: &BTreeSet<Element>) -> Result<()> {
        *self.elements.lock().unwrap() = elements.clone();
        Ok(())
    }
    fn list_table(&self) -> Result<Option<String>> {
        Ok(Some(berth_core::nft::render_table(&self.elements.lock().unwrap())))
    }
    fn flush_conntrack(&self, _mappings: &[PortMapping]) -> Result<()> {
        Ok(())
    }
    fn forget_early_flows(&self, _mappings: &[PortMapping]) -> Result<()> {
        Ok(())
    }
}

impl HostOps for FakeKernel {
    fn sysctl(&self, _key: &str, _value: &str) -> Result<bool> {
        Ok(false)
    }
    fn host_listeners(&self, _udp: bool) -> Vec<(std::net::IpAddr, u16)> {
        self.busy_ports.lock().unwrap().iter().map(|p| ("0.0.0.0".parse().unwrap(), *p)).collect()
    }
    fn port_bindable(&self, _udp: bool, _ip: Option<std::net::IpAddr>, port: u16) -> std::io::Result<()> {
        if self.busy_ports.lock().unwrap().contains(&port) {
            Err(std::io::Error::from_raw_os_error(libc::EADDRINUSE))
        } else {
            Ok(())
        }
    }
    fn ephemeral_range(&self) -> (u16, u16) {
        (40000, 40099)
    }
    fn read_sysctl(&self, _key: &str) -> Option<String> {
        None
    }
    fn ra_interfaces(&self) -> Vec<String> {
        vec![]
    }
}
