//! The `nft` program, for whole-table work: creating or replacing berth's
//! table (daemon start, reconcile) and listing it. Never on a per-container
//! path: each run costs a process start plus a cache fetch.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{LinuxError, Result};

/// `nft -f -` with the script on stdin: one atomic transaction.
pub fn apply_script(script: &str) -> Result<()> {
    crate::count_process();
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LinuxError::Nft(format!("cannot run nft (is the nftables package installed?): {e}")))?;
    child.stdin.take().unwrap().write_all(script.as_bytes()).map_err(|e| LinuxError::Nft(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| LinuxError::Nft(e.to_string()))?;
    if !out.status.success() {
        return Err(LinuxError::Nft(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

/// `nft ARGS...`, returning stdout.
pub fn run(args: &[&str]) -> Result<String> {
    crate::count_process();
    let out = Command::new("nft")
        .args(args)
        .output()
        .map_err(|e| LinuxError::Nft(format!("cannot run nft (is the nftables package installed?): {e}")))?;
    if !out.status.success() {
        return Err(LinuxError::Nft(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `nft list table inet berth` (None when the table does not exist).
pub fn list_table() -> Result<Option<String>> {
    match run(&["list", "table", "inet", "berth"]) {
        Ok(s) => Ok(Some(s)),
        Err(LinuxError::Nft(e)) if e.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}
