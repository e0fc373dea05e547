//! `berth demo` (filled in below).
use std::process::ExitCode;
#[derive(clap::Args)]
pub struct DemoArgs {}
pub fn run(_a: &DemoArgs) -> ExitCode { ExitCode::SUCCESS }
