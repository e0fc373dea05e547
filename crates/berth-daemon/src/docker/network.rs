//! `NetworkDriver.*`: Docker networks as berth networks, Docker endpoints
//! as berth endpoints. berth plumbs the container's interface itself at
//! Join (the same attach or connect as `berth attach` / `berth network
//! connect`), into the sandbox's namespace, and answers Join with no
//! interface for dockerd to move, only the gateway: dockerd then adds the
//! default route itself (`ip route add default via GW`), so berth adds
//! none for Docker's containers.

use std::net::IpAddr;

use berth_core::docker::network::{plan_network, NetworkPlan};
use berth_core::docker::ports::{expose_specs, publish_specs};
use berth_core::docker::{check_id, sandbox_container_name, CreateEndpoint, CreateNetwork, EndpointRef, Join};
use berth_core::ipam::to_u128;
use berth_core::model::ContainerKind;
use berth_core::request::{AttachRequest, NetworkConnect};
use berth_core::subnets::parse_cidr_any;
use berth_core::CoreError;
use serde_json::{json, Value};
use tracing::{info, warn};

use super::{DockerPlugin, EndpointState, NetState};
use crate::error::{DaemonError, Result};

fn unknown_network(id: &str) -> DaemonError {
    DaemonError::NotFound(format!("network {id} is not a berth network (was it created while berth's plugin was not running?)"))
}

impl DockerPlugin {
    /// The berth network id of a Docker network.
    fn berth_net(&self, docker_id: &str) -> Result<String> {
        self.st().networks.get(docker_id).map(|n| n.berth.clone()).ok_or_else(|| unknown_network(docker_id))
    }

    pub(super) fn create_network(&self, req: &CreateNetwork) -> Result<Value> {
        check_id("NetworkID", &req.network_id)?;
        if let Some(have) = self.st().networks.get(&req.network_id) {
            if self.d.st().networks.contains_key(&have.berth) {
                return Ok(json!({}));
            }
        }
        let ranges: Vec<berth_core::docker::ipam::Pool> = self.st().pools.keys().filter_map(|id| berth_core::docker::ipam::Pool::parse_id(id).ok()).collect();
        let range_of = |s: &ipnet::IpNet| ranges.iter().find(|p| p.subnet == *s).and_then(|p| p.range);
        let state = match plan_network(req, &range_of)? {
            NetworkPlan::Create(create) => {
                let net = self.d.network_create(&create)?;
                info!("docker network {} is berth network {} (bridge {})", &req.network_id[..12], net.name, net.bridge());
                NetState { berth: net.id, created: true }
            }
            NetworkPlan::Bind { network, subnets } => {
                let st = self.d.st();
                let net = st.network(&network)?;
                let have: Vec<_> = net.ipam.iter().map(|c| c.subnet).collect();
                if let Some(s) = subnets.iter().find(|s| !have.contains(s)) {
                    return Err(CoreError::DockerRequest(format!(
                        "CreateNetwork: subnet {s} is not berth network {network}'s ({}); use --ipam-driver berth --ipam-opt berth.network={network}",
                        have.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
                    ))
                    .into());
                }
                info!("docker network {} stands for berth network {}", &req.network_id[..12], net.name);
                NetState { berth: net.id.clone(), created: false }
            }
        };
        let berth = state.berth.clone();
        let created = state.created;
        if let Err(e) = self.update(|st| {
            st.networks.insert(req.network_id.clone(), state);
            Ok(())
        }) {
            if created {
                let _ = self.d.network_remove(&berth);
            }
            return Err(e);
        }
        Ok(json!({}))
    }

    pub(super) fn delete_network(&self, id: &str) -> Result<Value> {
        let Some(n) = self.st().networks.get(id).cloned() else { return Ok(json!({})) };
        if n.created {
            match self.d.network_remove(&n.berth) {
                Ok(()) | Err(DaemonError::Invalid(CoreError::NoSuchNetwork(_))) => {}
                Err(e) => return Err(e),
            }
        }
        self.update(|st| {
            st.networks.remove(id);
            Ok(())
        })?;
        Ok(json!({}))
    }

    pub(super) fn create_endpoint(&self, req: &CreateEndpoint) -> Result<Value> {
        check_id("EndpointID", &req.endpoint_id)?;
        self.berth_net(&req.network_id)?;
        let iface = req.interface.clone().unwrap_or_default();
        let addr = |s: &str| -> Result<Option<IpAddr>> { if s.is_empty() { Ok(None) } else { Ok(Some(parse_cidr_any(s)?.addr())) } };
        let publish = publish_specs(req.options.as_ref())?;
        let expose = expose_specs(req.options.as_ref())?;
        berth_core::ports::parse_ports(&expose, &publish)?;
        let ep = EndpointState { network: req.network_id.clone(), ip: addr(&iface.address)?, ip6: addr(&iface.address_ipv6)?, publish, expose, container: None };
        self.update(|st| {
            st.endpoints.insert(req.endpoint_id.clone(), ep);
            Ok(())
        })?;
        Ok(json!({}))
    }

