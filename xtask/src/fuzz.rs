//! `cargo xtask fuzz [--seconds N] [<target>]`: runs every cargo-fuzz
//! target (or one) for N seconds each, starting from its committed seeds.
//!
//! The machines have the pinned stable Rust only; RUSTC_BOOTSTRAP lets
//! cargo-fuzz use the sanitizer flags it needs. Each run works on a scratch
//! copy of the seeds (target/fuzz-run/<target>), so a run never grows the
//! committed corpus. A crash fails the run, and the crashing input is
//! copied into `<crate>/fuzz/regressions/<target>/`, named after the target
//! and its digest, to be committed with the fix: every later run starts
//! from it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::paths;

/// Seconds per target in `cargo xtask test`: 20 (was 30) since issue 14's
/// share-user suite added a VM boot to CI's warm 50-minute budget; longer
/// runs are `cargo xtask fuzz --seconds N`.
pub const CI_SECONDS: u64 = 20;

/// Every fuzz target: (crate folder holding `fuzz/`, target name).
pub const TARGETS: &[(&str, &str)] = &[
    ("channel", "decoder"),
    ("channel", "framed"),
    ("init", "control"),
    ("policy", "settings"),
    ("policy", "create_body"),
    ("policy", "endpoint"),
    ("policy", "reference"),
    ("guard", "mount_args"),
    ("guard", "guard_request"),
];

#[derive(clap::Args)]
pub struct Args {
    /// One target (default: all of them); see `TARGETS` in xtask/src/fuzz.rs.
    pub target: Option<String>,
    /// How long each target runs.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
}

/// What one target's run did.
pub struct Outcome {
    pub target: String,
    pub executions: u64,
    pub build_secs: f64,
    pub cpu_secs: f64,
    pub wall_secs: f64,
}

