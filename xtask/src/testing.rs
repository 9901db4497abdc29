//! `cargo xtask test`: every tier, cheapest first, stopping at the first failure.
//!
//! The tiers are a list ([`TIERS`]) with names. None is ever skipped on its
//! own: a missing prerequisite (root, busybox, the docker CLI, ...) fails the
//! run naming it. A developer may leave a tier out only with `--skip <tier>`;
//! the last line then names the tiers that did not run, and under CI (`CI`
//! set, as `.ci/run` runs) the exit code is not 0, because a green run must
//! mean that everything ran.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{deps, paths, vm, vmtest};

#[derive(clap::Args, Default)]
pub struct Args {
    /// Leave a tier out (repeatable): lint, unit, fuzz, host, repro, vm, vm-arm64, weaken. The run
    /// then ends naming what did not run, and fails under CI.
    #[arg(long = "skip", value_name = "TIER", value_parser = tier_name)]
    pub skip: Vec<String>,
}

/// One tier: its name (for `--skip` and the report), whether it needs root,
/// and what it runs.
pub struct Tier {
    pub name: &'static str,
    pub what: &'static str,
    pub needs_root: bool,
    pub run: fn(&Ctx) -> Result<()>,
}

/// The tiers, cheapest first. Add a tier here and `--skip`, the root check
/// and the final report know it.
pub const TIERS: &[Tier] = &[
    Tier {
        name: "lint",
        what: "cargo fmt --check, clippy -D warnings",
        needs_root: false,
        run: lint,
    },
    Tier {
        name: "unit",
        what: "unit tests of every crate (lib and bin targets, doc tests)",
        needs_root: false,
        run: unit,
    },
    Tier {
        name: "fuzz",
        what: "every fuzz target for a bounded time on its committed seeds",
        needs_root: false,
        run: fuzz,
    },
    Tier {
        name: "host",
        what: "integration tests as root: runtime, guard, gate against this machine's kernel and dockerd",
        needs_root: true,
        run: host,
    },
    Tier {
        name: "repro",
        what: "image reproducibility",
        needs_root: true,
        run: repro,
    },
    Tier {
        name: "vm",
        what: "the VM scenarios under QEMU, driven with the docker CLI",
        needs_root: true,
        run: vm_tier,
    },
    Tier {
        name: "vm-arm64",
        what: "the arm64 smoke suite: the arm64 image under qemu-system-aarch64 (TCG), then its rootfs and image reproducibility",
        needs_root: true,
        run: vm_arm64_tier,
    },
    Tier {
        name: "weaken",
        what: "the guard-off variant must fail the escape scenarios the guard carries (docs/walls.json)",
        needs_root: true,
        run: weaken,
    },
];

/// What the tiers share: the workspace shell and the image, built once by
/// the first tier that needs it.
pub struct Ctx {
    sh: Shell,
    image: OnceCell<PathBuf>,
}

impl Ctx {
    pub fn sh(&self) -> &Shell {
        &self.sh
    }

    /// The VM image of this tree (built on first use).
    pub fn image(&self) -> Result<PathBuf> {
        if let Some(i) = self.image.get() {
            return Ok(i.clone());
        }
        let i = vm::image(&vm::ImageArgs {
            no_deps: true,
            weaken: None,
            ..Default::default()
        })?;
        Ok(self.image.get_or_init(|| i).clone())
    }
}

fn tier_name(s: &str) -> Result<String, String> {
    if TIERS.iter().any(|t| t.name == s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "no tier {s:?}; the tiers are {}",
            TIERS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        ))
    }
}

/// CI runs set `CI` (to `true`); there a skipped tier fails the run.
fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

pub fn run(args: &Args) -> Result<()> {
    let to_run: Vec<&Tier> = TIERS
        .iter()
        .filter(|t| !args.skip.iter().any(|s| s == t.name))
        .collect();
    // Before any work: a tier that cannot run here fails now, naming why.
    let need_root: Vec<&str> = to_run
        .iter()
        .filter(|t| t.needs_root)
        .map(|t| t.name)
        .collect();
    if !need_root.is_empty() && !deps::is_root() {
        bail!(
            "the {} tier(s) need root (run `cargo xtask test` as root, or leave them out with {})",
            need_root.join(", "),
            need_root
                .iter()
                .map(|n| format!("--skip {n}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    deps::run()?;
    let sh = Shell::new()?;
    sh.change_dir(paths::workspace());
    let ctx = Ctx {
        sh,
        image: OnceCell::new(),
    };
    let mut took = Vec::new();
    for t in &to_run {
        eprintln!("[test] tier {}: {}", t.name, t.what);
        let start = Instant::now();
        (t.run)(&ctx).with_context(|| format!("tier {} failed", t.name))?;
        let secs = start.elapsed().as_secs_f64();
        eprintln!("[test] tier {} passed in {secs:.0}s", t.name);
        took.push(format!("{} {secs:.0}s", t.name));
    }
    let skipped: Vec<&str> = TIERS
        .iter()
        .filter(|t| !to_run.iter().any(|r| r.name == t.name))
        .map(|t| t.name)
        .collect();
    if skipped.is_empty() {
        eprintln!("[test] all tiers passed ({})", took.join(", "));
        return Ok(());
    }
    let passed = if took.is_empty() {
        "none".to_string()
    } else {
        took.join(", ")
    };
    let line = format!(
        "tiers passed: {passed}; NOT RUN (--skip): {}",
        skipped.join(", ")
    );
    if under_ci() {
        bail!("{line}: CI must run every tier");
    }
    eprintln!("[test] {line}");
    Ok(())
}

fn lint(ctx: &Ctx) -> Result<()> {
    let sh = ctx.sh();
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    Ok(())
}

fn unit(ctx: &Ctx) -> Result<()> {
    let sh = ctx.sh();
    cmd!(sh, "cargo test --workspace --lib --bins").run()?;
    cmd!(sh, "cargo test --workspace --doc").run()?;
    Ok(())
}

/// Every integration test target (tests/*.rs) of every crate, as root: the
/// runtime's host tests, its Docker end-to-end test, the differential test
/// against crun, the guard's tests (Docker-in-Docker included), the gate's
/// tests against a private dockerd and registry, the CLI's settings tests.
fn host(ctx: &Ctx) -> Result<()> {
    let sh = ctx.sh();
    cmd!(sh, "cargo test --workspace --test *").run()?;
    Ok(())
}

fn fuzz(_ctx: &Ctx) -> Result<()> {
    crate::fuzz::ci()
}

fn repro(ctx: &Ctx) -> Result<()> {
    // The check compares the image's own binaries (target/hull-bin) with a
    // second build: on a fresh clone they exist only once the image is built.
    ctx.image()?;
    crate::repro::check()
}

fn vm_tier(ctx: &Ctx) -> Result<()> {
    vmtest::run(&vmtest::Args {
        image: Some(ctx.image()?),
        ..Default::default()
    })
}

/// Builds the arm64 image (its own kernel, binaries and root, all cached)
/// and runs the arm64 suite on it.
fn vm_arm64_tier(_ctx: &Ctx) -> Result<()> {
    vmtest::run(&vmtest::Args {
        arch: Some(hull_qemu::arch::Arch::Arm64),
        ..Default::default()
    })?;
    // The arm64 reproducibility check, here rather than in `repro`: the
    // suite has just built the arm64 image, so what is left is the rootfs
    // twice from the lock and the image twice (about 35 s warm).
    crate::repro::check_foreign(hull_qemu::arch::Arch::Arm64)
}

fn weaken(_ctx: &Ctx) -> Result<()> {
    crate::weaken::ci()
}
