//! Containers: run, start, stop, rm (processes berth supervises) and attach,
//! detach (namespaces a runtime gives us).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_core::files::{render_hosts, render_resolv, render_resolv_embedded, HostsEntry};
use berth_core::model::{
    Attachment, Container, ContainerKind, ContainerState, EndpointState, RunState, DEFAULT_NETWORK,
};
use berth_core::names::{validate_hostname, validate_name};
use berth_core::nft::{container_elements, Element};
use berth_core::ports::parse_ports;
use berth_core::request::{check_static_ips, parse_env, parse_link, parse_mac, validate_ifname, AttachRequest, RunRequest};
use berth_core::CoreError;
use berth_linux::shim::{self, ShimSpec};
use tracing::{info, warn};

use super::endpoint::{allocate, plans};
use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use crate::firewall::{ctr_owner, Owner};
use berth_linux::kernel::NsRef;
use crate::state::State;
use crate::store::Op;
use crate::util::{new_id, now};

/// Containers whose link elements involve `c`: those it links to and those
/// linking to it (found through the state's indexes, not by a scan).
/// Containers on other hosts count too: a link may cross hosts.
pub fn related<'a>(st: &'a State, c: &Container) -> Vec<&'a Container> {
    let mut v: Vec<&Container> = st.containers.linking_to(&c.name).chain(st.remote.linking_to(&c.name)).filter(|o| o.id != c.id).collect();
    for l in &c.links {
        let targets = st.containers.by_name(&l.name).into_iter().chain(st.remote.by_lname(&l.name.to_ascii_lowercase()).filter(|t| t.name == l.name));
        for t in targets {
            if t.id != c.id && !v.iter().any(|o| o.id == t.id) {
                v.push(t);
            }
        }
    }
    v
}

/// What container `c` wants in the firewall given the current state.
pub fn wants_of(st: &State, c: &Container) -> BTreeSet<Element> {
    container_elements(c, &related(st, c), &st.all_policies())
}

/// The firewall wants of container `c` (as it is in the state now, or
/// nothing if it is gone) and of every container linked to or from it
/// (their link elements depend on its address). `c` is the caller's copy,
/// which still knows the links of a container already removed.
pub fn fw_wants(st: &State, c: &Container) -> Vec<(Owner, BTreeSet<Element>)> {
    let mut out = Vec::new();
    let partners: Vec<&Container> = match st.containers.get(&c.id) {
        Some(me) => {
            out.push((ctr_owner(&c.id), wants_of(st, me)));
            related(st, me)
        }
        None => {
            out.push((ctr_owner(&c.id), BTreeSet::new()));
            related(st, c)
        }
    };
    for p in partners {
        out.push((ctr_owner(&p.id), wants_of(st, p)));
    }
    out
}

/// Docker's link environment variables for alias `alias` of `target`.
fn link_env(alias: &str, me: &str, target: &Container) -> Vec<(String, String)> {
    let prefix: String = alias.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    // Docker's link variables carry the IPv4 address; an IPv6-only target has only the other.
    let ips: Vec<std::net::IpAddr> = target.endpoints().flat_map(|(_, e)| e.ips().collect::<Vec<_>>()).collect();
    let Some(ip) = ips.iter().find(|i| i.is_ipv4()).or(ips.first()).copied() else { return vec![] };
    let mut v = vec![(format!("{prefix}_NAME"), format!("/{me}/{alias}"))];
    let ports = target.exposed_ports();
    if let Some(first) = ports.first() {
        v.push((format!("{prefix}_PORT"), format!("{}://{ip}:{}", first.proto, first.port)));
    }
    for p in ports {
        let base = format!("{prefix}_PORT_{}_{}", p.port, p.proto.as_str().to_uppercase());
        v.push((base.clone(), format!("{}://{ip}:{}", p.proto, p.port)));
        v.push((format!("{base}_ADDR"), ip.to_string()));
        v.push((format!("{base}_PORT"), p.port.to_string()));
        v.push((format!("{base}_PROTO"), p.proto.to_string()));
    }
    v
}

