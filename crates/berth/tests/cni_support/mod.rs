//! Helpers of the CNI root tests: the plugin exec'd as libcni execs it
//! (CNI_* environment, configuration on stdin), the reference plugins
//! beside it, and (runtimes.rs) podman and containerd sandboxed.
#![allow(dead_code)]

pub mod runtimes;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

use crate::common::{Sandbox, BERTH};

/// Debian's reference plugins.
pub const REF_DIR: &str = "/usr/lib/cni";

/// One plugin call's outcome.
#[derive(Debug)]
pub struct Call {
    pub ok: bool,
    pub out: Value,
    pub stdout: String,
    pub stderr: String,
    pub ms: f64,
}

impl Call {
    pub fn code(&self) -> u64 {
        self.out["code"].as_u64().unwrap_or(0)
    }
    #[track_caller]
    pub fn expect_ok(self) -> Value {
        assert!(self.ok, "plugin failed: {} / {}", self.stdout, self.stderr);
        self.out
    }
    #[track_caller]
    pub fn expect_err(&self, code: u64) {
        assert!(!self.ok, "plugin should have failed with code {code}: {}", self.stdout);
        assert_eq!(self.code(), code, "{} / {}", self.stdout, self.stderr);
        assert!(self.out["msg"].is_string(), "{}", self.stdout);
    }
}

/// The CNI_* environment of one call (None: unset).
#[derive(Clone, Default)]
pub struct CniEnv {
    pub command: String,
    pub id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    pub path: Option<String>,
}

impl CniEnv {
    pub fn new(command: &str, id: &str, netns: &str, ifname: &str) -> CniEnv {
        CniEnv { command: command.into(), id: Some(id.into()), netns: Some(netns.into()), ifname: Some(ifname.into()), args: Some(String::new()), path: Some(REF_DIR.into()) }
    }
    pub fn with(&self, command: &str) -> CniEnv {
        CniEnv { command: command.into(), ..self.clone() }
    }
}

/// Execs `bin` as libcni does and reads its answer.
pub fn exec(bin: &Path, env: &CniEnv, stdin: &[u8], extra_env: &[(&str, String)]) -> Call {
    let mut c = Command::new(bin);
    c.env("CNI_COMMAND", &env.command);
    for (k, v) in [("CNI_CONTAINERID", &env.id), ("CNI_NETNS", &env.netns), ("CNI_IFNAME", &env.ifname), ("CNI_ARGS", &env.args), ("CNI_PATH", &env.path)] {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = c.spawn().expect("exec plugin");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let o = child.wait_with_output().unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let out = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Call { ok: o.status.success(), out, stdout, stderr: String::from_utf8_lossy(&o.stderr).into_owned(), ms }
}

/// The berth plugin against the sandbox's daemon.
pub fn berth(s: &Sandbox, env: &CniEnv, conf: &Value) -> Call {
    exec(Path::new(BERTH), env, conf.to_string().as_bytes(), &[("BERTH_HOST", format!("unix://{}", s.socket().display()))])
}

/// A reference plugin.
pub fn reference(plugin: &str, env: &CniEnv, conf: &Value) -> Call {
    exec(&Path::new(REF_DIR).join(plugin), env, conf.to_string().as_bytes(), &[])
}

/// `conf` with the runtime's insertions: `prevResult` (when given).
pub fn with_prev(conf: &Value, prev: Option<&Value>) -> Value {
    let mut c = conf.clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    c
}

/// Runs a conflist's plugins in order as libcni does on ADD (each gets
/// the previous result, in the list's version; `runtimeConfig` as given
/// per plugin index), the plugin named `berth` being ours. The final result.
pub fn chain_add(s: &Sandbox, env: &CniEnv, list: &Value, runtime: &[(usize, Value)]) -> Value {
    let mut prev: Option<Value> = None;
    for (i, p) in list["plugins"].as_array().unwrap().iter().enumerate() {
        let mut conf = p.clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        if let Some((_, rc)) = runtime.iter().find(|(j, _)| *j == i) {
            conf["runtimeConfig"] = rc.clone();
        }
        let conf = with_prev(&conf, prev.as_ref());
        let ty = p["type"].as_str().unwrap();
        let call = if ty == "berth" { berth(s, env, &conf) } else { reference(ty, env, &conf) };
        prev = Some(call.expect_ok());
    }
    prev.unwrap()
}

/// DEL of a conflist: plugins in reverse, each with the final result.
pub fn chain_del(s: &Sandbox, env: &CniEnv, list: &Value, runtime: &[(usize, Value)], result: &Value) {
    let env = env.with("DEL");
    for (i, p) in list["plugins"].as_array().unwrap().iter().enumerate().rev() {
        let mut conf = p.clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        if let Some((_, rc)) = runtime.iter().find(|(j, _)| *j == i) {
            conf["runtimeConfig"] = rc.clone();
        }
        let conf = with_prev(&conf, Some(result));
        let ty = p["type"].as_str().unwrap();
        let call = if ty == "berth" { berth(s, &env, &conf) } else { reference(ty, &env, &conf) };
        call.expect_ok();
    }
}

/// What a container sees of its network: interfaces (name, flags, MTU),
/// addresses and routes, without the kernel's own link-local addresses,
/// the names and MACs that differ between engines by design, and `lo`,
/// which is the runtime's (berth brings it up, the reference bridge leaves it).
pub fn container_view(netns: &str) -> String {
    let n = format!("nsenter --net={netns}");
    let links = crate::common::sh(&format!("{n} ip -o link show | awk '{{print $2, $3, $4, $5}}' | sed -E 's/@[^:]*:/:/' | grep -v '^lo:' | sort"));
    let addrs = crate::common::sh(&format!("{n} ip -o addr show | grep -v ' inet6 fe80::' | awk '{{print $2, $3, $4}}' | grep -v '^lo ' | sort"));
    let routes = crate::common::sh(&format!("{n} ip route show | sed -E 's/ proto [a-z]+//; s/ metric [0-9]+//; s/ src [0-9.]+//; s/ +$//' | sort"));
    format!("{links}--\n{addrs}--\n{routes}")
}

/// A server in namespace `ns` answering `reply` on TCP `port` (socat), ready when returned.
pub fn tcp_server(ns: &str, port: u16, reply: &str) -> crate::common::Bg {
    let bg = crate::common::Bg::spawn(&format!("nsenter --net=/run/netns/{ns} socat TCP4-LISTEN:{port},fork,reuseaddr SYSTEM:'echo {reply}'"));
    bg.wait_listening(crate::common::Proto::Tcp, port);
    bg
}

/// A TCP request from namespace `ns` (None: the sandbox itself); the answer.
pub fn tcp_from(ns: Option<&str>, ip: &str, port: u16) -> Option<String> {
    let pre = ns.map(|n| format!("nsenter --net=/run/netns/{n} ")).unwrap_or_default();
    let o = crate::common::sh_out(&format!("{pre}socat -t3 -T3 - TCP4:{ip}:{port},connect-timeout=2 </dev/null"));
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !out.is_empty()).then_some(out)
}

