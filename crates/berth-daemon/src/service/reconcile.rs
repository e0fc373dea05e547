//! Converging the kernel to the store: bridges, veths, addresses, sysctls and
//! the nft table. Creates what is missing, removes what berth owns and the
//! store does not know, never touches anything else. Runs at start and on
//! `berth reconcile`; returns what it had to change (empty = all was in place).

use berth_core::driver::network_plan;
use berth_core::model::ContainerKind;
use tracing::warn;

use super::endpoint::plans;
use crate::daemon::Daemon;
use crate::error::Result;
use berth_linux::kernel::{NsRef, OwnedKind};

/// `nft list` output in an order-independent form (hash sets list their
/// elements in no fixed order).
fn normalize(listing: &str) -> Vec<String> {
    let mut v: Vec<String> = listing
        .lines()
        .map(|l| l.trim().trim_start_matches("elements = {").trim_end_matches(['}', ',']).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

impl Daemon {
    pub fn reconcile(&self) -> Result<Vec<String>> {
        let mut report = Vec::new();
        // Deletions still queued are not news.
        self.kernel.settle();
        self.ensure_forwarding();
        let networks: Vec<_> = self.st().networks.values().cloned().collect();
        for n in &networks {
            let existed = !n.has_bridge() || self.kernel.link_owned(n.bridge())?.is_some();
            let tunnel_existed = match n.tunnel() {
                Some(t) => self.kernel.link_owned(t)?.is_some(),
                None => true,
            };
            self.kernel.ensure_network(&network_plan(n))?;
            if !existed {
                report.push(format!("created bridge {}", n.bridge()));
            }
            if !tunnel_existed {
                report.push(format!("created vxlan {}", n.tunnel().unwrap_or_default()));
            }
            // Host-loopback access to published ports needs 127/8 routable to the bridge.
            if n.ipv4().is_some() && n.has_bridge() {
                if let Err(e) = self.kernel.sysctl(&format!("net/ipv4/conf/{}/route_localnet", n.bridge()), "1") {
                    warn!("route_localnet on {}: {e}", n.bridge());
                }
            }
        }
        // Links berth owns that nothing in the store wants.
        let (bridges, tunnels, veths): (Vec<String>, Vec<String>, Vec<String>) = {
            let st = self.st();
            (
                st.networks.values().filter(|n| n.has_bridge()).map(|n| n.bridge().to_string()).collect(),
                st.networks.values().filter_map(|n| n.tunnel().map(str::to_string)).collect(),
                st.containers.values().flat_map(|c| c.endpoints().map(|(_, e)| e.host_ifname.clone())).collect(),
            )
        };
        for l in self.kernel.owned_links()? {
            let wanted = match l.kind {
                OwnedKind::Bridge => bridges.contains(&l.name),
                OwnedKind::Tunnel => tunnels.contains(&l.name),
                OwnedKind::Veth => veths.contains(&l.name),
            };
            if !wanted {
                self.kernel.delete_link(&l.name)?;
                report.push(format!("deleted stale {} {}", l.kind.as_str(), l.name));
            }
        }
        // Overlays' routes to the other hosts, from the last picture of the cluster.
        if let Some(cl) = &self.cluster {
            self.sync_tunnels(cl);
        }
        // Endpoints of live containers.
        let live: Vec<_> = self.st().live().into_iter().cloned().collect();
        for c in &live {
            let ns = match &c.kind {
                ContainerKind::Run { .. } => match c.state.shim_pid {
                    Some(p) => NsRef::Pid(p),
                    None => continue,
                },
                ContainerKind::Attached { .. } if c.handoff => NsRef::Handoff,
                ContainerKind::Attached { netns } => NsRef::Path(netns.into()),
            };
            let ps = plans(&self.st(), c);
            for (_, p) in ps {
                if !self.kernel.endpoint_ok(&ns, &p)? {
                    if c.handoff {
                        // The runtime moved and configured the container's
                        // end; a new pair would stay in the host's namespace.
                        warn!("endpoint {} of {} is gone; its runtime must connect it again (docker network disconnect/connect)", p.host_ifname, c.name);
                        continue;
                    }
                    self.kernel.delete_link(&p.host_ifname)?;
                    match self.kernel.add_endpoint(&ns, &p) {
                        Ok(()) => report.push(format!("re-created endpoint {} of {}", p.host_ifname, c.name)),
                        Err(e) => warn!("re-creating endpoint {} of {}: {e}", p.host_ifname, c.name),
                    }
                }
            }
        }
        let before = self.kernel.list_table()?.map(|t| normalize(&t));
        self.fw.reset(self.kernel.as_ref(), self.all_wants())?;
        let after = self.kernel.list_table()?.map(|t| normalize(&t));
        if before != after {
            report.push(match before {
                None => "created nft table inet berth".to_string(),
                Some(_) => "restored nft table inet berth".to_string(),
            });
        }
        Ok(report)
    }
}
