//! `berth`: the command-line client of the berth daemon, and the daemon itself
//! (`berth daemon`). See `berth --help`.

mod autostart;
mod bench;
mod bench_cni;
mod bench_dns;
mod bench_hosts;
mod bench_podman;
mod bench_peers;
mod client;
mod cmd;
mod cni;
mod demo;
mod demo_cluster;
mod local;
mod netavark;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth: container networking for Linux — Docker's network model (bridges,
/// icc, links, NAT and published ports, source policies) on netlink and
/// nftables, without per-port proxies.
#[derive(Parser)]
#[command(name = "berth", version, max_term_width = 100)]
struct Cli {
    /// Daemon socket to talk to (also BERTH_HOST).
    #[arg(short = 'H', long = "host", global = true, value_name = "unix://PATH")]
    host: Option<String>,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Daemon(cmd::daemon::DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Start a command in a new container (fresh network, UTS and mount namespaces).
    Run(cmd::container::RunArgs),
    /// Network a namespace created by someone else (a container runtime).
    Attach(cmd::container::AttachArgs),
    /// Undo `attach`.
    Detach { name: String },
    /// List containers.
    Ps {
        /// Also stopped containers.
        #[arg(short, long)]
        all: bool,
        /// Only print ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show containers as JSON (Docker's shape).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print a container's output.
    Logs {
        name: String,
        /// Keep following until the container exits.
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command inside a running container.
    Exec {
        name: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Start stopped containers.
    Start {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop containers (SIGTERM, then SIGKILL after the timeout).
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop and start containers.
    Restart {
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List a container's published ports: `80/tcp -> 0.0.0.0:32768`.
    Port {
        name: String,
        /// Only this container port (PORT[/PROTO]).
        port: Option<String>,
    },
    /// Source-address policies for container ports.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCmd),
    /// The hosts of the cluster (daemons started with --cluster-store).
    #[command(subcommand)]
    Node(cmd::node::NodeCmd),
    /// Make the kernel match the store again (e.g. after `nft flush ruleset`).
    Reconcile,
    /// Print berth's nftables table (`nft list table inet berth`).
    Rules,
    /// Show daemon-wide information.
    Info,
    /// Walk through Docker's networking story in a private sandbox.
    Demo(demo::DemoArgs),
    /// Measure attach/detach/publish latency (and the peers', when installed).
    Bench(bench::BenchArgs),
    /// Measure the embedded DNS: queries/s and latency, local and forwarded.
    BenchDns(bench_dns::BenchDnsArgs),
    /// Measure podman's networking cost with berth as its backend and with netavark.
    BenchPodman(bench_podman::BenchPodmanArgs),
    /// Measure berth as a CNI plugin against bridge + host-local + portmap.
    BenchCni(bench_cni::BenchCniArgs),
    /// Internal: print every record of the daemon's store (for tests).
    #[command(hide = true)]
    DebugStore,
    /// Internal: the per-container supervisor process.
    #[command(hide = true)]
    Shim { spec: PathBuf, go_fd: i32, status_fd: i32 },
}

fn main() -> ExitCode {
    // The same binary is the front end other programs exec: podman's
    // network backend when it is called `netavark`, a CNI plugin when a
    // runtime sets CNI_COMMAND. Each is a thin client of the daemon.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name().is_some_and(|n| n == "netavark") {
        return netavark::main();
    }
    if std::env::var_os("CNI_COMMAND").is_some() {
        return cni::main();
    }
    let cli = Cli::parse();
    if let Command::Shim { spec, go_fd, status_fd } = &cli.cmd {
        berth_linux::shim::main(spec, *go_fd, *status_fd);
    }
    if let Command::Daemon(a) = &cli.cmd {
        return cmd::daemon::run(a);
    }
    if let Command::Demo(a) = &cli.cmd {
        return demo::run(a);
    }
    if let Command::Bench(a) = &cli.cmd {
        return bench::run(a);
    }
    if let Command::BenchDns(a) = &cli.cmd {
        return bench_dns::run(a);
    }
    if let Command::BenchPodman(a) = &cli.cmd {
        return bench_podman::run(a);
    }
    if let Command::BenchCni(a) = &cli.cmd {
        return bench_cni::run(a);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let host = cli.host.clone();
    let result = rt.block_on(async move {
        let c = client::Client::new(host.as_deref())?;
        match cli.cmd {
            Command::Network(n) => cmd::network::run(&c, n).await,
            Command::Run(a) => cmd::container::run(&c, a).await,
            Command::Attach(a) => cmd::container::attach(&c, a).await,
            Command::Detach { name } => cmd::container::detach(&c, &name).await,
            Command::Ps { all, quiet } => cmd::container::ps(&c, all, quiet).await,
            Command::Inspect { names } => cmd::container::inspect(&c, &names).await,
            Command::Logs { name, follow } => cmd::container::logs(&c, &name, follow).await,
            Command::Exec { name, cmd } => cmd::container::exec(&c, &name, &cmd).await,
            Command::Start { names } => cmd::container::start(&c, &names).await,
            Command::Stop { time, names } => cmd::container::stop(&c, &names, time).await,
            Command::Restart { time, names } => cmd::container::restart(&c, &names, time).await,
            Command::Rm { force, names } => cmd::container::rm(&c, &names, force).await,
            Command::Port { name, port } => cmd::container::port(&c, &name, port.as_deref()).await,
            Command::Policy(p) => cmd::policy::run(&c, p).await,
            Command::Node(n) => cmd::node::run(&c, n).await,
            Command::Reconcile => cmd::system::reconcile(&c).await,
            Command::Rules => cmd::system::rules(&c).await,
            Command::Info => cmd::system::info(&c).await,
            Command::DebugStore => {
                let r = c.call(hyper::Method::GET, "/debug/store", None).await?;
                print!("{}", String::from_utf8_lossy(&r.body));
                Ok(0)
            }
            Command::BenchCni(_) => unreachable!(),
            Command::Daemon(_) | Command::Demo(_) | Command::Bench(_) | Command::BenchDns(_) | Command::BenchPodman(_) | Command::Shim { .. } => unreachable!(),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
