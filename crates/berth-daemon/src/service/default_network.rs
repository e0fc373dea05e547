//! The default network (`berth0`, Docker's `bridge`): created or adopted at
//! start from the daemon's configuration, IPv4 and (with `--ipv6`) IPv6.

use berth_core::model::{BridgeDriver, Driver, IpamConfig, Network, NetworkOptions, DEFAULT_NETWORK};
use berth_core::subnets::{choose_subnet, AddressPool};
use ipnet::IpNet;
use tracing::{info, warn};

use crate::daemon::Daemon;
use crate::error::Result;
use crate::store::Op;
use crate::util::{new_id, now};

/// The first address after the network address.
fn first_host(s: &IpNet) -> std::net::IpAddr {
    berth_core::ipam::from_u128(berth_core::ipam::to_u128(s.network()) + 1, s.addr())
}

impl Daemon {
    /// Subnets of the other networks and the host's (what an automatic
    /// subnet must avoid).
    fn taken_subnets(&self) -> Result<(Vec<IpNet>, Vec<IpNet>)> {
        let others: Vec<IpNet> = {
            let st = self.st();
            st.networks.values().filter(|n| !n.predefined).flat_map(|n| n.ipam.iter().map(|c| c.subnet)).collect()
        };
        Ok((others, self.kernel.host_nets(&self.bridge_names())?))
    }

    /// The default network's IPv4 block. 172.17.0.0/16 unless that collides
    /// with a host address or route (e.g. Docker's docker0), then the next
    /// free /16 of 172.18–172.31; `--bip` fixes it; an adopted bridge
    /// brings its own address.
    fn default_ipv4(&self, existing: Option<&Network>, bridge: &str, owned: bool, adopted: &[IpNet]) -> Result<IpamConfig> {
        let (subnet, gateway, user) = if let Some(bip) = self.cfg.bip {
            (bip.trunc(), bip.addr(), true)
        } else if let (false, Some(addr)) = (owned, adopted.iter().find(|a| a.addr().is_ipv4())) {
            (addr.trunc(), addr.addr(), true)
        } else if let Some(c) = existing.filter(|n| n.bridge() == bridge).and_then(|n| n.ipv4()).filter(|c| !c.user_subnet) {
            (c.subnet, c.gateway, false)
        } else {
            let (others, host) = self.taken_subnets()?;
            let pools: Vec<AddressPool> =
                (17..=31).map(|b| AddressPool { base: format!("172.{b}.0.0/16").parse().unwrap(), size: 16 }).collect();
            let s = choose_subnet(&pools, false, &others, &host)?;
            (s, first_host(&s), false)
        };
        if let Some(f) = self.cfg.fixed_cidr {
            if !(subnet.contains(&f.network()) && subnet.contains(&f.broadcast())) {
                return Err(berth_core::CoreError::RangeOutsideSubnet { range: f, subnet }.into());
            }
        }
        Ok(IpamConfig { subnet, gateway, ip_range: self.cfg.fixed_cidr, user_subnet: user })
    }

    /// The default network's IPv6 block with `--ipv6`: `--fixed-cidr-v6`,
    /// an adopted bridge's, the one chosen before, or a /64 from the pools.
    fn default_ipv6(&self, existing: Option<&Network>, bridge: &str, owned: bool, adopted: &[IpNet]) -> Result<Option<IpamConfig>> {
        if !self.cfg.ipv6 {
            return Ok(None);
        }
        let (subnet, gateway, user) = if let Some(f) = self.cfg.fixed_cidr_v6 {
            (f, first_host(&f), true)
        } else if let (false, Some(addr)) = (owned, adopted.iter().find(|a| a.addr().is_ipv6())) {
            (addr.trunc(), addr.addr(), true)
        } else if let Some(c) = existing.filter(|n| n.bridge() == bridge).and_then(|n| n.ipv6()).filter(|c| !c.user_subnet) {
            (c.subnet, c.gateway, false)
        } else {
            let (others, host) = self.taken_subnets()?;
            let s = choose_subnet(&self.pools, true, &others, &host)?;
            (s, first_host(&s), false)
        };
        Ok(Some(IpamConfig { subnet, gateway, ip_range: None, user_subnet: user }))
    }

    /// Creates or adopts the default network per the configuration; an
    /// existing bridge that berth did not create (`--bridge br0`) is
    /// adopted with its addresses and never deleted.
    pub(crate) fn init_default_network(&self) -> Result<()> {
        let existing = self.st().networks.values().find(|n| n.predefined).cloned();
        if self.cfg.bridge == "none" {
            if let Some(n) = existing {
                if self.st().users_of(&n.id).is_empty() {
                    self.st().networks.remove(&n.id);
                    self.commit(&[Op::DelNetwork(&n.id)], true)?;
                    if n.owns_bridge() {
                        self.kernel.delete_link(n.bridge())?;
                    }
                }
            }
            return Ok(());
        }
        let bridge = self.cfg.bridge.clone();
        let owned = match self.kernel.link_owned(&bridge)? {
            None => true,
            Some(marked) => marked || existing.as_ref().is_some_and(|n| n.bridge() == bridge && n.owns_bridge()),
        };
        let adopted = if owned { vec![] } else { self.kernel.link_addresses(&bridge)?.unwrap_or_default() };
        let mut ipam = vec![self.default_ipv4(existing.as_ref(), &bridge, owned, &adopted)?];
        ipam.extend(self.default_ipv6(existing.as_ref(), &bridge, owned, &adopted)?);
        let mut want = Network {
            id: existing.as_ref().map(|n| n.id.clone()).unwrap_or_else(new_id),
            name: DEFAULT_NETWORK.to_string(),
            driver: Driver::Bridge(BridgeDriver { name: bridge.clone(), owned }),
            ipam,
            internal: false,
            mtu: self.cfg.mtu,
            options: NetworkOptions { icc: self.cfg.icc, masquerade: true },
            raw_options: Default::default(),
            created: existing.as_ref().map(|n| n.created).unwrap_or_else(now),
            predefined: true,
            global: false,
            blocks: vec![],
        };
        if let Some(old) = &existing {
            if old.ipam != want.ipam || old.driver != want.driver {
                let users = self.st().users_of(&old.id);
                if !users.is_empty() {
                    let subnets: Vec<String> = old.ipam.iter().map(|c| c.subnet.to_string()).collect();
                    warn!(
                        "default network settings changed but containers use it ({}): keeping {} on {}",
                        users.join(", "),
                        subnets.join(" and "),
                        old.bridge()
                    );
                    want.ipam = old.ipam.clone();
                    want.driver = old.driver.clone();
                } else if old.bridge() != want.bridge() && old.owns_bridge() {
                    self.kernel.delete_link(old.bridge())?;
                }
            }
            if *old == want {
                return Ok(());
            }
        }
        let subnets: Vec<String> = want.ipam.iter().map(|c| c.subnet.to_string()).collect();
        info!("default network {} on bridge {} ({}, icc={})", want.name, want.bridge(), subnets.join(" and "), want.options.icc);
        self.commit(&[Op::PutNetwork(&want)], true)?;
        self.st().networks.insert(want.id.clone(), want);
        Ok(())
    }
}
