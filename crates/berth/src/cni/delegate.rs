//! Delegated plugins (spec section 4): an `ipam` section with a `type` is
//! that plugin's job. It is found in the directories of `CNI_PATH` (in
//! order) and executed with the same environment and the complete stdin
//! berth got; its stderr goes to berth's. Its error is berth's error.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_core::cni::{code, CniError, CniResult};
use serde_json::Value;

/// The plugin's executable: the first `DIR/NAME` of `CNI_PATH` that exists.
pub fn find(plugin: &str, cni_path: Option<&str>) -> Result<PathBuf, CniError> {
    let Some(path) = cni_path else {
        return Err(CniError::env(&["CNI_PATH"], &format!("needed to find the IPAM plugin {plugin:?}")));
    };
    std::env::split_paths(path)
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| CniError::config(format!("failed to find IPAM plugin {plugin:?} in path {:?}", std::env::split_paths(path).collect::<Vec<_>>())))
}

/// Runs `plugin` with CNI_COMMAND=`command`, the rest of the environment
/// as berth got it, and `stdin`. Returns its stdout parsed (None if empty).
pub fn exec(plugin: &str, cni_path: Option<&str>, command: &str, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    let bin = find(plugin, cni_path)?;
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::new(code::DELEGATE_FAILED, format!("starting IPAM plugin {plugin}"), e.to_string()))?;
    // A plugin that exits before reading all of stdin says why on stdout.
    let _ = child.stdin.take().expect("piped").write_all(stdin);
    let out = child.wait_with_output().map_err(|e| CniError::new(code::DELEGATE_FAILED, format!("running IPAM plugin {plugin}"), e.to_string()))?;
    let parsed: Option<Value> = if out.stdout.iter().all(u8::is_ascii_whitespace) { None } else { serde_json::from_slice(&out.stdout).ok() };
    if !out.status.success() {
        let (c, msg, details) = match &parsed {
            Some(v) => (
                v["code"].as_u64().map(|c| c as u32).unwrap_or(code::DELEGATE_FAILED),
                format!("IPAM plugin {plugin} ({command}): {}", v["msg"].as_str().unwrap_or("failed")),
                v["details"].as_str().unwrap_or_default().to_string(),
            ),
            None => (code::DELEGATE_FAILED, format!("IPAM plugin {plugin} ({command}) failed: {}", out.status), String::from_utf8_lossy(&out.stdout).into_owned()),
        };
        return Err(CniError::new(c, msg, details));
    }
    if parsed.is_none() && !out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::decode(format!("IPAM plugin {plugin} ({command}) printed something that is not JSON")));
    }
    Ok(parsed)
}

/// ADD through the IPAM plugin: its (abbreviated) result.
pub fn add(plugin: &str, cni_path: Option<&str>, stdin: &[u8]) -> Result<CniResult, CniError> {
    let v = exec(plugin, cni_path, "ADD", stdin)?.ok_or_else(|| CniError::decode(format!("IPAM plugin {plugin} printed no result")))?;
    let r = CniResult::parse(&v).map_err(|e| CniError::decode(format!("IPAM plugin {plugin}'s result: {e}")))?;
    if r.ips.is_empty() {
        return Err(CniError::new(code::DELEGATE_FAILED, format!("IPAM plugin {plugin} gave no address"), v.to_string()));
    }
    Ok(r)
}

/// Whether the plugin speaks `version` (its VERSION answer), for the 1.1
/// commands older plugins answer with an error ("missing containerID").
pub fn speaks(plugin: &str, cni_path: Option<&str>, version: &str) -> bool {
    let probe = format!("{{\"cniVersion\":\"{version}\"}}");
    match exec(plugin, cni_path, "VERSION", probe.as_bytes()) {
        Ok(Some(v)) => v["supportedVersions"].as_array().is_some_and(|a| a.iter().any(|x| x.as_str() == Some(version))),
        _ => false,
    }
}
