//! Finishing or undoing requests a crash interrupted. Runs at start, before
//! reconcile, using the intent states the requests recorded.

use berth_core::model::{ContainerKind, EndpointState, RunState};
use berth_linux::{proc, shim};
use tracing::info;

use super::container::wants_of;
use crate::daemon::Daemon;
use crate::error::Result;
use crate::firewall::{net_owner, Owner};
use crate::store::Op;

impl Daemon {
    /// Shims whose container the store does not have as running (a start
    /// interrupted before its record was durable, or a removal interrupted
    /// after it) are stopped: nothing of a container runs without a record.
    fn kill_orphan_shims(&self) {
        let Ok(dirs) = std::fs::read_dir(self.cfg.exec_root.join("containers")) else { return };
        for entry in dirs.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let Some(s) = shim::read_state(&entry.path()) else { continue };
            if !proc::is_same_process(s.shim_pid, s.shim_start) {
                continue;
            }
            let known = self.st().containers.get(&id).is_some_and(|c| {
                c.state.status.is_live() || (c.state.status == RunState::Starting)
            });
            if !known {
                info!("recover: stopping orphaned container process {} (no running record)", s.pid);
                shim::signal_group(s.pid, libc::SIGKILL);
                // SAFETY: signalling a process we verified by pid and start time.
                unsafe { libc::kill(s.shim_pid as i32, libc::SIGKILL) };
            }
        }
    }

    /// Every owner's firewall wants, from the current state.
    pub fn all_wants(&self) -> Vec<(Owner, std::collections::BTreeSet<berth_core::nft::Element>)> {
        let st = self.st();
        let mut v: Vec<_> = st.networks.values().map(|n| (net_owner(&n.id), berth_core::driver::network_elements(n))).collect();
        for c in st.containers.values() {
            v.push((crate::firewall::ctr_owner(&c.id), wants_of(&st, c)));
        }
        v.extend(self.cluster_wants(&st));
        v
    }

    pub fn recover(&self) -> Result<()> {
        // Kernel table and books agree before anything below changes them.
        self.fw.reset(self.kernel.as_ref(), self.all_wants())?;
        self.kill_orphan_shims();
        let containers: Vec<_> = self.st().containers.values().cloned().collect();
        for c in containers {
            let dir = self.runtime_dir(&c.id);
            let alive = |pid: Option<u32>, start: Option<u64>| matches!((pid, start), (Some(p), Some(s)) if proc::is_same_process(p, s));
            match (&c.kind, c.state.status) {
                (ContainerKind::Run { .. }, RunState::Starting) => match shim::read_state(&dir) {
                    Some(s) if proc::is_same_process(s.shim_pid, s.shim_start) => {
                        info!("recover: container {} started before the crash; adopting it", c.name);
                        let rec = {
                            let mut st = self.st();
                            let mut cur = st.containers.get_mut(&c.id).unwrap();
                            cur.state.status = RunState::Running;
                            cur.state.pid = Some(s.pid);
                            cur.state.shim_pid = Some(s.shim_pid);
                            cur.state.shim_start = Some(s.shim_start);
                            cur.clone()
                        };
                        self.commit(&[Op::PutContainer(&rec)], true)?;
                    }
                    _ => {
                        info!("recover: start of {} did not finish; rolling it back", c.name);
                        self.unplumb(&c.endpoints().map(|(_, e)| e.host_ifname.clone()).collect::<Vec<_>>());
                        if c.state.finished_at > 0 {
                            // It had run before: back to exited, as a failed `start` leaves it.
                            let rec = {
                                let mut st = self.st();
                                let mut cur = st.containers.get_mut(&c.id).unwrap();
                                cur.mark_start_failed();
                                cur.clone()
                            };
                            self.commit(&[Op::PutContainer(&rec)], true)?;
                        } else {
                            self.st().containers.remove(&c.id);
                            self.commit(&[Op::DelContainer(&c.id)], true)?;
                            let _ = std::fs::remove_dir_all(&dir);
                        }
                    }
                },
                (ContainerKind::Run { .. }, RunState::Running) if !alive(c.state.shim_pid, c.state.shim_start) => {
                    info!("recover: container {} exited while the daemon was down", c.name);
                    self.on_exit(&c.id);
                }
                (ContainerKind::Run { .. }, RunState::Stopping) => {
                    if let (true, Some(pid)) = (alive(c.state.shim_pid, c.state.shim_start), c.state.pid) {
                        shim::signal_group(pid, libc::SIGKILL);
                        for _ in 0..200 {
                            if !alive(c.state.shim_pid, c.state.shim_start) {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                    }
                    self.on_exit(&c.id);
                }
                (_, RunState::Removing) => {
                    info!("recover: finishing removal of {}", c.name);
                    self.unplumb(&c.endpoints().map(|(_, e)| e.host_ifname.clone()).collect::<Vec<_>>());
                    let _ = self.kernel.flush_conntrack(&c.ports);
                    self.st().containers.remove(&c.id);
                    self.commit(&[Op::DelContainer(&c.id)], true)?;
                }
                (ContainerKind::Attached { netns }, RunState::Starting | RunState::Running) => {
                    if self.kernel.check_netns(std::path::Path::new(netns)).is_err() {
                        info!("recover: namespace of attached container {} is gone; removing it", c.name);
                        self.unplumb(&c.endpoints().map(|(_, e)| e.host_ifname.clone()).collect::<Vec<_>>());
                        self.st().containers.remove(&c.id);
                        self.commit(&[Op::DelContainer(&c.id)], true)?;
                    } else if c.state.status == RunState::Starting {
                        let rec = {
                            let mut st = self.st();
                            let mut cur = st.containers.get_mut(&c.id).unwrap();
                            cur.state.status = RunState::Running;
                            cur.clone()
                        };
                        self.commit(&[Op::PutContainer(&rec)], true)?;
                    }
                }
                _ => {}
            }
            // Endpoint-level intents (network connect/disconnect).
            let (rec, gone) = {
                let mut st = self.st();
                let Some(mut cur) = st.containers.get_mut(&c.id) else { continue };
                let mut changed = false;
                let mut gone = Vec::new();
                let live = cur.state.status.is_live();
                for a in cur.attachments.iter_mut() {
                    match a.endpoint.as_ref().map(|e| e.state) {
                        Some(EndpointState::Pending) if live => {
                            a.endpoint.as_mut().unwrap().state = EndpointState::Up;
                            changed = true;
                        }
                        Some(EndpointState::Removing) => {
                            gone.push(a.endpoint.take().unwrap().host_ifname);
                            changed = true;
                        }
                        _ => {}
                    }
                }
                let rec = changed.then(|| cur.clone());
                (rec, gone)
            };
            self.unplumb(&gone);
            if let Some(rec) = rec {
                self.commit(&[Op::PutContainer(&rec)], true)?;
            }
        }
        Ok(())
    }
}