impl Daemon {
    /// After `c`'s ports are published: UDP flows that reached the host on
    /// them before (a client retrying all along) start over, through the
    /// new mapping. TCP needs nothing: a new connection is a new flow.
    fn forget_early_flows(&self, c: &Container) {
        let udp: Vec<_> = c.ports.iter().filter(|m| m.container.proto == berth_core::model::Proto::Udp).copied().collect();
        if let Err(e) = self.kernel.forget_early_flows(&udp) {
            warn!("conntrack flush of early flows to {}'s ports: {e}", c.name);
        }
    }

    /// Brings the firewall elements of `c` and its link partners up to date.
    pub fn sync_fw(&self, c: &Container) -> Result<()> {
        self.fw.sync(self.kernel.as_ref(), || fw_wants(&self.st(), c))
    }

    pub fn runtime_dir(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.cfg.root.join("containers").join(id).join("log")
    }

    /// Validates a `run` request into a new container (not yet stored).
    fn build(&self, st: &State, req: &RunRequest, id: &str) -> Result<Container> {
        if req.cmd.is_empty() || req.cmd[0].is_empty() {
            return Err(CoreError::EmptyCommand.into());
        }
        let name = match &req.name {
            Some(n) => {
                validate_name(n)?;
                n.clone()
            }
            None => format!("berth-{}", &id[..12]),
        };
        if st.container_by_name(&name).is_some() {
            return Err(CoreError::DuplicateContainer(name).into());
        }
        let hostname = match &req.hostname {
            Some(h) => {
                validate_hostname(h)?;
                h.clone()
            }
            None => id[..12].to_string(),
        };
        let net_key = req.network.clone().unwrap_or_else(|| DEFAULT_NETWORK.to_string());
        let mut attachments = Vec::new();
        match net_key.as_str() {
            "none" => {
                if req.ip.is_some() || req.ip6.is_some() || !req.network_aliases.is_empty() || !req.publish.is_empty() {
                    return Err(CoreError::OptionsOnNoneNetwork.into());
                }
            }
            "host" | "container" => return Err(CoreError::UnsupportedNetworkMode(net_key).into()),
            key => {
                let net = st.network(key)?;
                for a in &req.network_aliases {
                    validate_name(a)?;
                }
                if net.predefined && !req.network_aliases.is_empty() {
                    return Err(CoreError::AliasesNeedUserNetwork.into());
                }
                let static_ips = check_static_ips(net, req.ip, req.ip6)?;
                attachments.push(Attachment { network_id: net.id.clone(), static_ips, aliases: req.network_aliases.clone(), mac: None, ifname: None, endpoint: None });
            }
        }
        let (expose, publish) = parse_ports(&req.expose, &req.publish)?;
        let mut links = Vec::new();
        for l in &req.links {
            let link = parse_link(l)?;
            let target = st.link_target(&link.name).ok_or_else(|| CoreError::NoSuchContainer(link.name.clone()))?;
            if !target.state.status.is_live() {
                return Err(DaemonError::Conflict(format!("Cannot link to a non running container: /{}", link.name)));
            }
            if !target.attachments.iter().any(|t| attachments.iter().any(|a| a.network_id == t.network_id)) {
                return Err(DaemonError::Conflict(format!("Cannot link to /{}, as it does not belong to the same network", link.name)));
            }
            links.push(link);
        }
        let env = req.env.iter().map(|e| parse_env(e)).collect::<Result<Vec<_>, _>>()?;
        let mut c = Container::new(id, &name, ContainerKind::Run { cmd: req.cmd.clone() }, now());
        c.hostname = hostname;
        c.attachments = attachments;
        (c.expose, c.publish, c.publish_all) = (expose, publish, req.publish_all);
        (c.links, c.link_env, c.dns, c.env) = (links, req.link_env, req.dns.clone(), env);
        Ok(c)
    }

