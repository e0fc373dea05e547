//! berth as podman's network backend: the binary called `netavark` (podman
//! execs `HELPER_DIR/netavark`; install.sh links
//! `/usr/local/libexec/berth/netavark` to berth). It takes netavark's
//! command line and JSON, makes its requests to the berth daemon of the
//! caller's network namespace (started when none answers), and answers as
//! netavark does: the result on stdout, or `{"error": "..."}` on stdout
//! with exit status 1. The checking and planning is pure and lives in
//! `berth_core::netavark`; see docs/podman.md for what maps to what.

mod daemon;
mod log;
mod other;
mod setup;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_core::netavark::{version_json, Refusal};
use clap::{Parser, Subcommand};
use serde_json::Value;

/// `netavark --version` (what netavark's contract berth speaks, and berth's own).
const VERSION: &str = concat!("1.4.0 (berth ", env!("CARGO_PKG_VERSION"), ")");

/// netavark's global options, as podman (4.3 and later) passes them.
#[derive(Parser)]
#[command(name = "netavark", version = VERSION, about = "berth as podman's network backend (netavark's command line and JSON)")]
struct Args {
    /// Read the JSON from this file instead of stdin.
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// netavark's firewall driver: accepted; berth keeps its own nftables table (inet berth).
    #[arg(long, env = "NETAVARK_FW")]
    firewall_driver: Option<String>,
    /// netavark's state directory: accepted; berth keeps its state in its daemon.
    #[arg(short, long)]
    config: Option<String>,
    /// A rootless podman's call: served by a daemon under $XDG_RUNTIME_DIR/berth.
    #[arg(short, long)]
    rootless: Option<bool>,
    /// aardvark-dns: accepted; berth's own resolver answers names.
    #[arg(short, long)]
    aardvark_binary: Option<String>,
    /// Plugin drivers' directories: accepted; berth has bridge networks only.
    #[arg(long = "plugin-directory")]
    plugin_directories: Vec<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Configures the network namespace for the networks of the JSON input.
    Setup { netns: String },
    /// Undoes a setup (the same JSON input).
    Teardown { netns: String },
    /// Changes the upstream DNS servers of a network.
    Update {
        network_name: String,
        #[arg(long, required = true, num_args = 1..)]
        network_dns_servers: Vec<String>,
    },
    /// Prints version information as JSON.
    Version,
    /// Completes a network definition (netavark create's JSON in and out).
    Create,
    /// Re-applies berth's rules for every network (berth reconcile).
    #[command(name = "firewall-reload")]
    FirewallReload,
    /// netavark's firewalld listener: nothing to do for berth (firewalld never touches berth's table).
    #[command(name = "firewalld-reload")]
    FirewalldReload,
    /// netavark's DHCP proxy: not provided by berth.
    #[command(name = "dhcp-proxy")]
    DhcpProxy {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn read_input(file: &Option<PathBuf>) -> Result<Vec<u8>, Refusal> {
    let mut buf = Vec::new();
    let r = match file {
        Some(p) => std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut buf)),
        None => std::io::stdin().read_to_end(&mut buf),
    };
    r.map(|_| buf).map_err(|e| Refusal(format!("failed to load network options: IO error: {e}")))
}

/// What a subcommand prints on success (None: nothing).
async fn run(a: Args) -> Result<Option<Value>, Refusal> {
    let rootless = a.rootless.unwrap_or(false);
    if let Some(fw) = &a.firewall_driver {
        log::info(&format!("firewall driver {fw:?}: berth keeps its rules in its own nftables table (inet berth)"));
    }
    log::debug(&format!("config {:?}, aardvark {:?}, plugins {:?}: not used by berth", a.config, a.aardvark_binary, a.plugin_directories));
    match &a.cmd {
        Cmd::Setup { netns } => setup::setup(netns, &read_input(&a.file)?, rootless).await.map(Some),
        Cmd::Teardown { netns } => setup::teardown(netns, &read_input(&a.file)?, rootless).await.map(|()| None),
        Cmd::Update { network_name, network_dns_servers } => other::update(network_name, network_dns_servers, rootless).await.map(|()| None),
        Cmd::Version => Ok(Some(version_json(env!("CARGO_PKG_VERSION")))),
        Cmd::Create => other::create_network(&read_input(&a.file)?, rootless).await.map(Some),
        Cmd::FirewallReload => other::firewall_reload(rootless).await.map(|()| None),
        Cmd::FirewalldReload => {
            log::info("berth's rules live in its own nftables table, which firewalld reloads leave alone: nothing to do");
            Ok(None)
        }
        Cmd::DhcpProxy { .. } => Err(Refusal("berth has no DHCP proxy: its networks take the addresses podman's IPAM (host-local) chose".into())),
    }
}

pub fn main() -> ExitCode {
    // Usage errors too are answered as netavark's error JSON (podman shows
    // its message); only help and --version print as text.
    let a = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => return fail(&Refusal(e.render().to_string().lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_string())),
    };
    let pretty = matches!(a.cmd, Cmd::Version);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&Refusal(format!("tokio runtime: {e}"))),
    };
    let r = rt.block_on(run(a));
    drop(rt);
    let code = match r {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(v)) => {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
            println!("{}", text.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    };
    setup::finish();
    code
}

/// netavark's error answer: one line of JSON on stdout, exit status 1.
fn fail(e: &Refusal) -> ExitCode {
    println!("{}", e.to_json());
    ExitCode::from(1)
}
