//! A network's resolver upstreams, changed in place: what `netavark update
//! NET --network-dns-servers A,B` asks for (podman's `network update
//! --dns-add/--dns-drop`). They are the network's `dns_servers` option, so
//! `network inspect` shows them and they survive restarts with the
//! network's record; the resolver reads them at every forward, so nothing
//! in the kernel or the resolver's sockets changes.

use std::net::IpAddr;

use tracing::info;

use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use crate::store::Op;

impl Daemon {
    /// Sets the upstream servers of network `key`'s resolver (empty: the host's).
    pub fn network_set_dns(&self, key: &str, servers: &[IpAddr]) -> Result<()> {
        let (old, new) = {
            let mut st = self.st();
            let id = st.network_id(key)?;
            let n = st.networks.get_mut(&id).expect("found by id");
            if Daemon::dns_addresses(n).is_empty() {
                return Err(DaemonError::BadRequest(format!("network {} has no resolver (the default network has no names), so no upstream servers", n.name)));
            }
            let old = n.clone();
            if servers.is_empty() {
                n.raw_options.remove("dns_servers");
            } else {
                n.raw_options.insert("dns_servers".into(), servers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","));
            }
            (old, n.clone())
        };
        if let Err(e) = self.commit(&[Op::PutNetwork(&new)], true) {
            self.st().networks.insert(old.id.clone(), old);
            return Err(e);
        }
        let list = if servers.is_empty() { "the host's".to_string() } else { new.raw_options["dns_servers"].clone() };
        info!("network {}: resolver upstreams now {list}", new.name);
        Ok(())
    }
}
