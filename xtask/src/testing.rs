//! `cargo xtask test`: every tier, cheapest first, stopping at the first failure.

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::{deps, paths, vm, vmtest};

#[derive(clap::Args, Default)]
pub struct Args {
    /// Skip the VM tier.
    #[arg(long)]
    pub no_vm: bool,
    /// Skip the image reproducibility check (two full image builds).
    #[arg(long)]
    pub no_repro: bool,
}

pub fn run(args: &Args) -> Result<()> {
    deps::run()?;
    let sh = Shell::new()?;
    let _dir = sh.push_dir(paths::workspace());
    eprintln!("[test] lint");
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    eprintln!("[test] unit");
    cmd!(sh, "cargo test --workspace").run()?;
    if !deps::is_root() {
        bail!("the host-integration and VM tiers need root");
    }
    let image = vm::image(&vm::ImageArgs {
        no_deps: true,
        weaken: None,
        ..Default::default()
    })?;
    if !args.no_repro {
        crate::repro::check()?;
    }
    if !args.no_vm {
        vmtest::run(&vmtest::Args {
            image: Some(image),
            ..Default::default()
        })?;
        crate::weaken::ci()?;
    }
    eprintln!("[test] all tiers passed");
    Ok(())
}