    /// `berth run`: create and start. Returns the id once the command runs
    /// with its network up.
    pub fn run(&self, req: &RunRequest) -> Result<String> {
        let id = new_id();
        let c = {
            let st = self.st();
            self.build(&st, req, &id)?
        };
        self.start_container(c, true)
    }

    /// `berth start`: start an exited container again (new addresses unless static).
    pub fn start(&self, key: &str) -> Result<String> {
        let c = {
            let st = self.st();
            let c = st.container(key)?.clone();
            match (&c.kind, c.state.status) {
                (ContainerKind::Run { .. }, RunState::Created | RunState::Exited) => {}
                (ContainerKind::Run { .. }, RunState::Running) => return Ok(c.id),
                (ContainerKind::Attached { .. }, _) => return Err(DaemonError::Conflict(format!("container {} is attached, not run by berth", c.name))),
                (_, s) => return Err(DaemonError::Conflict(format!("container {} is {}", c.name, s.as_str()))),
            }
            c
        };
        self.start_container(c, false)
    }

    /// Allocates, records the intent, spawns the shim, plumbs, lets the command run.
    fn start_container(&self, mut c: Container, new: bool) -> Result<String> {
        let id = c.id.clone();
        let nets: Vec<String> = c.attachments.iter().map(|a| a.network_id.clone()).collect();
        self.ensure_blocks(nets.iter())?;
        {
            let mut st = self.st();
            if new && st.container_by_name(&c.name).is_some() {
                return Err(CoreError::DuplicateContainer(c.name.clone()).into());
            }
            allocate(&mut st, &mut c, None)?;
            c.ports = super::ports::allocate(&st, self.kernel.as_ref(), &c)?;
            c.link_vars = if c.link_env {
                c.links.iter().filter_map(|l| st.link_target(&l.name).map(|t| link_env(&l.alias, &c.name, t))).flatten().collect()
            } else {
                vec![]
            };
            c.state = ContainerState { status: RunState::Starting, started_at: now(), ..ContainerState::created() };
            st.containers.insert(id.clone(), c.clone());
        }
        // A start spawns a process, which reconcile could not clean up if the
        // intent were lost: it is made durable before anything is spawned.
        if let Err(e) = self.commit(&[Op::PutContainer(&c)], true) {
            return Err(e.with_rollback(self.forget_start(&c, new)));
        }
        match self.launch(&c) {
            Ok(()) => {
                self.top_up_blocks(nets.iter());
                Ok(id)
            }
            Err(e) => {
                warn!("starting {} failed: {e}", c.name);
                Err(e.with_rollback(self.forget_start(&c, new)))
            }
        }
    }

