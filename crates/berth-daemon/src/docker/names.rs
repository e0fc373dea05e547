//! Docker's names for berth's records: dockerd never tells a plugin a
//! container's name, so once a container joined, berth asks dockerd's API
//! (`GET /containers/json?all=1` on `--docker-host`, by default
//! `/var/run/docker.sock`) which container has the endpoint, and renames
//! its berth container to that name (so `berth ps`, `berth port NAME` and
//! `berth policy --to NAME` use Docker's names). Asked from a thread of
//! its own after the Join has been answered: dockerd finishes the
//! container's start meanwhile, and only then lists the endpoint.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{debug, warn};

use super::DockerPlugin;

/// `GET PATH` on dockerd's socket (HTTP/1.0: one answer, then close): the body.
pub fn docker_get(socket: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let head = String::from_utf8_lossy(&out[..at]).into_owned();
    if head.split_whitespace().nth(1).is_none_or(|c| c != "200") {
        return Err(std::io::Error::other(format!("dockerd answered {}", head.lines().next().unwrap_or(""))));
    }
    Ok(out[at + 4..].to_vec())
}

/// The name (without its `/`) of the container in dockerd's list that has
/// endpoint `eid`.
pub fn name_of_endpoint(list: &Value, eid: &str) -> Option<String> {
    list.as_array()?.iter().find_map(|c| {
        let nets = c["NetworkSettings"]["Networks"].as_object()?;
        nets.values().any(|n| n["EndpointID"] == eid).then(|| c["Names"][0].as_str().map(|n| n.trim_start_matches('/').to_string()))?
    })
}

impl DockerPlugin {
    /// Renames berth container `id` to the Docker name of endpoint `eid`
    /// once dockerd lists it (within 15 s), from a thread of its own.
    pub(super) fn learn_name(self: &Arc<Self>, id: String, eid: String) {
        let p = self.clone();
        let spawned = std::thread::Builder::new().name("docker-name".into()).spawn(move || {
            let Some(dc) = p.d.cfg.docker.clone() else { return };
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut last_err = None;
            while Instant::now() < deadline {
                match docker_get(&dc.docker_host, "/containers/json?all=1") {
                    Ok(body) => {
                        let list: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if let Some(name) = name_of_endpoint(&list, &eid) {
                            if let Err(e) = p.d.rename(&id, &name) {
                                warn!("docker container {name}: keeping berth's name for it: {e}");
                            }
                            return;
                        }
                    }
                    Err(e) => last_err = Some(e),
                }
                if !p.d.st().containers.contains_key(&id) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            match last_err {
                Some(e) => warn!("asking dockerd at {} for a container's name: {e}", dc.docker_host.display()),
                None => debug!("dockerd never listed endpoint {eid}"),
            }
        });
        if let Err(e) = spawned {
            warn!("starting the name lookup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_to_name() {
        let list = serde_json::json!([
            {"Names": ["/other"], "NetworkSettings": {"Networks": {"bridge": {"EndpointID": "aaa"}}}},
            {"Names": ["/web"], "NetworkSettings": {"Networks": {"n1": {"EndpointID": "bbb"}, "n2": {"EndpointID": ""}}}},
        ]);
        assert_eq!(name_of_endpoint(&list, "bbb").as_deref(), Some("web"));
        assert_eq!(name_of_endpoint(&list, "ccc"), None);
        assert_eq!(name_of_endpoint(&Value::Null, "bbb"), None);
    }
}
