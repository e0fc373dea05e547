//! The CLI's HTTP client for the daemon's Unix socket. The daemon is found
//! through `-H unix://PATH`, then `BERTH_HOST`, then the default socket.

use anyhow::{anyhow, bail, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

pub struct Client {
    socket: String,
}

/// A response: status, headers and body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| anyhow!("unexpected reply from daemon: {e}"))
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub fn new(host: Option<&str>) -> Result<Client> {
        let h = host.map(str::to_string).or_else(|| std::env::var("BERTH_HOST").ok()).unwrap_or_else(|| format!("unix://{}", berth_core::config::DEFAULT_SOCKET));
        let socket = match h.strip_prefix("unix://") {
            Some(p) => p.to_string(),
            None if h.starts_with('/') => h,
            None => bail!("unsupported host {h:?}: berth listens on a Unix socket, e.g. -H unix:///run/berth/berth.sock"),
        };
        Ok(Client { socket })
    }

    /// One request on a fresh connection; daemon errors become `Err` with
    /// Docker's wording ("Error response from daemon: ...").
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
        let r = self.raw(method, path, body.map(|b| b.to_string().into_bytes())).await?;
        if !r.status.is_success() {
            let msg = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
            bail!(DaemonError(msg));
        }
        Ok(r)
    }

    /// A request without status interpretation (bodies are sent as given).
    pub async fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Reply> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|_| {
            anyhow!("Cannot connect to the berth daemon at unix://{}. Is the berth daemon running?", self.socket)
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path).header("host", "berth");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply { status, headers, body })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await?.json()
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.call(Method::POST, path, Some(body)).await
    }
}

impl Client {
    /// GETs `path_of(key)` for each key and prints the results as one JSON
    /// array (`inspect`); errors are printed and make the exit status 1.
    pub async fn inspect_each(&self, keys: &[String], path_of: impl Fn(&str) -> String) -> Result<u8> {
        let mut out = Vec::new();
        let mut failed = false;
        for k in keys {
            match self.get(&path_of(&seg(k))).await {
                Ok(v) => out.push(v),
                Err(e) => {
                    eprintln!("{e}");
                    failed = true;
                }
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(failed as u8)
    }
}

/// An error the daemon answered with.
#[derive(Debug)]
pub struct DaemonError(pub String);

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error response from daemon: {}", self.0)
    }
}

impl std::error::Error for DaemonError {}

/// Percent-encodes a path segment (names are validated, but keys from the
/// command line are not yet).
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