    /// The kernel part of a start; undoes its own work on failure.
    fn launch(&self, c: &Container) -> Result<()> {
        let dir = self.runtime_dir(&c.id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| DaemonError::Internal(format!("mkdir {}: {e}", dir.display())))?;
        let log = self.log_path(&c.id);
        std::fs::create_dir_all(log.parent().unwrap()).map_err(|e| DaemonError::Internal(e.to_string()))?;
        let mut env = c.env.clone();
        env.extend(c.link_vars.iter().cloned());
        let ContainerKind::Run { cmd } = &c.kind else { unreachable!("only run containers are launched") };
        let spec = ShimSpec { id: c.id.clone(), hostname: c.hostname.clone(), cmd: cmd.clone(), env, dir: dir.clone(), log };
        self.write_runtime_files(c)?;
        let spec_file = dir.join("spec.json");
        std::fs::write(&spec_file, serde_json::to_vec(&spec).unwrap()).map_err(|e| DaemonError::Internal(e.to_string()))?;
        let pending = shim::spawn(&self.exe, &spec_file)?;
        let ns = NsRef::Pid(pending.pid);
        let plans: Vec<_> = plans(&self.st(), c).into_iter().map(|(_, p)| p).collect();
        if let Err(e) = self.plumb(&ns, &plans) {
            pending.abort();
            return Err(e);
        }
        let undo_kernel = |d: &Daemon| d.unplumb_plans(Some(&ns), &plans);
        if let Err(e) = self.sync_fw(c) {
            pending.abort();
            undo_kernel(self);
            return Err(e);
        }
        self.forget_early_flows(c);
        let shim_pid = pending.pid;
        let started = match pending.go() {
            Ok(s) => s,
            Err(e) => {
                shim::reap(shim_pid);
                undo_kernel(self);
                return Err(e.into());
            }
        };
        let done = {
            let mut st = self.st();
            let Some(mut cur) = st.containers.get_mut(&c.id) else {
                // Removed meanwhile (cannot happen: removals wait for starts to settle).
                drop(st);
                shim::signal_group(started.pid, libc::SIGKILL);
                undo_kernel(self);
                return Err(DaemonError::Conflict(format!("container {} was removed while starting", c.name)));
            };
            cur.state.status = RunState::Running;
            cur.state.pid = Some(started.pid);
            cur.state.shim_pid = Some(started.shim_pid);
            cur.state.shim_start = Some(started.shim_start);
            for a in cur.attachments.iter_mut() {
                if let Some(e) = a.endpoint.as_mut() {
                    e.state = EndpointState::Up;
                }
            }
            cur.clone()
        };
        if let Err(e) = self.commit(&[Op::PutContainer(&done)], false) {
            warn!("recording start of {}: {e}", c.name);
        }
        self.refresh_link_hosts(&c.name);
        self.watch(&c.id, started.shim_pid, started.shim_start);
        info!("container {} running (pid {})", c.name, started.pid);
        Ok(())
    }

    /// Rolls a failed start back: releases addresses and ports, forgets the
    /// record of a new container (or returns an old one to Exited). Says
    /// what could not be undone.
    fn forget_start(&self, c: &Container, new: bool) -> Result<()> {
        let record = {
            let mut st = self.st();
            if new {
                st.containers.remove(&c.id);
                None
            } else {
                st.containers.get_mut(&c.id).map(|mut cur| {
                    cur.mark_start_failed();
                    cur.clone()
                })
            }
        };
        let fw = self.sync_fw(c);
        let store = match &record {
            Some(rec) => self.commit(&[Op::PutContainer(rec)], false),
            None => self.commit(&[Op::DelContainer(&c.id)], false),
        };
        if new {
            let _ = std::fs::remove_dir_all(self.runtime_dir(&c.id));
            let _ = std::fs::remove_dir_all(self.log_path(&c.id).parent().unwrap());
        }
        fw.and(store)
    }

    /// Writes /etc/hosts, /etc/resolv.conf and /etc/hostname of a run
    /// container. Rewritten in place (same inode), so the bind mounts inside
    /// the container see every update.
    pub fn write_runtime_files(&self, c: &Container) -> Result<()> {
        let dir = self.runtime_dir(&c.id);
        if !dir.exists() {
            return Ok(());
        }
        let (own, extra, resolver) = {
            let st = self.st();
            // The first user-defined network's resolver answers this container.
            let resolver = c.attachments.iter().filter_map(|a| st.networks.get(&a.network_id)).map(Daemon::dns_addresses).find(|a| !a.is_empty());
            let own: Vec<_> = c.endpoints().flat_map(|(_, e)| e.ips().collect::<Vec<_>>()).collect();
            let mut extra = Vec::new();
            for l in &c.links {
                if let Some(t) = st.link_target(&l.name).filter(|t| t.state.status.is_live()) {
                    // The linked container's addresses on a network we share.
                    let shared = t.endpoints().find(|(ta, _)| c.attachments.iter().any(|a| a.network_id == ta.network_id));
                    for ip in shared.map(|(_, e)| e.ips().collect::<Vec<_>>()).unwrap_or_default() {
                        let mut names = vec![l.alias.clone()];
                        if l.alias != l.name {
                            names.push(l.name.clone());
                        }
                        extra.push(HostsEntry { ip, names });
                    }
                }
            }
            (own, extra, resolver)
        };
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = match resolver {
            Some(ips) => render_resolv_embedded(&host_resolv, &ips),
            None => render_resolv(&host_resolv, &c.dns),
        };
        let w = |p: &Path, s: String| std::fs::write(p, s).map_err(|e| DaemonError::Internal(format!("write {}: {e}", p.display())));
        w(&shim::hosts_path(&dir), render_hosts(&c.hostname, &own, &extra))?;
        w(&shim::resolv_path(&dir), resolv)?;
        w(&shim::hostname_path(&dir), format!("{}\n", c.hostname))?;
        Ok(())
    }

