//! Source-address policies: stored by container name, turned into elements
//! of the `deny4`/`allow4`/`guarded4` sets for the containers of that name.

use berth_core::model::Policy;
use berth_core::request::{validate_policy, PolicyRequest};

use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use crate::store::Op;
use crate::util::new_id;

impl Daemon {
    /// In a cluster a policy is kept in the cluster store: it holds on
    /// whichever host its target runs (each host applies the policies
    /// naming its own containers). Without the store reachable it cannot
    /// be added or removed.
    fn cluster_policy(&self, p: Option<&Policy>, remove: Option<&str>) -> Result<()> {
        let cl = self.cluster.clone().expect("called in a cluster");
        let what = if p.is_some() { "adding a policy" } else { "removing a policy" };
        let key = berth_core::cluster::Key::Policy(p.map(|p| p.id.clone()).or(remove.map(str::to_string)).unwrap_or_default()).render();
        let value = p.map(berth_core::cluster::records::to_json);
        cl.block_on(self, what, crate::cluster::store_put(&cl, &key, value.as_deref()))?;
        let ev = match value {
            Some(value) => berth_core::cluster::Event::Put { key, value },
            None => berth_core::cluster::Event::Delete { key },
        };
        let _ = cl.view().apply(&ev);
        let policies: Vec<Policy> = cl.view().policies.values().cloned().collect();
        self.st().cluster_policies = policies;
        self.fw.reset(self.kernel.as_ref(), self.all_wants())
    }

    pub fn policy_add(&self, req: &PolicyRequest) -> Result<Policy> {
        let p = validate_policy(req, &new_id()[..12])?;
        if self.cluster.is_some() {
            self.cluster_policy(Some(&p), None)?;
            return Ok(p);
        }
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
        let cluster_id = {
            let st = self.st();
            st.cluster_policies.iter().find(|p| p.id == id || (id.len() >= 4 && p.id.starts_with(id))).map(|p| p.id.clone())
        };
        if let Some(cid) = cluster_id {
            return self.cluster_policy(None, Some(&cid));
        }
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
