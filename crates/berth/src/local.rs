//! A private daemon for `berth demo` and `berth bench`: a fresh network and
//! mount namespace (the host's network is never touched), a daemon with its
//! state in a temporary directory, and a cleanup that removes everything.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hyper::Method;

use crate::client::Client;

pub struct LocalDaemon {
    pub dir: PathBuf,
    child: Child,
    pub client: Client,
    shut: bool,
}

/// On an early return (an error), nothing of the daemon is left running.
impl Drop for LocalDaemon {
    fn drop(&mut self) {
        if self.shut {
            return;
        }
        berth_linux::shim::kill_all_under(&self.dir.join("run/containers"));
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.shut = true;
    }
}

/// Enters the sandbox. Must run before any other thread is started.
pub fn enter_sandbox() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("this needs root: it creates network namespaces, bridges and nftables tables (in a private sandbox)");
    }
    berth_linux::sandbox::enter().context("entering a private network namespace")?;
    Ok(())
}

/// Runs `job` (named `what` in errors) inside a fresh sandbox on a
/// single-threaded runtime: the shared start of `demo`, `bench`, `bench-dns`.
pub fn run_sandboxed<F: std::future::Future<Output = Result<u8>>>(what: &str, job: impl FnOnce() -> F) -> std::process::ExitCode {
    if let Err(e) = enter_sandbox() {
        eprintln!("berth {what}: {e:#}");
        return std::process::ExitCode::from(1);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match rt.block_on(job()) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("berth {what}: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

impl LocalDaemon {
    pub async fn start(extra: &[&str]) -> Result<LocalDaemon> {
        let out = Command::new("mktemp").args(["-d", "/tmp/berth-local.XXXXXX"]).output()?;
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let log = std::fs::File::create(dir.join("daemon.log"))?;
        let child = Command::new("/proc/self/exe")
            .arg("daemon")
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--exec-root")
            .arg(dir.join("run"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting berth daemon")?;
        let client = Client::new(Some(&format!("unix://{}", dir.join("run/berth.sock").display())))?;
        let mut d = LocalDaemon { dir, child, client, shut: false };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if d.client.raw(Method::GET, "/_ping", None).await.is_ok() {
                return Ok(d);
            }
            if let Some(st) = d.child.try_wait()? {
                bail!("daemon exited ({st}): {}", d.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("daemon did not start: {}", d.log())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn host_env(&self) -> String {
        format!("unix://{}", self.dir.join("run/berth.sock").display())
    }

    /// Removes every container, stops the daemon, deletes its state.
    pub async fn shutdown(mut self) {
        if let Ok(v) = self.client.get("/containers/json?all=1").await {
            for c in v.as_array().into_iter().flatten() {
                let id = c["Id"].as_str().unwrap_or_default();
                let _ = self.client.call(Method::DELETE, &format!("/containers/{id}?force=1"), None).await;
            }
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        self.shut = true;
    }
}