    /// Rewrites the hosts files of containers that link to `name`.
    pub fn refresh_link_hosts(&self, name: &str) {
        let linking: Vec<Container> = {
            let st = self.st();
            st.containers.linking_to(name).filter(|o| o.state.status.is_live()).cloned().collect()
        };
        for o in linking {
            if let Err(e) = self.write_runtime_files(&o) {
                warn!("updating /etc/hosts of {}: {e}", o.name);
            }
        }
    }

    /// `berth stop`: SIGTERM to the command's process group, SIGKILL after
    /// `timeout`; returns once the container has exited and its network is down.
    pub fn stop(&self, key: &str, timeout: Duration) -> Result<()> {
        let id = self.st().container_id(key)?;
        self.wait_settled(&id);
        let (id, pid) = {
            let st = self.st();
            let c = st.container(key)?;
            if !c.is_run() {
                return Err(DaemonError::Conflict(format!("container {} is attached, not run by berth: use detach", c.name)));
            }
            match c.state.status {
                RunState::Running | RunState::Stopping => (c.id.clone(), c.state.pid),
                _ => return Ok(()),
            }
        };
        if let Some(pid) = pid {
            if timeout.is_zero() {
                shim::signal_group(pid, libc::SIGKILL);
            } else {
                shim::signal_group(pid, libc::SIGTERM);
                if !self.wait_exited(&id, timeout) {
                    shim::signal_group(pid, libc::SIGKILL);
                }
            }
        }
        if !self.wait_exited(&id, Duration::from_secs(10)) {
            // The watcher may be gone (e.g. no runtime in tests): handle the exit here.
            self.on_exit(&id);
        }
        Ok(())
    }

