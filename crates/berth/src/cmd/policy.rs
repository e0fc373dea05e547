//! `berth policy ...`: source-address restrictions on container ports.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use crate::client::{seg, Client};

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Drop traffic from CIDR to a container (optionally one port).
    Deny {
        #[arg(long, value_name = "CIDR")]
        from: String,
        #[arg(long, value_name = "CONTAINER[:PORT[/PROTO]]")]
        to: String,
    },
    /// Let CIDR reach a container port; once any allow names a port, only allowed sources reach it.
    Allow {
        #[arg(long, value_name = "CIDR")]
        from: String,
        #[arg(long, value_name = "CONTAINER[:PORT[/PROTO]]")]
        to: String,
    },
    /// List policies.
    Ls,
    /// Remove a policy.
    Rm { id: String },
}

pub async fn run(c: &Client, cmd: PolicyCmd) -> Result<u8> {
    match cmd {
        PolicyCmd::Deny { from, to } => {
            let v = c.post("/policies", &json!({"Action": "deny", "From": from, "To": to})).await?.json()?;
            println!("{}", v["Id"].as_str().unwrap_or_default());
        }
        PolicyCmd::Allow { from, to } => {
            let v = c.post("/policies", &json!({"Action": "allow", "From": from, "To": to})).await?.json()?;
            println!("{}", v["Id"].as_str().unwrap_or_default());
        }
        PolicyCmd::Ls => {
            let v = c.get("/policies").await?;
            let rows = v
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    vec![
                        p["Id"].as_str().unwrap_or_default().to_string(),
                        p["Action"].as_str().unwrap_or_default().to_string(),
                        p["From"].as_str().unwrap_or_default().to_string(),
                        p["To"].as_str().unwrap_or_default().to_string(),
                        p["Scope"].as_str().unwrap_or("local").to_string(),
                    ]
                })
                .collect();
            crate::table::print(&["ID", "ACTION", "FROM", "TO", "SCOPE"], rows);
        }
        PolicyCmd::Rm { id } => {
            c.call(Method::DELETE, &format!("/policies/{}", seg(&id)), None).await?;
            println!("{id}");
        }
    }
    Ok(0)
}
