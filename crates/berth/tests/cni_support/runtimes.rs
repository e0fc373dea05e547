//! podman 4.3 (CNI backend) and containerd 1.6 (`ctr run --cni`) inside the
//! test's sandbox, as `/work/notes/cni/running.md` describes: private
//! tmpfs over the paths they hard-wire (/run, /var/lib, /opt, /dev/shm),
//! /etc/cni/net.d and /opt/cni/bin bound to the test's directory, the
//! cgroup hierarchies mounted again (the sandbox's fresh /sys hides them),
//! container cgroups under a parent named `berth-test-cni-TAG`, removed at
//! the end; every process they start is stopped by its PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{sh, Sandbox, BERTH};

/// Polls `f` for at most `secs` seconds.
pub fn poll(what: &str, secs: u64, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The mounts and directories both runtimes need; `cleanup` (also on
/// drop) kills what is left by PID and removes the cgroups.
pub struct RuntimeEnv {
    pub dir: PathBuf,
    pub tag: String,
    /// Holds berth (as a symlink) and nothing else: the runtimes find the
    /// reference plugins in /usr/lib/cni.
    pub bin: PathBuf,
    pub netd: PathBuf,
    pub rootfs: PathBuf,
}

impl RuntimeEnv {
    pub fn new(s: &Sandbox) -> Option<RuntimeEnv> {
        for b in ["podman", "runc", "conmon", "containerd", "ctr", "busybox"] {
            if !crate::common::ok(&format!("command -v {b} >/dev/null")) {
                eprintln!("skipped: {b} is not installed (test.sh installs it)");
                return None;
            }
        }
        let dir = s.dir.join("rt");
        let tag: String = s.dir.file_name().unwrap().to_string_lossy().rsplit('.').next().unwrap().to_lowercase();
        let e = RuntimeEnv { bin: dir.join("cni/bin"), netd: dir.join("net.d"), rootfs: dir.join("rootfs"), dir, tag };
        for d in [&e.bin, &e.netd, &e.rootfs] {
            std::fs::create_dir_all(d).unwrap();
        }
        // berth behind a wrapper that keeps every call's environment and
        // stdin (BERTH_CNI_LOG), for the failure messages of these tests.
        let log = e.dir.join("calls.log");
        std::fs::write(
            e.bin.join("berth"),
            format!(
                "#!/bin/sh\nin=$(cat)\n{{ date +%T.%N; env | grep -E '^(CNI_|BERTH_)'; printf '%s\\n' \"$in\"; }} >> {log}\n\
                 out=$(printf '%s' \"$in\" | {BERTH} 2>>{log}); rc=$?\nprintf 'rc=%s %s\\n' $rc \"$out\" >> {log}\nprintf '%s' \"$out\"\nexit $rc\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(e.bin.join("berth"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // The cgroup hierarchies as the host has them (remounting one is
        // joining it), before anything covers /sys/fs/cgroup's listing.
        let cg = sh("grep -E ' - cgroup2? ' /proc/self/mountinfo | awk '{print $5, $(NF-2), $NF}' | sort -u");
        sh("mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup");
        for l in cg.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 3 && f[0].starts_with("/sys/fs/cgroup/") {
                sh(&format!("mkdir -p {0} && mount -t {1} -o {2} cgroup {0}", f[0], f[1], f[2]));
            }
        }
        sh("mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/netns /run/berth");
        // The socket a plugin finds without BERTH_HOST in this namespace
        // (crate autostart: /run/berth/ns-INODE/berth.sock) leads to the
        // test's daemon: podman's cleanup runs in conmon's environment, which
        // is not the one podman was started with.
        let ino = std::fs::metadata("/proc/thread-self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
        std::fs::create_dir_all(format!("/run/berth/ns-{ino}")).unwrap();
        std::os::unix::fs::symlink(s.socket(), format!("/run/berth/ns-{ino}/berth.sock")).unwrap();
        sh("mount -t tmpfs -o mode=755 tmpfs /var/lib && mount -t tmpfs -o mode=1777 tmpfs /dev/shm");
        sh(&format!("mount -t tmpfs -o mode=755 tmpfs /opt && mkdir -p /opt/cni/bin && mount --bind {} /opt/cni/bin", e.bin.display()));
        sh(&format!("mkdir -p /etc/cni/net.d && mount --bind {} /etc/cni/net.d", e.netd.display()));
        e.busybox_tree();
        Some(e)
    }

    /// Every call the runtimes made to berth so far (environment and stdin).
    pub fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default()
    }

    pub fn cgroup_parent(&self) -> String {
        format!("berth-test-cni-{}", self.tag)
    }

    fn busybox_tree(&self) {
        let r = self.rootfs.display();
        sh(&format!(
            "mkdir -p {r}/bin {r}/etc {r}/tmp {r}/proc {r}/sys {r}/dev {r}/root {r}/www {r}/var/run && cp /usr/bin/busybox {r}/bin/busybox && \
             for a in $(/usr/bin/busybox --list); do [ $a = busybox ] || ln -sf busybox {r}/bin/$a; done && \
             echo 'root:x:0:0:root:/root:/bin/sh' > {r}/etc/passwd && echo 'root:x:0:' > {r}/etc/group && \
             echo 'hello from berth cni' > {r}/www/index.html"
        ));
    }

    /// Writes a conflist into the runtimes' config directory (replacing any other).
    pub fn conflist(&self, file: &str, list: &serde_json::Value) {
        for e in std::fs::read_dir(&self.netd).unwrap().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
        std::fs::write(self.netd.join(file), serde_json::to_vec_pretty(list).unwrap()).unwrap();
    }

    /// Kills every process whose command line names this directory, by
    /// PID, then removes the container cgroups (deepest first).
    pub fn cleanup(&self) {
        let needle = self.dir.display().to_string();
        let me = std::process::id();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            if pid == me {
                continue;
            }
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&needle) {
                // SAFETY: a process of this test's, by its pid.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        let parent = self.cgroup_parent();
        let dirs = || sh(&format!("find /sys/fs/cgroup -depth -type d -path '*/{parent}*' 2>/dev/null || true"));
        for d in dirs().lines() {
            for pid in std::fs::read_to_string(Path::new(d).join("cgroup.procs")).unwrap_or_default().split_whitespace() {
                // SAFETY: a process in this test's cgroup.
                unsafe { libc::kill(pid.parse().unwrap_or(0), libc::SIGKILL) };
            }
        }
        poll("the test's cgroups to empty and go", 10, || {
            for d in dirs().lines() {
                let _ = std::fs::remove_dir(d);
            }
            dirs().trim().is_empty()
        });
    }
}

impl Drop for RuntimeEnv {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// podman with its CNI backend, all state under the test's directory.
pub struct Podman<'a> {
    pub env: &'a RuntimeEnv,
}

impl<'a> Podman<'a> {
    pub fn new(env: &'a RuntimeEnv, s: &Sandbox) -> Podman<'a> {
        let d = env.dir.display();
        std::fs::write(
            env.dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_sysctls = []\n[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{d}/net.d\"\ncni_plugin_dirs = [\"{d}/cni/bin\", \"/usr/lib/cni\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\nlock_type = \"file\"\nruntime = \"runc\"\n\
                 tmp_dir = \"{d}/tmp\"\nstatic_dir = \"{d}/root/libpod\"\nvolume_path = \"{d}/root/volumes\"\n"
            ),
        )
        .unwrap();
        let _ = s;
        Podman { env }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let d = self.env.dir.display().to_string();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", format!("{d}/containers.conf")).env_remove("BERTH_HOST");
        c.args(["--root", &format!("{d}/root"), "--runroot", &format!("{d}/runroot"), "--tmpdir", &format!("{d}/tmp")]);
        c.args(["--network-config-dir", &format!("{d}/net.d"), "--network-backend", "cni", "--cgroup-manager", "cgroupfs"]);
        c.args(["--events-backend", "file", "--runtime", "runc", "--storage-driver", "vfs", "--log-level", "error"]);
        c.args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs podman; (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let o = self.cmd(args).output().expect("podman");
        (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string(), String::from_utf8_lossy(&o.stderr).into_owned())
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "podman {args:?} failed: {out} {err}");
        out
    }

    /// `podman run -d` of `cmd` on the busybox tree, with the cgroup and
    /// ulimit options this machine needs.
    pub fn run_d(&self, opts: &[&str], cmd: &[&str]) -> String {
        let parent = format!("--cgroup-parent=/{}", self.env.cgroup_parent());
        let mut a = vec!["run", "-d", "--cgroups=no-conmon", &parent, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
        a.extend_from_slice(opts);
        let rootfs = self.env.rootfs.display().to_string();
        a.extend_from_slice(&["--rootfs", &rootfs]);
        a.extend_from_slice(cmd);
        self.ok(&a)
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
    }
}

/// A private containerd and its `ctr`.
pub struct Containerd<'a> {
    pub env: &'a RuntimeEnv,
    child: Child,
    pub socket: String,
    pub image: String,
}

impl<'a> Containerd<'a> {
    pub fn start(env: &'a RuntimeEnv, s: &Sandbox) -> Containerd<'a> {
        let d = env.dir.join("ctrd");
        std::fs::create_dir_all(&d).unwrap();
        let dd = d.display();
        std::fs::write(
            d.join("config.toml"),
            format!("version = 2\nroot = \"{dd}/root\"\nstate = \"{dd}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{dd}/containerd.sock\"\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{dd}/opt\"\n"),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd").arg("--config").arg(d.join("config.toml")).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let socket = format!("{dd}/containerd.sock");
        let mut c = Containerd { env, child, socket, image: format!("localhost/berth-test/busybox:{}", env.tag) };
        let _ = s;
        poll("containerd's socket", 20, || c.ctr(&["version"]).0);
        c.import_image();
        let _ = &mut c;
        c
    }

    pub fn ctr(&self, args: &[&str]) -> (bool, String, String) {
        let o = Command::new("ctr").arg("-a").arg(&self.socket).args(args).env_remove("BERTH_HOST").stdin(Stdio::null()).output().expect("ctr");
        (o.status.success(), String::from_utf8_lossy(&o.stdout).trim().to_string(), String::from_utf8_lossy(&o.stderr).into_owned())
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.ctr(args);
        assert!(ok, "ctr {args:?} failed: {out} {err}");
        out
    }

    /// An OCI image layout (one uncompressed layer of the busybox tree)
    /// made with tar and sha256sum, then `ctr image import`ed.
    fn import_image(&self) {
        let l = self.env.dir.join("oci");
        let (lo, r, img) = (l.display(), self.env.rootfs.display(), &self.image);
        sh(&format!(
            "set -e; mkdir -p {lo}/blobs/sha256; cd {lo}; tar --owner=0 --group=0 --numeric-owner -C {r} -cf layer.tar .; \
             ld=$(sha256sum layer.tar | cut -d' ' -f1); ls=$(stat -c %s layer.tar); mv layer.tar blobs/sha256/$ld; \
             printf '{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{\"Env\":[\"PATH=/bin\"],\"Cmd\":[\"/bin/sh\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\"]}}}}' $ld > c.json; \
             cd2=$(sha256sum c.json | cut -d' ' -f1); cs=$(stat -c %s c.json); mv c.json blobs/sha256/$cd2; \
             printf '{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\",\"size\":%s}},\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:%s\",\"size\":%s}}]}}' $cd2 $cs $ld $ls > m.json; \
             md=$(sha256sum m.json | cut -d' ' -f1); ms=$(stat -c %s m.json); mv m.json blobs/sha256/$md; \
             printf '{{\"imageLayoutVersion\":\"1.0.0\"}}' > oci-layout; \
             printf '{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":%s,\"platform\":{{\"architecture\":\"amd64\",\"os\":\"linux\"}},\"annotations\":{{\"io.containerd.image.name\":\"{img}\",\"org.opencontainers.image.ref.name\":\"{tag}\"}}}}]}}' $md $ms > index.json; \
             tar -cf ../image.tar oci-layout index.json blobs",
            tag = self.env.tag
        ));
        self.ok(&["image", "import", &self.env.dir.join("image.tar").display().to_string()]);
    }

    /// `ctr run --cni -d` of `cmd` as container `id`.
    pub fn run_d(&self, id: &str, cmd: &[&str]) {
        let cg = format!("{}/{id}", self.env.cgroup_parent());
        let mut a = vec!["run", "--cni", "-d", "--cgroup", &cg, &self.image, id];
        a.extend_from_slice(cmd);
        self.ok(&a);
    }

    /// The task's pid.
    pub fn pid(&self, id: &str) -> u32 {
        let out = self.ok(&["task", "ls"]);
        out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f[1].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no task {id}: {out}"))
    }

    /// SIGKILL, wait until stopped, delete task and container (ctr sends no DEL).
    pub fn remove(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        poll("the task to stop", 15, || {
            let out = self.ctr(&["task", "ls"]).1;
            !out.lines().any(|l| l.split_whitespace().next() == Some(id) && !l.contains("STOPPED"))
        });
        let _ = self.ctr(&["task", "delete", id]);
        let _ = self.ctr(&["container", "rm", id]);
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        for id in self.ctr(&["container", "ls", "-q"]).1.lines().map(str::to_string).collect::<Vec<_>>() {
            self.remove(&id);
        }
        let _ = self.ctr(&["image", "rm", &self.image]);
        // SAFETY: our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
