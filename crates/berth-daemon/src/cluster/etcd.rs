//! The etcd client, configured once: timeouts that fail a request fast
//! when etcd is down or partitioned (etcd-client's own default waits
//! forever on a frozen peer), HTTP/2 keep-alive at 10 s (etcd drops
//! clients that ping more often than every 5 s), and TLS when
//! `kv.cacertfile`/`kv.certfile` are given. Errors come out as one line
//! that names the store.

use std::time::Duration;

use berth_core::config::ClusterConfig;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// `etcd://HOST:PORT[,HOST:PORT]`, as given: how errors name the store.
pub fn describe(cfg: &ClusterConfig) -> String {
    format!("etcd://{}", cfg.endpoints.join(","))
}

fn options(cfg: &ClusterConfig) -> Result<ConnectOptions, String> {
    let mut o = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(false)
        .with_tcp_keepalive(Duration::from_secs(30));
    if cfg.tls() {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("cluster-store-opt: {}: {e}", p.display()));
        let mut tls = TlsOptions::new();
        if let Some(ca) = &cfg.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        o = o.with_tls(tls);
    }
    Ok(o)
}

/// A client for the configured endpoints. It connects lazily: this
/// succeeds with etcd down, and each request then fails fast.
pub async fn connect(cfg: &ClusterConfig) -> Result<Client, String> {
    let scheme = if cfg.tls() { "https" } else { "http" };
    let urls: Vec<String> = cfg.endpoints.iter().map(|e| format!("{scheme}://{e}")).collect();
    Client::connect(urls, Some(options(cfg)?)).await.map_err(|e| humanize(&e))
}

/// One line a user can act on. gRPC status codes by number (tonic is
/// etcd-client's, not a dependency of ours): 1 cancelled, 4 deadline
/// exceeded, 5 not found, 7 permission denied, 14 unavailable, 16
/// unauthenticated.
pub fn humanize(e: &etcd_client::Error) -> String {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(s) => match s.code() as i32 {
            14 => format!("cannot reach it ({})", s.message()),
            1 | 4 => "no answer within 5 s".to_string(),
            7 | 16 => format!("refused: {}", s.message()),
            _ => s.message().to_string(),
        },
        E::TransportError(t) => format!("cannot reach it ({t})"),
        e => e.to_string(),
    }
}