    /// Polls until the container is no longer live.
    pub fn wait_exited(&self, id: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let live = self.st().containers.get(id).is_some_and(|c| c.state.status.is_live());
            if !live {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The shim of container `id` exited: take its network down and record
    /// the exit status. Idempotent.
    pub fn on_exit(&self, id: &str) {
        // One teardown per exit, however many callers notice it.
        if !self.exiting.lock().unwrap().insert(id.to_string()) {
            return;
        }
        self.exit_teardown(id);
        self.exiting.lock().unwrap().remove(id);
    }

    fn exit_teardown(&self, id: &str) {
        let c = {
            let mut st = self.st();
            let Some(mut c) = st.containers.get_mut(id) else { return };
            if !c.state.status.is_live() {
                return;
            }
            c.state.status = RunState::Stopping;
            c.clone()
        };
        if let Err(e) = self.commit(&[Op::PutContainer(&c)], true) {
            warn!("recording stop of {}: {e}", c.name);
        }
        if let Some(sp) = c.state.shim_pid {
            shim::reap(sp);
        }
        self.unplumb_endpoints(&c);
        // Release addresses and ports (still "stopping": whoever waits for
        // the exit waits until the NAT state is gone too).
        {
            let mut st = self.st();
            if let Some(mut cur) = st.containers.get_mut(id) {
                for a in cur.attachments.iter_mut() {
                    a.endpoint = None;
                }
                cur.ports.clear();
            };
        }
        if let Err(e) = self.sync_fw(&c) {
            warn!("firewall update after {} exited: {e}", c.name);
        }
        if let Err(e) = self.kernel.flush_conntrack(&c.ports) {
            warn!("conntrack flush after {} exited: {e}", c.name);
        }
        let exit = shim::read_exit(&self.runtime_dir(id));
        let done = {
            let mut st = self.st();
            let Some(mut cur) = st.containers.get_mut(id) else { return };
            cur.state.status = RunState::Exited;
            cur.state.exit_code = Some(exit.unwrap_or(137));
            cur.state.finished_at = now();
            cur.state.pid = None;
            cur.state.shim_pid = None;
            cur.clone()
        };
        if let Err(e) = self.commit(&[Op::PutContainer(&done)], false) {
            warn!("recording exit of {}: {e}", c.name);
        }
        self.refresh_link_hosts(&c.name);
        info!("container {} exited with {}", c.name, done.state.exit_code.unwrap_or(-1));
    }

    /// `berth rm [-f]`.
    pub fn remove(&self, key: &str, force: bool) -> Result<()> {
        let id = self.st().container_id(key)?;
        self.wait_settled(&id);
        let (id, name, live, attached) = {
            let st = self.st();
            let c = st.container(key)?;
            (c.id.clone(), c.name.clone(), c.state.status.is_live(), !c.is_run())
        };
        if attached {
            return self.detach(&id);
        }
        if live {
            if !force {
                return Err(DaemonError::Conflict(format!(
                    "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
                )));
            }
            self.stop(&id, Duration::ZERO)?;
        }
        let Some(gone) = self.st().containers.remove(&id) else { return Ok(()) };
        self.commit(&[Op::DelContainer(&id)], true)?;
        let _ = std::fs::remove_dir_all(self.runtime_dir(&id));
        let _ = std::fs::remove_dir_all(self.log_path(&id).parent().unwrap());
        // Links to it disappear from others' elements and hosts files.
        if let Err(e) = self.sync_fw(&gone) {
            warn!("firewall update after removing {name}: {e}");
        }
        self.refresh_link_hosts(&name);
        Ok(())
    }

    /// `berth attach --netns PATH --name NAME`: network a namespace made by
    /// someone else. Returns the new container's id.
    pub fn attach(&self, req: &AttachRequest) -> Result<String> {
        let path = PathBuf::from(&req.netns);
        validate_name(&req.name)?;
        if !req.handoff {
            self.kernel.check_netns(&path)?;
        }
        let id = new_id();
        let (expose, publish) = parse_ports(&req.expose, &req.publish)?;
        req.check_shape()?;
        let wanted: Vec<String> = {
            let st = self.st();
            req.networks().iter().filter_map(|w| st.network_id(&w.network).ok()).collect()
        };
        self.ensure_blocks(wanted.iter())?;
        let c = {
            let mut st = self.st();
            if st.container_by_name(&req.name).is_some() {
                return Err(CoreError::DuplicateContainer(req.name.clone()).into());
            }
            let mut attachments: Vec<Attachment> = Vec::new();
            for want in req.networks() {
                let net = st.network(&want.network)?;
                if attachments.iter().any(|a| a.network_id == net.id) {
                    return Err(CoreError::AlreadyConnected { container: req.name.clone(), network: net.name.clone() }.into());
                }
                for a in &want.aliases {
                    validate_name(a)?;
                }
                if net.predefined && !want.aliases.is_empty() {
                    return Err(CoreError::AliasesNeedUserNetwork.into());
                }
                let static_ips = check_static_ips(net, want.ip, want.ip6)?;
                let mac = want.mac.as_deref().map(parse_mac).transpose()?;
                if let Some(i) = &want.ifname {
                    validate_ifname(i).map_err(|reason| CoreError::InvalidOption { key: "Ifname".into(), reason })?;
                    if attachments.iter().any(|a| a.ifname.as_deref() == Some(i.as_str())) {
                        return Err(CoreError::DuplicateIfname(i.clone()).into());
                    }
                }
                attachments.push(Attachment { network_id: net.id.clone(), static_ips, aliases: want.aliases.clone(), mac, ifname: want.ifname.clone(), endpoint: None });
            }
            let mut c = Container::new(&id, &req.name, ContainerKind::Attached { netns: req.netns.clone() }, now());
            c.state = ContainerState { status: RunState::Starting, started_at: now(), ..ContainerState::created() };
            c.attachments = attachments;
            c.labels = req.labels.clone();
            c.dns = req.dns.clone();
            c.ports_reserved = req.ports_reserved;
            c.handoff = req.handoff;
            (c.expose, c.publish) = (expose, publish);
            allocate(&mut st, &mut c, None)?;
            c.ports = super::ports::allocate(&st, self.kernel.as_ref(), &c)?;
            st.containers.insert(id.clone(), c.clone());
            c
        };
        let undo = |d: &Daemon| -> Result<()> {
            d.st().containers.remove(&id);
            let fw = d.sync_fw(&c);
            let store = d.commit(&[Op::DelContainer(&id)], false);
            fw.and(store)
        };
        let plans: Vec<_> = plans(&self.st(), &c).into_iter().map(|(_, p)| p).collect();
        let ns = if req.handoff { NsRef::Handoff } else { NsRef::Path(path) };
        let applied = self.with_intent(&[Op::PutContainer(&c)], || {
            self.plumb(&ns, &plans)?;
            self.sync_fw(&c).inspect_err(|_| self.unplumb_plans(Some(&ns), &plans))
        });
        if let Err(e) = applied {
            self.unplumb_plans(Some(&ns), &plans);
            return Err(e.with_rollback(undo(self)));
        }
        self.forget_early_flows(&c);
        let done = {
            let mut st = self.st();
            let Some(mut cur) = st.containers.get_mut(&id) else {
                return Err(DaemonError::Conflict(format!("container {} was removed while attaching", c.name)));
            };
            cur.state.status = RunState::Running;
            for a in cur.attachments.iter_mut() {
                if let Some(e) = a.endpoint.as_mut() {
                    e.state = EndpointState::Up;
                }
            }
            cur.clone()
        };
        if let Err(e) = self.commit(&[Op::PutContainer(&done)], false) {
            warn!("recording attach of {}: {e}", c.name);
        }
        self.top_up_blocks(wanted.iter());
        Ok(id)
    }

    /// `berth detach NAME`: undoes `attach`.
    pub fn detach(&self, key: &str) -> Result<()> {
        let id = self.st().container_id(key)?;
        self.wait_settled(&id);
        let c = {
            let mut st = self.st();
            let id = st.container_id(key)?;
            let mut c = st.containers.get_mut(&id).expect("found");
            if c.is_run() {
                return Err(DaemonError::Conflict(format!("container {} was started by berth: use stop or rm", c.name)));
            }
            if c.state.status == RunState::Removing {
                return Err(DaemonError::Conflict(format!("removal of container {} is already in progress", c.name)));
            }
            c.state.status = RunState::Removing;
            c.clone()
        };
        let fw = self.with_intent(&[Op::PutContainer(&c)], || {
            self.unplumb_endpoints(&c);
            self.st().containers.remove(&c.id);
            self.sync_fw(&c)
        });
        if let Err(e) = self.kernel.flush_conntrack(&c.ports) {
            warn!("conntrack flush after detaching {}: {e}", c.name);
        }
        self.commit(&[Op::DelContainer(&c.id)], false)?;
        fw
    }
}
