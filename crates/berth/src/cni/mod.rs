//! berth as a CNI plugin: what the binary does when a runtime execs it with
//! `CNI_COMMAND` set (`"type": "berth"` in a network configuration).
//!
//! The pure part — configuration, `CNI_ARGS`, results in every version,
//! the mapping of attachments to berth containers — is
//! `berth_core::cni`. Here: reading stdin and the environment, execing
//! delegated IPAM plugins, and the one request to the daemon of the
//! caller's network namespace (started, detached, when none answers).
//! VERSION answers at once, without the daemon or the configuration
//! (podman sends it to every plugin before nearly every command).

mod add;
mod daemon;
mod delegate;
mod ops;

use std::io::{Read, Write};
use std::process::ExitCode;

use berth_core::cni::{self, code, CniError, Command, PluginConfig};

/// Stdin beyond this is refused (a configuration is a few KiB; a 10,000-port
/// `portMappings` about 700 KiB).
const MAX_STDIN: u64 = 8 << 20;

/// The `CNI_*` variables; empty counts as unset, as libcni sets all of
/// them whether it has a value or not.
pub struct Env {
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: String,
    pub path: Option<String>,
}

impl Env {
    fn read() -> Env {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env { container_id: get("CNI_CONTAINERID"), netns: get("CNI_NETNS"), ifname: get("CNI_IFNAME"), args: get("CNI_ARGS").unwrap_or_default(), path: get("CNI_PATH") }
    }

    /// The variables a command needs (spec 1.0 "Input"), checked for presence
    /// and form: all missing ones are named in one error (code 4).
    fn require(&self, id: bool, netns: bool, ifname: bool) -> Result<(), CniError> {
        let mut missing = Vec::new();
        if id && self.container_id.is_none() {
            missing.push("CNI_CONTAINERID");
        }
        if netns && self.netns.is_none() {
            missing.push("CNI_NETNS");
        }
        if ifname && self.ifname.is_none() {
            missing.push("CNI_IFNAME");
        }
        if !missing.is_empty() {
            return Err(CniError::env(&missing, "required by this command (CNI spec, section 2)"));
        }
        if let Some(i) = &self.container_id {
            cni::validate_container_id(i)?;
        }
        if let Some(i) = &self.ifname {
            cni::validate_ifname(i)?;
        }
        Ok(())
    }

    pub fn id(&self) -> &str {
        self.container_id.as_deref().unwrap_or_default()
    }

    pub fn ifname(&self) -> &str {
        self.ifname.as_deref().unwrap_or_default()
    }
}

fn read_stdin() -> Result<Vec<u8>, CniError> {
    let mut buf = Vec::new();
    std::io::stdin().take(MAX_STDIN + 1).read_to_end(&mut buf).map_err(|e| CniError::new(code::IO, "reading the network configuration from stdin", e.to_string()))?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(CniError::new(code::IO, "reading the network configuration from stdin", format!("more than {MAX_STDIN} bytes")));
    }
    Ok(buf)
}

/// The version to label an error with: the configuration's when it has
/// one (even one berth does not speak), else the newest.
fn label_of(stdin: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(|s| s.as_str()).map(str::to_string))
        .filter(|s| !s.is_empty() && s.len() < 32)
        .unwrap_or_else(|| cni::CURRENT_VERSION.to_string())
}

fn print(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

pub fn main() -> ExitCode {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        // Nothing but the answer: no daemon, no state, no check of the input.
        let stdin = read_stdin().unwrap_or_default();
        print(&cni::version_answer(&stdin));
        return ExitCode::SUCCESS;
    }
    let stdin = match read_stdin() {
        Ok(b) => b,
        Err(e) => {
            print(&e.to_json(cni::CURRENT_VERSION));
            return ExitCode::from(1);
        }
    };
    let label = label_of(&stdin);
    match run(&command, &stdin) {
        Ok(Some(out)) => {
            print(&out);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth (CNI {command}): {e}");
            print(&e.to_json(&label));
            ExitCode::from(1)
        }
    }
}

/// Commands that need a minimum configuration version (skel's rule).
fn needs(conf: &PluginConfig, min: cni::Version, what: &str) -> Result<(), CniError> {
    if conf.version.is_some_and(|v| v >= min) {
        Ok(())
    } else {
        Err(CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions", format!("config version {:?} does not allow {what} (needs {} or later)", conf.version_label, min.as_str())))
    }
}

fn run(command: &str, stdin: &[u8]) -> Result<Option<serde_json::Value>, CniError> {
    let cmd = Command::parse(command)?;
    let env = Env::read();
    let conf = cni::parse_config(stdin)?;
    match cmd {
        Command::Add => {
            env.require(true, true, true)?;
            add::add(&conf, &env, stdin).map(Some)
        }
        Command::Del => {
            env.require(true, false, true)?;
            ops::del(&conf, &env, stdin).map(|()| None)
        }
        Command::Check => {
            needs(&conf, cni::Version::V040, "CHECK")?;
            env.require(true, true, true)?;
            ops::check(&conf, &env, stdin).map(|()| None)
        }
        Command::Status => {
            needs(&conf, cni::Version::V110, "STATUS")?;
            ops::status(&conf, &env, stdin).map(|()| None)
        }
        Command::Gc => {
            needs(&conf, cni::Version::V110, "GC")?;
            ops::gc(&conf, &env, stdin).map(|()| None)
        }
        Command::Version => unreachable!("answered before"),
    }
}
