//! Watching container shims: each running container has a task waiting on
//! a pidfd of its shim; when the shim exits, the container's network is
//! taken down (`on_exit`). Works equally for shims this daemon started and
//! for shims adopted after a restart (pidfds need no parent relation).

use std::sync::Arc;

use berth_core::model::{ContainerKind, RunState};
use berth_linux::{proc, shim};
use tokio::io::unix::AsyncFd;
use tracing::warn;

use crate::daemon::Daemon;

impl Daemon {
    /// Starts watching the shim of container `id`.
    pub fn watch(&self, id: &str, shim_pid: u32, shim_start: u64) {
        let (Some(rt), Some(me)) = (self.rt.clone(), self.me()) else { return };
        let id = id.to_string();
        let fd = match shim::pidfd_open(shim_pid) {
            Ok(fd) if proc::is_same_process(shim_pid, shim_start) => fd,
            _ => {
                // Already gone: handle the exit now (off the caller's thread).
                rt.spawn_blocking(move || me.on_exit(&id));
                return;
            }
        };
        rt.spawn(async move {
            // SAFETY: the task owns the pidfd for as long as AsyncFd holds it.
            match unsafe { AsyncFd::register(fd) } {
                Ok(afd) => {
                    let _ = afd.readable().await;
                }
                Err(e) => warn!("watching shim {shim_pid}: {e}"),
            }
            let _ = tokio::task::spawn_blocking(move || me.on_exit(&id)).await;
        });
    }

    /// Watches every running container (after start-up recovery).
    pub fn watch_all(&self) {
        let running: Vec<(String, u32, u64)> = {
            let st = self.st();
            st.containers
                .values()
                .filter(|c| matches!(c.kind, ContainerKind::Run { .. }) && c.state.status == RunState::Running)
                .filter_map(|c| Some((c.id.clone(), c.state.shim_pid?, c.state.shim_start?)))
                .collect()
        };
        for (id, pid, start) in running {
            self.watch(&id, pid, start);
        }
    }

    fn me(&self) -> Option<Arc<Daemon>> {
        self.me.get().and_then(|w| w.upgrade())
    }
}
