//! `berth bench` (filled in below).
use anyhow::Result;
#[derive(clap::Args)]
pub struct BenchArgs {}
pub async fn run(_c: &crate::client::Client, _a: BenchArgs) -> Result<u8> { Ok(0) }
