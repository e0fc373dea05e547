//! `berth daemon`: start-up and the API server loop. Containers are left
//! running when the daemon stops (live-restore); the next daemon adopts them.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use berth_core::config::DaemonConfig;
use tokio::net::UnixListener;
use tracing::info;

use crate::daemon::Daemon;
use crate::error::{DaemonError, Result};
use berth_linux::kernel::LinuxKernel;

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn serve(cfg: DaemonConfig) -> Result<()> {
    let socket = cfg.socket.clone();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DaemonError::Internal(format!("mkdir {}: {e}", dir.display())))?;
    }
    if socket.exists() {
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Err(DaemonError::Conflict(format!("another berth daemon is listening on {}", socket.display())));
        }
        let _ = std::fs::remove_file(&socket);
    }
    let rt = tokio::runtime::Handle::current();
    let kernel = Arc::new(LinuxKernel::new(cfg.socket_translation));
    let d: Arc<Daemon> = tokio::task::spawn_blocking(move || Daemon::open(cfg, kernel, Some(rt)))
        .await
        .map_err(|e| DaemonError::Internal(e.to_string()))??;
    let listener = UnixListener::bind(&socket).map_err(|e| DaemonError::Internal(format!("listen on {}: {e}", socket.display())))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660)).map_err(|e| DaemonError::Internal(e.to_string()))?;
    // Who this daemon is, for whoever started it in the background.
    let pid_file = d.cfg.exec_root.join("berth.pid");
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        tracing::warn!("writing {}: {e}", pid_file.display());
    }
    info!("berth daemon ready on unix://{}", socket.display());
    let plugin_socket = match d.cfg.docker.clone() {
        Some(dc) => {
            let p = crate::docker::DockerPlugin::open(d.clone())?;
            p.watch_user_chain();
            crate::docker::server::spawn(p, &dc.socket)?;
            Some(dc.socket)
        }
        None => None,
    };
    let app = crate::api::router(d);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        info!("shutting down; containers keep running (live-restore)");
        // Requests in flight get a bounded time to finish.
        tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            tracing::warn!("requests still running after 10 s; exiting anyway");
            std::process::exit(0);
        });
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(|e| DaemonError::Internal(e.to_string()))?;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    if let Some(p) = plugin_socket {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
