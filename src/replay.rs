//! Placeholder until the replay client lands.
use std::path::Path;
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}
pub fn run(_args: &ReplayArgs, _config: Option<&Path>) -> anyhow::Result<bool> {
    anyhow::bail!("the replay is not built yet")
}
