//! A sandbox with real dockerd driving berth's plugin: the harness
//! `Sandbox` (own network and mount namespace) with a berth daemon
//! serving `--docker-plugin` at dockerd's default plugin path (in a
//! private `/run`), a cgroup2 subtree `berth-test-dk-PID-N` removed at
//! the end, and dockerd started here with its data root, exec root, pid
//! file, socket and config under the sandbox directory, `--bridge=none`
//! (no docker0), the vfs storage driver and the given `--iptables`. The
//! image `bb` is a `docker import` of a busybox-static tree.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_linux::podman_sandbox::{busybox_rootfs, private_run, CgroupTree, BUSYBOX};

use crate::common::{is_root, Sandbox};

static SEQ: AtomicUsize = AtomicUsize::new(0);

pub struct DockerBox {
    dockerd: Option<Child>,
    pub dir: PathBuf,
    pub iptables: bool,
    cg: Option<CgroupTree>,
    cgroup_parent: String,
    /// Dropped last: the plugin must outlive dockerd's last calls.
    pub s: Sandbox,
}

fn have(bin: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {bin}")).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

impl DockerBox {
    /// None (with a notice) when not root or docker is missing.
    pub fn new(iptables: bool) -> Option<DockerBox> {
        Self::with_berth_args(iptables, &[])
    }

    pub fn with_berth_args(iptables: bool, extra: &[&str]) -> Option<DockerBox> {
        if !is_root() {
            eprintln!("skipped: root tests need root");
            return None;
        }
        if !(["dockerd", "docker", "containerd", "runc"].iter().all(|b| have(b)) && Path::new(BUSYBOX).exists()) {
            eprintln!("skipped: dockerd, docker, containerd, runc or busybox-static not installed (test.sh installs them)");
            return None;
        }
        let mut s = Sandbox::bare()?;
        private_run().expect("private /run and /dev/shm");
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("berth-test-dk-{}-{n}", std::process::id());
        let cg = CgroupTree::create(&name, &s.dir).expect("cgroup subtree");
        let dir = s.dir.join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        s.extra = vec!["--docker-plugin".into(), format!("--docker-host=unix://{}", dir.join("docker.sock").display())];
        s.extra.extend(extra.iter().map(|a| a.to_string()));
        s.start_daemon();
        let mut b = DockerBox { dockerd: None, dir, iptables, cg: Some(cg), cgroup_parent: format!("dk-{}-{n}", std::process::id()), s };
        if iptables {
            // As on a host where dockerd starts first: it turns forwarding
            // on itself, and then sets the FORWARD policy to DROP.
            crate::common::sh("sysctl -qw net.ipv4.ip_forward=0");
        }
        b.start_dockerd();
        b.import_image();
        Some(b)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn start_dockerd(&mut self) {
        // Its trust key too (dockerd would write /etc/docker/key.json).
        std::fs::write(self.dir.join("daemon.json"), serde_json::json!({"deprecated-key-path": self.dir.join("key.json")}).to_string()).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("dockerd.log")).unwrap();
        let d = &self.dir;
        let child = Command::new("dockerd")
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("docker.pid").display()))
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .arg(format!("-H=unix://{}", self.socket().display()))
            .arg("--bridge=none")
            .arg(format!("--iptables={}", self.iptables))
            .arg("--storage-driver=vfs")
            .arg("--exec-opt=native.cgroupdriver=cgroupfs")
            .arg(format!("--cgroup-parent=/{}", self.cgroup_parent))
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        self.dockerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.docker(&["version", "--format", "{{.Server.Version}}"]).status.success() {
                return;
            }
            if let Some(st) = self.dockerd.as_mut().unwrap().try_wait().unwrap() {
                panic!("dockerd exited with {st}:\n{}", self.dockerd_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dockerd did not come up:\n{}", self.dockerd_log());
    }

    /// SIGTERM dockerd (SIGKILL after 20 s) and wait for it; its
    /// containerd and shims go with it.
    pub fn stop_dockerd(&mut self) {
        let Some(mut c) = self.dockerd.take() else { return };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if c.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn dockerd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn import_image(&self) {
        let root = busybox_rootfs(&self.dir).expect("busybox tree");
        let tar = self.dir.join("rootfs.tar");
        assert!(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status().unwrap().success());
        self.ok(&["import", tar.to_str().unwrap(), "bb:latest"]);
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args).env("DOCKER_HOST", format!("unix://{}", self.socket().display())).env("DOCKER_CONFIG", self.dir.join("cli")).stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run docker")
    }

    fn explain(&self, what: &str, o: &Output) -> String {
        format!(
            "{what} ({}):\n{}{}\n--- berth daemon log ---\n{}\n--- dockerd log ---\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.s.daemon_log(),
            self.dockerd_log()
        )
    }

    /// docker ARGS, which must succeed; stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "{}", self.explain(&format!("docker {args:?} failed"), &o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// docker ARGS, which must fail; stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(!o.status.success(), "{}", self.explain(&format!("docker {args:?} should have failed"), &o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// `docker network create -d berth --ipam-driver berth ARGS... NAME`.
    pub fn network(&self, name: &str, args: &[&str]) -> String {
        let mut a = vec!["network", "create", "-d", "berth", "--ipam-driver", "berth"];
        a.extend_from_slice(args);
        a.push(name);
        self.ok(&a)
    }

    /// A detached busybox container running `script` (then sleeping).
    pub fn run(&self, name: &str, opts: &[&str], script: &str) -> String {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend_from_slice(opts);
        let sh = format!("{script}; exec sleep 100000");
        a.extend_from_slice(&["bb", "/bin/sh", "-c", &sh]);
        self.ok(&a)
    }

    /// A detached httpd answering `hello-from-container` on each port.
    pub fn httpd(&self, name: &str, opts: &[&str], ports: &[u16]) -> String {
        let script: Vec<String> = ports.iter().map(|p| format!("httpd -p {p} -h /www")).collect();
        let id = self.run(name, opts, &script.join("; "));
        for p in ports {
            crate::common::wait_listening(self.pid(name), crate::common::Proto::Tcp, *p, name);
        }
        id
    }

    pub fn pid(&self, name: &str) -> u32 {
        self.ok(&["inspect", "-f", "{{.State.Pid}}", name]).parse().expect("a pid")
    }

    /// Runs a shell command in a container.
    pub fn exec(&self, name: &str, cmd: &str) -> Output {
        self.docker(&["exec", name, "/bin/sh", "-c", cmd])
    }

    /// A container's address on a Docker network.
    pub fn ip(&self, name: &str, net: &str) -> String {
        self.ok(&["inspect", "-f", &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"), name])
    }

    /// Waits (at most 15 s) until `f` holds.
    pub fn eventually(&self, what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for: {what}\n--- berth daemon log ---\n{}\n--- dockerd log ---\n{}", self.s.daemon_log(), self.dockerd_log());
    }
}

/// `GET /index.html` from a container to `host:port` (busybox `nc`;
/// its static `wget` crashes here): the body or None.
pub fn get(b: &DockerBox, from: &str, host: &str, port: u16) -> Option<String> {
    let o = b.exec(from, &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (head, body) = out.split_once("\r\n\r\n")?;
    (o.status.success() && head.contains(" 200 ")).then(|| body.trim().to_string())
}


impl Drop for DockerBox {
    fn drop(&mut self) {
        if self.dockerd.is_some() {
            let ids = String::from_utf8_lossy(&self.docker(&["ps", "-aq"]).stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut a = vec!["rm", "-f"];
                a.extend(ids);
                let _ = self.docker(&a);
            }
            let nets = String::from_utf8_lossy(&self.docker(&["network", "ls", "-q", "--filter", "driver=berth"]).stdout).into_owned();
            for n in nets.split_whitespace() {
                let _ = self.docker(&["network", "rm", n]);
            }
        }
        self.stop_dockerd();
        if let Some(cg) = self.cg.take() {
            if let Err(e) = cg.remove() {
                eprintln!("docker test cleanup: {e}");
            }
        }
    }
}
