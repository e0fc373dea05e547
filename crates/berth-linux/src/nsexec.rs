//! `berth exec`: run a command inside a container's namespaces, like
//! `nsenter --net --uts --mount --target PID CMD`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

/// Namespaces to enter: (path, CLONE_NEW* flag).
pub fn namespaces_of_pid(pid: u32) -> Vec<(PathBuf, i32)> {
    vec![
        (format!("/proc/{pid}/ns/net").into(), libc::CLONE_NEWNET),
        (format!("/proc/{pid}/ns/uts").into(), libc::CLONE_NEWUTS),
        (format!("/proc/{pid}/ns/mnt").into(), libc::CLONE_NEWNS),
    ]
}

/// Runs `cmd` with exactly `env` (the container's environment) inside the namespaces and returns its exit
/// status (128+N when killed by signal N, 127 when it cannot be started).
pub fn run_in(namespaces: &[(PathBuf, i32)], cmd: &[String], env: &[(String, String)]) -> io::Result<i32> {
    let files: Vec<(File, i32)> = namespaces
        .iter()
        .map(|(p, flag)| File::open(p).map(|f| (f, *flag)).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display()))))
        .collect::<io::Result<_>>()?;
    let fds: Vec<(i32, i32)> = files.iter().map(|(f, flag)| (f.as_raw_fd(), *flag)).collect();
    let enters_mnt = fds.iter().any(|(_, f)| *f == libc::CLONE_NEWNS);
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).env_clear().envs(env.iter().cloned());
    if let Ok(term) = std::env::var("TERM") {
        c.env("TERM", term);
    }
    // SAFETY: setns and chdir are async-signal-safe; the child is single-threaded.
    unsafe {
        c.pre_exec(move || {
            for (fd, flag) in &fds {
                if libc::setns(*fd, *flag) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if enters_mnt {
                libc::chdir(c"/".as_ptr());
            }
            Ok(())
        });
    }
    match c.status() {
        Ok(s) => Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("berth exec: {:?}: executable file not found", cmd[0]);
            Ok(127)
        }
        Err(e) => Err(e),
    }
}