/// The address (without prefix) of the first IPv4 `ips` entry of a result.
pub fn ip4(result: &Value) -> String {
    result["ips"].as_array().unwrap().iter().filter_map(|i| i["address"].as_str()).find(|a| !a.contains(':')).unwrap().split('/').next().unwrap().to_string()
}

/// A scratch directory of the test (under the sandbox's).
pub fn scratch(s: &Sandbox, name: &str) -> PathBuf {
    let d = s.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn conf(name: &str, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": name, "type": "berth"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// What one engine gives two containers on one network, as the
/// differential test compares it: the container's view (interfaces,
/// addresses, routes, with the subnet's prefix written X) and reachability.
pub fn observe(ns: [&str; 2], ips: [&str; 2], gw: &str, port: u16, prefix: &str) -> Vec<String> {
    let view = container_view(&format!("/run/netns/{}", ns[0])).replace(prefix, "X.");
    let _a = tcp_server(ns[0], 80, "ok-a");
    let _echo = crate::common::Bg::in_netns("outside", "socat TCP4-LISTEN:7001,fork,reuseaddr SYSTEM:'echo $SOCAT_PEERADDR'");
    _echo.wait_listening(crate::common::Proto::Tcp, 7001);
    let ping = |from: &str, to: &str| crate::common::ok(&format!("nsenter --net=/run/netns/{from} ping -c1 -W1 {to} >/dev/null"));
    vec![
        view,
        format!("container -> gateway: {}", ping(ns[0], gw)),
        format!("container -> container: {:?}", tcp_from(Some(ns[1]), ips[0], 80)),
        format!("host -> container: {:?}", tcp_from(None, ips[0], 80)),
        format!("container -> outside (seen as): {:?}", tcp_from(Some(ns[0]), "10.99.0.2", 7001)),
        format!("outside -> published port: {:?}", tcp_from(Some("outside"), "10.99.0.1", port)),
        format!("host -> published port on its own address: {:?}", tcp_from(None, "10.99.0.1", port)),
        format!("outside -> container address: {:?}", tcp_from(Some("outside"), ips[0], 80)),
    ]
}