pub fn run(a: &Args) -> Result<()> {
    let targets: Vec<(&str, &str)> = match &a.target {
        Some(t) => {
            let found = TARGETS.iter().find(|(_, n)| n == t).with_context(|| {
                format!(
                    "no fuzz target {t:?}; the targets are: {}",
                    TARGETS
                        .iter()
                        .map(|(_, n)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            vec![*found]
        }
        None => TARGETS.to_vec(),
    };
    run_targets(&targets, a.seconds).map(|_| ())
}

/// `cargo xtask test`'s fuzz step: every target for [`CI_SECONDS`].
pub fn ci() -> Result<()> {
    run_targets(TARGETS, CI_SECONDS).map(|_| ())
}

fn ensure_cargo_fuzz(sh: &Shell) -> Result<()> {
    let ok = cmd!(sh, "cargo fuzz --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok();
    if !ok {
        bail!("cargo-fuzz is not installed: run `cargo xtask deps`");
    }
    Ok(())
}

fn run_targets(targets: &[(&str, &str)], seconds: u64) -> Result<Vec<Outcome>> {
    let sh = Shell::new()?;
    ensure_cargo_fuzz(&sh)?;
    let mut done = Vec::new();
    for (krate, target) in targets {
        let o = run_one(krate, target, seconds)?;
        eprintln!(
            "[fuzz] {}: {} executions in {:.0}s ({:.0}s CPU; build {:.0}s)",
            o.target, o.executions, o.wall_secs, o.cpu_secs, o.build_secs
        );
        done.push(o);
    }
    eprintln!("[fuzz] summary ({seconds}s per target):");
    for o in &done {
        eprintln!(
            "[fuzz]   {:<14} {:>10} executions  {:>5.0}s CPU",
            o.target, o.executions, o.cpu_secs
        );
    }
    Ok(done)
}

/// CPU time (user + system) of the waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct we pass; a zeroed rusage is valid.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

fn fuzz_cmd(dir: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(dir).env("RUSTC_BOOTSTRAP", "1").arg("fuzz");
    c
}

fn run_one(krate: &str, target: &str, seconds: u64) -> Result<Outcome> {
    let ws = paths::workspace();
    let dir = ws.join(krate).join("fuzz");
    if !dir.join("Cargo.toml").exists() {
        bail!("{} has no fuzz crate", dir.display());
    }
    let seeds = dir.join("seeds").join(target);
    let regressions = dir.join("regressions").join(target);
    let has_seeds = fs::read_dir(&seeds)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !has_seeds {
        bail!(
            "fuzz target {target}: no committed seeds in {} (a target must start from valid inputs)",
            seeds.display()
        );
    }
    let target_dir = paths::shared_target("fuzz-target", paths::target().join("fuzz"));
    // Overflow checks and debug assertions on: they are bugs too.
    let common = |c: &mut Command| {
        c.arg("-a").arg("--target-dir").arg(&target_dir).arg(target);
    };

    let start = Instant::now();
    let mut build = fuzz_cmd(&dir);
    build.arg("build");
    common(&mut build);
    let status = build.status().context("starting cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build {target} failed ({status})");
    }
    let build_secs = start.elapsed().as_secs_f64();

    let scratch = paths::target().join("fuzz-run").join(target);
    let _ = fs::remove_dir_all(&scratch);
    let corpus = scratch.join("corpus");
    let artifacts = scratch.join("artifacts");
    fs::create_dir_all(&corpus)?;
    fs::create_dir_all(&artifacts)?;
    for src in [&seeds, &regressions] {
        let Ok(entries) = fs::read_dir(src) else {
            continue;
        };
        for e in entries {
            let e = e?;
            if e.file_type()?.is_file() {
                fs::copy(e.path(), corpus.join(e.file_name()))?;
            }
        }
    }
    let log_path = scratch.join("libfuzzer.log");
    let log = fs::File::create(&log_path)?;
    let cpu1 = children_cpu();
    let start = Instant::now();
    let mut run = fuzz_cmd(&dir);
    run.arg("run");
    common(&mut run);
    run.arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(Stdio::null())
        .stderr(log);
    eprintln!("[fuzz] {target}: {seconds}s (log {})", log_path.display());
    let status = run.status().context("starting cargo fuzz run")?;
    let wall_secs = start.elapsed().as_secs_f64();
    let cpu_secs = children_cpu() - cpu1;
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let crashes = saved_crashes(&artifacts, &regressions, krate, target)?;
    if !status.success() || !crashes.is_empty() {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzz target {target} failed ({status}); crashing inputs saved as regression seeds: {}\n{}",
            if crashes.is_empty() {
                "none found".to_string()
            } else {
                crashes
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            tail.join("\n")
        );
    }
    let executions = executed_units(&text).with_context(|| {
        format!(
            "fuzz target {target}: no `stat::number_of_executed_units` in {}",
            log_path.display()
        )
    })?;
    if executions == 0 {
        bail!("fuzz target {target} ran no input at all");
    }
    Ok(Outcome {
        target: target.to_string(),
        executions,
        build_secs,
        cpu_secs,
        wall_secs,
    })
}

/// Copies every input libFuzzer left in `artifacts` (crash-, leak-,
/// timeout-, oom-) into the regression seeds as `<kind>-<target>-<sha>`.
fn saved_crashes(
    artifacts: &Path,
    regressions: &Path,
    krate: &str,
    target: &str,
) -> Result<Vec<PathBuf>> {
    let mut saved = Vec::new();
    for e in fs::read_dir(artifacts)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kind) = name.split('-').next() else {
            continue;
        };
        let data = fs::read(e.path())?;
        let digest = hex::encode(Sha256::digest(&data));
        fs::create_dir_all(regressions)?;
        let to = regressions.join(format!("{kind}-{target}-{}", &digest[..16]));
        fs::write(&to, &data)?;
        eprintln!(
            "[fuzz] {krate}/{target}: {kind} input saved as {}",
            to.display()
        );
        saved.push(to);
    }
    Ok(saved)
}

/// libFuzzer's `-print_final_stats=1` line.
pub fn executed_units(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_stats_are_read() {
        let log = "#2 INITED\nDone 106265 runs in 11 second(s)\n\
                   stat::number_of_executed_units: 106265\nstat::average_exec_per_sec:     9660\n";
        assert_eq!(executed_units(log), Some(106265));
        assert_eq!(executed_units("Done 5 runs\n"), None);
    }

    #[test]
    fn every_target_has_committed_seeds() {
        for (krate, target) in TARGETS {
            let seeds = paths::workspace()
                .join(krate)
                .join("fuzz/seeds")
                .join(target);
            let n = fs::read_dir(&seeds)
                .map(|d| d.count())
                .unwrap_or_else(|e| panic!("{}: {e}", seeds.display()));
            assert!(n > 0, "{} is empty", seeds.display());
            let manifest =
                fs::read_to_string(paths::workspace().join(krate).join("fuzz/Cargo.toml")).unwrap();
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{krate}/fuzz/Cargo.toml has no target {target}"
            );
        }
    }
}
