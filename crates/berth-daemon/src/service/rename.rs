//! Renaming a container: what a front end does once it learns the name
//! its runtime knows the container by (Docker's plugin learns a
//! container's name from dockerd's API only after the container joined).

use berth_core::names::validate_name;
use berth_core::CoreError;
use tracing::{info, warn};

use crate::daemon::Daemon;
use crate::error::Result;
use crate::store::Op;

impl Daemon {
    /// Gives container `id` the name `name`: indexes, store, firewall
    /// (policies and links name containers) and linking containers' hosts
    /// files follow.
    pub fn rename(&self, id: &str, name: &str) -> Result<()> {
        validate_name(name)?;
        let (old, c) = {
            let mut st = self.st();
            if st.container_by_name(name).is_some_and(|o| o.id != id) {
                return Err(CoreError::DuplicateContainer(name.to_string()).into());
            }
            let Some(mut cur) = st.containers.get_mut(id) else { return Err(CoreError::NoSuchContainer(id.to_string()).into()) };
            let old = std::mem::replace(&mut cur.name, name.to_string());
            (old, cur.clone())
        };
        if old == name {
            return Ok(());
        }
        self.commit(&[Op::PutContainer(&c)], false)?;
        if let Err(e) = self.sync_fw(&c) {
            warn!("firewall update after renaming {old} to {name}: {e}");
        }
        self.refresh_link_hosts(&old);
        self.refresh_link_hosts(name);
        info!("container {old} is now {name}");
        Ok(())
    }
}
