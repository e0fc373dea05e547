//! Source-address policies: stored by container name, turned into elements
//! of the `deny4`/`allow4`/`guarded4` sets for the containers of that name.

use berth_core::model::Policy;
use berth_core::request::{validate_policy, PolicyRequest};

use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use crate::store::Op;
use crate::util::new_id;

impl Daemon {
    pub fn policy_add(&self, req: &PolicyRequest) -> Result<Policy> {
        let p = validate_policy(req, &new_id()[..12])?;
        let target = {
            let mut st = self.st();
            st.policies.push(p.clone());
            st.container_by_name(&p.to.container).cloned()
        };
        let applied = self.with_intent(&[Op::PutPolicy(&p)], || match &target {
            Some(c) => self.sync_fw(c),
            None => Ok(()),
        });
        if let Err(e) = applied {
            self.st().policies.retain(|x| x.id != p.id);
            let _ = self.commit(&[Op::DelPolicy(&p.id)], true);
            if let Some(c) = &target {
                let _ = self.sync_fw(c);
            }
            return Err(e);
        }
        Ok(p)
    }

    pub fn policy_remove(&self, id: &str) -> Result<()> {
        let (p, target) = {
            let mut st = self.st();
            let Some(pos) = st.policies.iter().position(|p| p.id == id || (id.len() >= 4 && p.id.starts_with(id))) else {
                return Err(DaemonError::NotFound(format!("no such policy: {id}")));
            };
            let p = st.policies.remove(pos);
            let t = st.container_by_name(&p.to.container).cloned();
            (p, t)
        };
        self.with_intent(&[Op::DelPolicy(&p.id)], || match &target {
            Some(c) => self.sync_fw(c),
            None => Ok(()),
        })
    }
}
