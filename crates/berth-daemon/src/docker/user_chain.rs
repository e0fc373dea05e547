//! `--docker-user-accept`: accepts for berth's bridges in iptables'
//! `DOCKER-USER` chain, the chain dockerd keeps for other software. With
//! dockerd's default `--iptables=true` the FORWARD policy is DROP, and with
//! `bridge-nf-call-iptables=1` that drops even traffic between two
//! containers on one berth bridge; a drop in any table is final, so
//! berth's own table cannot undo it. The accepts only keep iptables out of
//! the way: what berth's table drops (icc, isolation, unpublished ports,
//! policies) stays dropped.
//!
//! The rules are `iptables -I DOCKER-USER -i BRIDGE -m comment --comment
//! berth -j ACCEPT` and the same with `-o`, for every berth bridge (and
//! `ip6tables` when dockerd made the chain there too). They are brought in
//! line with berth's bridges when dockerd activates the plugin (its own
//! start), when a Docker network is made or removed, and every few seconds
//! (berth's own networks, and a dockerd that made the chain later), so
//! they survive dockerd restarts and go with berth's networks. This is
//! the one place berth writes outside its own table, and only when asked.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::DockerPlugin;

pub const CHAIN: &str = "DOCKER-USER";
const MARK: &str = "berth";

/// The rule specs berth wants for these bridges, as `iptables -S` prints them.
pub fn wanted(bridges: &[String]) -> BTreeSet<String> {
    bridges.iter().flat_map(|b| [format!("-i {b} -m comment --comment {MARK} -j ACCEPT"), format!("-o {b} -m comment --comment {MARK} -j ACCEPT")]).collect()
}

/// berth's rules among `iptables -S DOCKER-USER` output lines.
pub fn ours(listing: &str) -> BTreeSet<String> {
    let prefix = format!("-A {CHAIN} ");
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix))
        .filter(|r| r.contains(&format!("--comment {MARK} ")))
        .map(str::to_string)
        .collect()
}

fn iptables(bin: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(bin).arg("-w").args(args).output()
}

/// Brings one family's chain in line: Some((added, removed)), or None when
/// dockerd has not made the chain (or there is no such program).
pub fn sync_family(bin: &str, bridges: &[String]) -> Option<(usize, usize)> {
    let out = iptables(bin, &["-S", CHAIN]).ok().filter(|o| o.status.success())?;
    let have = ours(&String::from_utf8_lossy(&out.stdout));
    let want = wanted(bridges);
    let mut counts = (0, 0);
    for r in want.difference(&have) {
        let mut args = vec!["-I", CHAIN, "1"];
        args.extend(r.split(' '));
        match iptables(bin, &args) {
            Ok(o) if o.status.success() => counts.0 += 1,
            Ok(o) => warn!("{bin} -I {CHAIN} 1 {r}: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => warn!("{bin}: {e}"),
        }
    }
    for r in have.difference(&want) {
        let mut args = vec!["-D", CHAIN];
        args.extend(r.split(' '));
        match iptables(bin, &args) {
            Ok(o) if o.status.success() => counts.1 += 1,
            Ok(o) => warn!("{bin} -D {CHAIN} {r}: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => warn!("{bin}: {e}"),
        }
    }
    Some(counts)
}

/// Whether iptables' FORWARD policy is DROP (dockerd's doing).
fn forward_drops() -> bool {
    iptables("iptables", &["-S", "FORWARD"]).is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "-P FORWARD DROP"))
}

impl DockerPlugin {
    /// The accepts in line with berth's bridges now; without
    /// `--docker-user-accept`, advice when dockerd's policy drops berth's traffic.
    pub fn sync_user_chain(&self) {
        let Some(dc) = self.d.cfg.docker.as_ref() else { return };
        if !dc.user_accept {
            let bridged = self.d.kernel.read_sysctl("net.bridge.bridge-nf-call-iptables").is_some_and(|v| v.trim() == "1");
            if bridged && forward_drops() && !self.advised.swap(true, std::sync::atomic::Ordering::Relaxed) {
                warn!(
                    "iptables' FORWARD policy is DROP (dockerd's --iptables=true) and bridged traffic passes iptables: it drops traffic on berth's bridges. \
                     Run berth daemon --docker-user-accept (accepts for berth's bridges in DOCKER-USER) or dockerd --iptables=false"
                );
            }
            return;
        }
        let bridges = self.d.bridge_names();
        for bin in ["iptables", "ip6tables"] {
            if let Some((added, removed)) = sync_family(bin, &bridges) {
                if added + removed > 0 {
                    info!("{bin} {CHAIN}: {added} accepts for berth's bridges added, {removed} removed");
                }
            }
        }
    }

    /// Keeps the chain in line in the background (every 3 s).
    pub fn watch_user_chain(self: &Arc<Self>) {
        if !self.d.cfg.docker.as_ref().is_some_and(|d| d.user_accept) {
            return;
        }
        let p = Arc::downgrade(self);
        let r = std::thread::Builder::new().name("docker-user".into()).spawn(move || loop {
            match p.upgrade() {
                Some(p) => p.sync_user_chain(),
                None => return,
            }
            std::thread::sleep(Duration::from_secs(3));
        });
        if let Err(e) = r {
            warn!("starting the DOCKER-USER watcher: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_berths_rules_are_ours_and_the_difference_is_what_changes() {
        let listing = "-N DOCKER-USER\n-A DOCKER-USER -i bth-1 -m comment --comment berth -j ACCEPT\n-A DOCKER-USER -s 10.0.0.1/32 -j DROP\n-A DOCKER-USER -i mine -m comment --comment berthish -j ACCEPT\n-A DOCKER-USER -j RETURN\n";
        let have = ours(listing);
        assert_eq!(have.len(), 1);
        let want = wanted(&["bth-1".into(), "berth0".into()]);
        assert_eq!(want.len(), 4);
        let add: Vec<_> = want.difference(&have).collect();
        assert_eq!(add.len(), 3);
        assert!(have.difference(&want).next().is_none());
        assert!(want.iter().all(|r| r.ends_with("-j ACCEPT") && r.contains("--comment berth ")));
    }
}
