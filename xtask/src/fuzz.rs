//! `cargo xtask fuzz`: runs a cargo-fuzz target for a while. The machines
//! have stable Rust only; RUSTC_BOOTSTRAP lets cargo-fuzz use the sanitizer
//! flags it needs.

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::paths;

#[derive(clap::Args)]
pub struct Args {
    /// Crate folder holding `fuzz/` (channel or policy).
    pub krate: String,
    /// Fuzz target name (see `<crate>/fuzz/fuzz_targets`).
    pub target: String,
    /// How long to run.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
}

pub fn run(a: &Args) -> Result<()> {
    let sh = Shell::new()?;
    let dir = paths::workspace().join(&a.krate).join("fuzz");
    if !dir.join("Cargo.toml").exists() {
        bail!("{} has no fuzz crate", a.krate);
    }
    if cmd!(sh, "cargo fuzz --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        cmd!(sh, "cargo install --locked cargo-fuzz").run()?;
    }
    sh.change_dir(&dir);
    let target = &a.target;
    let max = format!("-max_total_time={}", a.seconds);
    cmd!(sh, "cargo fuzz run {target} -- {max}")
        .env("RUSTC_BOOTSTRAP", "1")
        .run()?;
    Ok(())
}
