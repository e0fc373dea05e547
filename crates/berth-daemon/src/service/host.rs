//! Host settings berth manages: bridge netfilter, IPv4 and IPv6
//! forwarding, and the router advertisements IPv6 forwarding would stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tracing::{info, warn};

use crate::daemon::Daemon;

/// What berth did to the host's settings (for its log and `berth info`).
#[derive(Default)]
pub struct HostSettings {
    forwarding4: AtomicBool,
    forwarding6: AtomicBool,
    /// Interfaces whose `accept_ra` berth raised from 1 to 2 when it turned
    /// IPv6 forwarding on.
    pub ra_kept: Mutex<Vec<String>>,
}

impl Daemon {
    /// Sysctls berth relies on in this namespace.
    pub(crate) fn kernel_prerequisites(&self) {
        // icc and links filter traffic between ports of one bridge: bridged
        // traffic must pass through the inet hooks (br_netfilter), as with
        // Docker, for IPv4 and IPv6 alike.
        for (key, family) in [("net.bridge.bridge-nf-call-iptables", "IPv4"), ("net.bridge.bridge-nf-call-ip6tables", "IPv6")] {
            match self.kernel.sysctl(key, "1") {
                Ok(true) => info!("enabled {key} (icc and links filter bridged {family} traffic)"),
                Ok(false) => {}
                Err(e) => warn!("cannot enable {key}, icc=false and links will not filter {family}: {e}"),
            }
        }
    }

    /// Turns on forwarding the first time a network with a way out exists
    /// (IPv4), or one with IPv6 (IPv6), unless `--ip-forward=false`.
    pub fn ensure_forwarding(&self) {
        if !self.cfg.ip_forward {
            return;
        }
        let (need4, need6) = {
            let st = self.st();
            // Overlays route between hosts even when internal; macvlan
            // traffic never passes through the host.
            let out = st.networks.values().filter(|n| (!n.internal && n.has_bridge()) || n.tunnel().is_some());
            let (mut v4, mut v6) = (false, false);
            for n in out {
                v4 |= n.ipv4().is_some();
                v6 |= n.ipv6().is_some();
            }
            (v4, v6)
        };
        if need4 && !self.host.forwarding4.load(Ordering::Relaxed) {
            match self.kernel.sysctl("net.ipv4.ip_forward", "1") {
                Ok(changed) => {
                    if changed {
                        info!("enabled net.ipv4.ip_forward: containers on non-internal networks need the host to route");
                    }
                    self.host.forwarding4.store(true, Ordering::Relaxed);
                }
                Err(e) => warn!("cannot enable net.ipv4.ip_forward: {e}"),
            }
        }
        if need6 && !self.host.forwarding6.load(Ordering::Relaxed) {
            self.enable_ipv6_forwarding();
        }
    }

    /// `net.ipv6.conf.all.forwarding=1`. A host that forwards IPv6 ignores
    /// router advertisements on interfaces with `accept_ra=1` (the
    /// default): its SLAAC addresses and default route would expire. So
    /// before turning forwarding on, berth raises those interfaces to
    /// `accept_ra=2` (accept even when forwarding), and says so.
    fn enable_ipv6_forwarding(&self) {
        let key = "net.ipv6.conf.all.forwarding";
        if self.kernel.read_sysctl(key).as_deref() == Some("1") {
            self.host.forwarding6.store(true, Ordering::Relaxed);
            return;
        }
        let mut kept = Vec::new();
        for dev in self.kernel.ra_interfaces() {
            match self.kernel.sysctl(&format!("net/ipv6/conf/{dev}/accept_ra"), "2") {
                Ok(_) => kept.push(dev),
                Err(e) => warn!("cannot set accept_ra=2 on {dev}: {e}; with forwarding on it ignores router advertisements"),
            }
        }
        match self.kernel.sysctl(key, "1") {
            Ok(_) => {
                if kept.is_empty() {
                    info!("enabled {key}: containers on IPv6 networks need the host to route");
                } else {
                    info!(
                        "enabled {key}: containers on IPv6 networks need the host to route; forwarding stops accept_ra=1 from taking router advertisements, so accept_ra is now 2 on {}",
                        kept.join(", ")
                    );
                }
                *self.host.ra_kept.lock().unwrap() = kept;
                self.host.forwarding6.store(true, Ordering::Relaxed);
            }
            Err(e) => warn!("cannot enable {key}: {e}"),
        }
    }

    pub fn forwarding_enabled(&self) -> bool {
        self.kernel.read_sysctl("net.ipv4.ip_forward").as_deref() == Some("1")
    }

    pub fn ipv6_forwarding_enabled(&self) -> bool {
        self.kernel.read_sysctl("net.ipv6.conf.all.forwarding").as_deref() == Some("1")
    }
}