    /// The berth container of a sandbox, if it has one.
    fn sandbox_container(&self, sandbox_key: &str) -> Option<String> {
        let st = self.d.st();
        let id = st.containers.values().find(|c| matches!(&c.kind, ContainerKind::Attached { netns } if netns == sandbox_key)).map(|c| c.id.clone());
        id
    }

    pub(super) fn join(self: &std::sync::Arc<Self>, req: &Join) -> Result<Value> {
        let ep = self.st().endpoints.get(&req.endpoint_id).cloned().ok_or_else(|| DaemonError::NotFound(format!("endpoint {} was never created in berth", req.endpoint_id)))?;
        let net_id = self.berth_net(&req.network_id)?;
        let name = sandbox_container_name(&req.sandbox_key)?;
        let container = match self.sandbox_container(&req.sandbox_key) {
            Some(id) => {
                let connect = NetworkConnect { container: id.clone(), ip: ep.ip, ip6: ep.ip6, aliases: vec![], ifname: None, ..Default::default() };
                self.d.network_connect(&net_id, &connect)?;
                id
            }
            None => {
                // A record of an earlier sandbox under the same name (its
                // Leave never came): it is gone, so is the record.
                let stale = self.d.st().container_by_name(&name).map(|c| c.id.clone());
                if let Some(old) = stale {
                    warn!("container {name}: dropping berth's record of an earlier sandbox");
                    self.d.detach(&old)?;
                }
                let attach = AttachRequest {
                    netns: req.sandbox_key.clone(),
                    name,
                    network: Some(net_id.clone()),
                    ip: ep.ip,
                    ip6: ep.ip6,
                    publish: ep.publish.clone(),
                    expose: ep.expose.clone(),
                    labels: [("com.docker.sandbox".to_string(), req.sandbox_key.clone())].into(),
                    handoff: true,
                    ..Default::default()
                };
                let id = self.d.attach(&attach)?;
                self.learn_name(id.clone(), req.endpoint_id.clone());
                id
            }
        };
        let recorded = self.update(|st| {
            if let Some(e) = st.endpoints.get_mut(&req.endpoint_id) {
                e.container = Some(container.clone());
            }
            Ok(())
        });
        if let Err(e) = recorded {
            let _ = self.unjoin(&container, &net_id);
            return Err(e);
        }
        self.join_answer(&container, &net_id)
    }

    /// Join's answer: the interface for dockerd to move into the sandbox
    /// (`bthc…`, named `ethN` there) and the network's gateways, which
    /// dockerd makes the default routes (none on an internal network).
    fn join_answer(&self, container: &str, net_id: &str) -> Result<Value> {
        let st = self.d.st();
        let host_ifname = st
            .containers
            .get(container)
            .and_then(|c| c.attachments.iter().find(|a| a.network_id == net_id))
            .and_then(|a| a.endpoint.as_ref())
            .map(|e| e.host_ifname.clone())
            .ok_or_else(|| DaemonError::Conflict(format!("container {container} left the network while joining it")))?;
        let mut out = serde_json::Map::new();
        out.insert("InterfaceName".into(), json!({"SrcName": berth_core::plan::handoff_name(&host_ifname), "DstPrefix": "eth"}));
        let Some(net) = st.networks.get(net_id) else { return Ok(Value::Object(out)) };
        if net.internal {
            return Ok(Value::Object(out));
        }
        for c in &net.ipam {
            // An address outside the subnet cannot be a next hop.
            if to_u128(c.gateway) == to_u128(c.subnet.network()) {
                continue;
            }
            let key = if c.is_ipv6() { "GatewayIPv6" } else { "Gateway" };
            out.insert(key.into(), json!(c.gateway.to_string()));
        }
        Ok(Value::Object(out))
    }

    /// Takes a container off one network: a disconnect, or a detach when
    /// it is its last.
    fn unjoin(&self, container: &str, net_id: &str) -> Result<()> {
        let attachments = match self.d.st().containers.get(container) {
            Some(c) => c.attachments.len(),
            None => return Ok(()),
        };
        let r = if attachments > 1 { self.d.network_disconnect(net_id, container) } else { self.d.detach(container) };
        match r {
            Ok(()) | Err(DaemonError::Invalid(CoreError::NoSuchContainer(_) | CoreError::NoSuchNetwork(_) | CoreError::NotConnected { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) fn leave(&self, req: &EndpointRef) -> Result<Value> {
        let Some(ep) = self.st().endpoints.get(&req.endpoint_id).cloned() else { return Ok(json!({})) };
        if let Some(c) = &ep.container {
            let net_id = self.berth_net(&req.network_id)?;
            self.unjoin(c, &net_id)?;
        }
        self.update(|st| {
            if let Some(e) = st.endpoints.get_mut(&req.endpoint_id) {
                e.container = None;
            }
            Ok(())
        })?;
        Ok(json!({}))
    }

    pub(super) fn delete_endpoint(&self, req: &EndpointRef) -> Result<Value> {
        self.leave(req)?;
        self.update(|st| {
            st.endpoints.remove(&req.endpoint_id);
            Ok(())
        })?;
        Ok(json!({}))
    }
}
