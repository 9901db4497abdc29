//! Weakened builds: the proof that each wall matters.
//!
//! A variant image removes exactly one wall through cargo features that the
//! production build never enables (`weaken-*` in init, runtime, gate,
//! policy/qemu). `cargo xtask walls` builds every variant, runs the security
//! scenarios on it and records, per wall, the scenarios that FAILED: those
//! are what the wall carries. The record (docs/walls.json) and the table in
//! docs/security.md are generated from that run, never written by hand.
//!
//! `cargo xtask vm-test --weaken <wall>` then checks that the wall still
//! matters: every recorded scenario must fail on the variant. A recorded
//! scenario that passes means the wall stopped mattering or the scenario
//! went blind; both fail the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::{cmd, Shell};

use crate::vmtest::{self, Tally};
use crate::{paths, vm};

/// One wall, removed in its variant.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wall {
    /// hull-guard off: containers' mount calls are not vetted.
    Guard,
    /// The runtime maps the container's ids onto the VM's own.
    Userns,
    /// The gate forwards every Docker API request unchecked.
    Gate,
    /// Masks and read-only paths made after entering the user namespace.
    KernelLocks,
    /// No nodev on container mounts, no device cgroup program.
    Nodev,
    /// The admin's locked settings no longer override the user's.
    SettingsLock,
}

impl Wall {
    pub const ALL: [Wall; 6] = [
        Wall::Guard,
        Wall::Userns,
        Wall::Gate,
        Wall::KernelLocks,
        Wall::Nodev,
        Wall::SettingsLock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Wall::Guard => "guard",
            Wall::Userns => "userns",
            Wall::Gate => "gate",
            Wall::KernelLocks => "kernel-locks",
            Wall::Nodev => "nodev",
            Wall::SettingsLock => "settings-lock",
        }
    }

    /// What the variant does instead (the docs' table says it).
    pub fn removed(self) -> &'static str {
        match self {
            Wall::Guard => "hull-runtime runs with `--guard none`: no container's mount calls reach hull-guard",
            Wall::Userns => "hull-runtime maps every container's ids onto the VM's own (`0 0 65536`): container root is the VM's root for files, and all containers share one range",
            Wall::Gate => "hull-gate forwards every Docker API request to dockerd unchecked, as if the engine's socket were served on the vsock port (only hull's own `/hull` endpoints remain)",
            Wall::KernelLocks => "hull-runtime makes the masks and read-only paths after entering the container's user namespace, so the kernel does not lock them",
            Wall::Nodev => "hull-runtime sets no nodev on container mounts and attaches no device cgroup program",
            Wall::SettingsLock => "the host's `hull` merges settings with every admin value as a mere default: locked values no longer override the user's",
        }
    }

    fn feature(self) -> String {
        format!("weaken-{}", self.name())
    }

    /// `cargo build` arguments for the VM's binaries other than init.
    pub fn vm_features(self) -> Vec<String> {
        let krate = match self {
            Wall::Userns | Wall::KernelLocks | Wall::Nodev => "hull-runtime",
            Wall::Gate => "hull-gate",
            Wall::Guard | Wall::SettingsLock => return vec![],
        };
        vec!["--features".into(), format!("{krate}/{}", self.feature())]
    }

    /// init's feature: it announces the wall (and for `guard`, removes it).
    pub fn init_features(self) -> Vec<String> {
        vec!["--features".into(), format!("hull-init/{}", self.feature())]
    }

    /// `cargo build` arguments for the host's `hull` binary.
    pub fn host_features(self) -> Vec<String> {
        match self {
            Wall::SettingsLock => {
                vec!["--features".into(), format!("hull-qemu/{}", self.feature())]
            }
            _ => vec![],
        }
    }

    pub fn image_dir(self) -> PathBuf {
        paths::target().join(format!("hull-image-weak-{}", self.name()))
    }

    pub fn bin_dir(self) -> PathBuf {
        paths::target().join(format!("hull-bin-weak-{}", self.name()))
    }
}

/// The security scenarios each variant runs (`--filter` alternatives).
pub const SECURITY: &[&str] = &["escape/", "redteam", "eci/", "runtime/exclusive-id-ranges"];
/// Runs on every variant too: a plain `docker run`. If it fails, the variant
/// is broken (not weakened) and its failures prove nothing.
pub const CONTROL: &str = "channel/run";

pub fn record_path() -> PathBuf {
    paths::workspace().join("docs/walls.json")
}

fn security_md() -> PathBuf {
    paths::workspace().join("docs/security.md")
}

/// docs/walls.json.
#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Record {
    pub generated_by: String,
    pub scenarios: Vec<String>,
    pub walls: BTreeMap<String, WallRecord>,
}

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct WallRecord {
    pub removed: String,
    /// The commit the variant was built from (`+dirty` if uncommitted).
    pub commit: String,
    /// Security scenarios that ran on the variant.
    pub ran: usize,
    /// Those that FAILED: what the wall carries.
    pub carries: Vec<String>,
    pub control_passed: bool,
    pub image_build_s: f64,
    pub run_s: f64,
}

pub fn load_record() -> Result<Record> {
    let p = record_path();
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("{} (written by `cargo xtask walls`)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a walls record", p.display()))
}

/// What a weakened run showed, against the record.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Recorded and failed, as they must.
    pub expected: Vec<String>,
    /// Recorded but PASSED: the wall stopped mattering, or the scenario
    /// went blind.
    pub passed: Vec<String>,
    /// Recorded but did not run (its suite did not boot).
    pub missing: Vec<String>,
    /// Failed without being recorded (a suite's boot or setup included).
    pub new: Vec<String>,
}

impl Comparison {
    /// `recorded`: the wall's scenarios (already within the filter).
    pub fn of(recorded: &[String], tally: &Tally) -> Comparison {
        let failed = |n: &str| tally.failed.iter().any(|(f, _)| f == n);
        let passed = |n: &str| tally.passed.iter().any(|p| p == n);
        let mut c = Comparison::default();
        for r in recorded {
            if failed(r) {
                c.expected.push(r.clone());
            } else if passed(r) {
                c.passed.push(r.clone());
            } else {
                c.missing.push(r.clone());
            }
        }
        for (f, _) in &tally.failed {
            if !recorded.contains(f) {
                c.new.push(f.clone());
            }
        }
        c
    }

    /// The run passes only if the wall carries something here and every
    /// scenario it carries failed.
    pub fn verdict(&self) -> Result<(), String> {
        if !self.passed.is_empty() {
            return Err(format!(
                "scenario(s) the wall carries PASSED on the weakened build (the wall stopped mattering, or the scenario went blind): {}",
                self.passed.join(", ")
            ));
        }
        if !self.missing.is_empty() {
            return Err(format!(
                "scenario(s) the wall carries did not run: {}",
                self.missing.join(", ")
            ));
        }
        if self.expected.is_empty() {
            return Err("the wall carries no scenario within this filter".into());
        }
        Ok(())
    }
}

/// Builds the variant image (outside any VM lock), timed.
fn build_variant(wall: Wall) -> Result<(PathBuf, f64)> {
    let t = Instant::now();
    let image = vm::image(&vm::ImageArgs {
        no_deps: true,
        weaken: Some(wall),
        ..Default::default()
    })?;
    Ok((image, t.elapsed().as_secs_f64()))
}

/// The variant's host binary (built with the image; rebuilt if missing).
fn variant_hull(wall: Wall) -> Result<PathBuf> {
    let hull = wall.bin_dir().join("hull");
    if !hull.exists() {
        let sh = Shell::new()?;
        vm::build_vm_binaries(&sh, Some(wall))?;
    }
    Ok(hull)
}

/// `cargo xtask vm-test --weaken <wall> [--filter F]`.
pub fn vm_test(args: &vmtest::Args, wall: Wall) -> Result<()> {
    let name = wall.name();
    let record = load_record()?;
    let filter = args.filter.clone().unwrap_or_else(|| SECURITY.join(","));
    let recorded: Vec<String> = record
        .walls
        .get(name)
        .with_context(|| {
            format!(
                "{} has no entry for the wall `{name}`: run `cargo xtask walls --wall {name}`",
                record_path().display()
            )
        })?
        .carries
        .iter()
        .filter(|s| vmtest::selected(Some(&filter), s))
        .cloned()
        .collect();
    if recorded.is_empty() {
        bail!(
            "the wall `{name}` carries no recorded scenario within --filter {filter}: nothing here would notice it missing (see {})",
            record_path().display()
        );
    }
    let image = match &args.image {
        Some(i) => i.clone(),
        None => build_variant(wall)?.0,
    };
    let hull = variant_hull(wall)?;
    eprintln!(
        "[weaken {name}] WEAKENED BUILD, wall `{name}` removed: {}.\n[weaken {name}] The {} scenario(s) it carries are EXPECTED to fail below.",
        wall.removed(),
        recorded.len()
    );
    let run = vmtest::Args {
        filter: Some(filter),
        weaken: None,
        ..args.clone()
    };
    let tally = vmtest::run_scenarios(&run, &image, &hull)?;
    let c = Comparison::of(&recorded, &tally);
    for s in &c.expected {
        eprintln!("[weaken {name}] failed as expected: {s}");
    }
    for s in &c.new {
        eprintln!("[weaken {name}] newly failing (not in the record; rerun `cargo xtask walls --wall {name}` if the wall now carries it): {s}");
    }
    match c.verdict() {
        Ok(()) => {
            eprintln!(
                "[weaken {name}] OK: all {} scenario(s) the wall `{name}` carries failed on the weakened build, as they must (those failures are expected)",
                c.expected.len()
            );
            Ok(())
        }
        Err(e) => bail!("[weaken {name}] {e}"),
    }
}

/// CI (`cargo xtask test`): the guard-off variant on the escape scenarios.
pub fn ci() -> Result<()> {
    let t = Instant::now();
    let args = vmtest::Args {
        filter: Some("escape/".into()),
        jobs: 3,
        ..Default::default()
    };
    let r = vm_test(&args, Wall::Guard);
    eprintln!(
        "[test] weakened guard-off run took {:.0}s",
        t.elapsed().as_secs_f64()
    );
    r
}

#[derive(clap::Args)]
pub struct WallsArgs {
    /// Only these walls (default: all); the others keep their record.
    #[arg(long, value_enum)]
    pub wall: Vec<Wall>,
    /// Take this lock file (flock) only while a VM runs, so builds never
    /// hold it (e.g. /tmp/hull-vm.lock on a shared machine).
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Scenarios run at once within a VM.
    #[arg(long, default_value_t = 3)]
    pub jobs: usize,
    /// Only regenerate docs/security.md's table from docs/walls.json.
    #[arg(long)]
    pub table_only: bool,
}

/// An exclusive flock, held until dropped (closing the file releases it).
struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    fn take(path: &Path) -> Result<Lock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("lock file {}", path.display()))?;
        eprintln!("[walls] waiting for {}", path.display());
        // SAFETY: flock on a file descriptor we own; it is released when the
        // file is closed (drop).
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "flock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Lock(f))
    }
}

pub(crate) fn commit() -> String {
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(_) => return "unknown".into(),
    };
    let _dir = sh.push_dir(paths::workspace());
    let rev = cmd!(sh, "git rev-parse --short HEAD")
        .quiet()
        .read()
        .unwrap_or_else(|_| "unknown".into());
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .read()
        .map(|s| !s.trim().is_empty())
        .unwrap_or(true);
    if dirty {
        format!("{rev}+dirty")
    } else {
        rev
    }
}

/// `cargo xtask walls`: build and run each variant, record what failed.
pub fn walls(args: &WallsArgs) -> Result<()> {
    if args.table_only {
        return write_record(&load_record()?);
    }
    let chosen: Vec<Wall> = if args.wall.is_empty() {
        Wall::ALL.to_vec()
    } else {
        args.wall.clone()
    };
    let mut record = load_record().unwrap_or_default();
    record.generated_by = "cargo xtask walls".into();
    record.scenarios = SECURITY.iter().map(|s| s.to_string()).collect();
    for wall in chosen {
        let name = wall.name();
        eprintln!("[walls] {name}: building the variant");
        let (image, build_s) = build_variant(wall)?;
        let hull = variant_hull(wall)?;
        let mut filter: Vec<&str> = SECURITY.to_vec();
        filter.push(CONTROL);
        let run = vmtest::Args {
            image: Some(image.clone()),
            filter: Some(filter.join(",")),
            jobs: args.jobs,
            ..Default::default()
        };
        let lock = args.lock.as_deref().map(Lock::take).transpose()?;
        let t = Instant::now();
        let tally = vmtest::run_scenarios(&run, &image, &hull)?;
        let run_s = t.elapsed().as_secs_f64();
        drop(lock);
        let control_passed = tally.passed.iter().any(|p| p == CONTROL);
        let security = |n: &str| vmtest::selected(Some(&SECURITY.join(",")), n);
        let mut carries: Vec<String> = tally
            .failed
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| security(n) || n.ends_with("/boot") || n.ends_with("/setup"))
            .collect();
        carries.sort();
        let ran = tally.passed.iter().filter(|n| security(n)).count()
            + tally.failed.iter().filter(|(n, _)| security(n)).count();
        eprintln!(
            "[walls] {name}: {} of {ran} security scenario(s) failed (build {build_s:.0}s, run {run_s:.0}s){}",
            carries.len(),
            if control_passed {
                ""
            } else {
                "; the control scenario FAILED: this variant is broken, not just weakened"
            }
        );
        record.walls.insert(
            name.to_string(),
            WallRecord {
                removed: wall.removed().to_string(),
                commit: commit(),
                ran,
                carries,
                control_passed,
                image_build_s: build_s.round(),
                run_s: run_s.round(),
            },
        );
        // Written after every wall: a later failure keeps what was learnt.
        write_record(&record)?;
    }
    Ok(())
}

fn write_record(record: &Record) -> Result<()> {
    let mut text = serde_json::to_string_pretty(record)?;
    text.push('\n');
    std::fs::write(record_path(), text)?;
    let md = std::fs::read_to_string(security_md())?;
    let new = splice(&md, &table(record))?;
    std::fs::write(security_md(), new)?;
    Ok(())
}

pub const BEGIN: &str =
    "<!-- walls:begin (generated by `cargo xtask walls` from docs/walls.json; do not edit) -->";
pub const END: &str = "<!-- walls:end -->";

/// Replaces what lies between the markers.
fn splice(md: &str, table: &str) -> Result<String> {
    let (Some(b), Some(e)) = (md.find(BEGIN), md.find(END)) else {
        bail!("docs/security.md lacks the markers {BEGIN} ... {END}");
    };
    if e < b {
        bail!("docs/security.md: {END} comes before {BEGIN}");
    }
    Ok(format!("{}{BEGIN}\n{table}{}", &md[..b], &md[e..]))
}

/// The generated table.
pub fn table(record: &Record) -> String {
    let mut out = String::from(
        "| Wall removed | What the weakened variant does | Scenarios that fail without it (what the wall carries) |\n|---|---|---|\n",
    );
    for wall in Wall::ALL {
        let name = wall.name();
        let Some(w) = record.walls.get(name) else {
            out.push_str(&format!(
                "| `{name}` | {} | **not measured yet**: run `cargo xtask walls --wall {name}` |\n",
                wall.removed()
            ));
            continue;
        };
        let carries = if !w.control_passed {
            format!(
                "variant broken: the control scenario `{CONTROL}` failed too, so these failures prove nothing: {}",
                list(&w.carries)
            )
        } else if w.carries.is_empty() {
            format!(
                "**none**: all {} security scenarios still pass without this wall; a scenario that would notice it is missing",
                w.ran
            )
        } else {
            format!("{} of {}: {}", w.carries.len(), w.ran, list(&w.carries))
        };
        out.push_str(&format!(
            "| `{name}` | {} | {carries} |\n",
            w.removed.replace('|', "\\|")
        ));
    }
    out.push_str(&format!(
        "\nScenarios run on each variant: `{}` (plus the control `{CONTROL}`). Built from: {}.\n",
        record.scenarios.join("`, `"),
        commits(record)
    ));
    out
}

fn list(v: &[String]) -> String {
    v.iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn commits(record: &Record) -> String {
    let mut c: Vec<&str> = record.walls.values().map(|w| w.commit.as_str()).collect();
    c.sort();
    c.dedup();
    c.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(passed: &[&str], failed: &[&str]) -> Tally {
        Tally {
            passed: passed.iter().map(|s| s.to_string()).collect(),
            failed: failed
                .iter()
                .map(|s| (s.to_string(), "why".to_string()))
                .collect(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_recorded_failure_is_ok_and_new_ones_are_listed() {
        let c = Comparison::of(
            &names(&["escape/11-unmask", "escape/13-new-mount-api"]),
            &tally(
                &["escape/01-vm-disk"],
                &[
                    "escape/11-unmask",
                    "escape/13-new-mount-api",
                    "escape/18-devices",
                ],
            ),
        );
        assert_eq!(c.expected.len(), 2);
        assert_eq!(c.new, names(&["escape/18-devices"]));
        assert!(c.verdict().is_ok());
    }

    #[test]
    fn a_recorded_scenario_that_passes_fails_the_run() {
        let c = Comparison::of(
            &names(&["escape/11-unmask", "escape/13-new-mount-api"]),
            &tally(&["escape/13-new-mount-api"], &["escape/11-unmask"]),
        );
        assert_eq!(c.passed, names(&["escape/13-new-mount-api"]));
        let e = c.verdict().unwrap_err();
        assert!(
            e.contains("PASSED") && e.contains("escape/13-new-mount-api"),
            "{e}"
        );
    }

    #[test]
    fn a_recorded_scenario_that_did_not_run_fails_the_run() {
        let c = Comparison::of(
            &names(&["eci/9-settings-locked"]),
            &tally(&[], &["eci/boot"]),
        );
        assert_eq!(c.missing, names(&["eci/9-settings-locked"]));
        assert_eq!(c.new, names(&["eci/boot"]));
        assert!(c.verdict().unwrap_err().contains("did not run"));
    }

    #[test]
    fn a_wall_carrying_nothing_fails_the_run() {
        let c = Comparison::of(&[], &tally(&["escape/01-vm-disk"], &[]));
        assert!(c.verdict().unwrap_err().contains("carries no scenario"));
    }

    #[test]
    fn the_table_lands_between_the_markers_and_says_none_honestly() {
        let mut r = Record {
            generated_by: "cargo xtask walls".into(),
            scenarios: names(&["escape/"]),
            walls: BTreeMap::new(),
        };
        r.walls.insert(
            "nodev".into(),
            WallRecord {
                removed: "x".into(),
                commit: "abc".into(),
                ran: 5,
                carries: vec![],
                control_passed: true,
                ..Default::default()
            },
        );
        r.walls.insert(
            "guard".into(),
            WallRecord {
                removed: "y".into(),
                commit: "abc".into(),
                ran: 5,
                carries: names(&["escape/11-unmask"]),
                control_passed: true,
                ..Default::default()
            },
        );
        let t = table(&r);
        let guard = t.find("| `guard`").unwrap();
        let nodev = t.find("| `nodev`").unwrap();
        assert!(guard < nodev, "walls in their fixed order");
        assert!(t.contains("**none**"));
        assert!(t.contains("`userns` |") && t.contains("not measured yet"));
        assert!(t.contains("1 of 5: `escape/11-unmask`"));
        let md = format!("head\n{BEGIN}\nold\n{END}\ntail\n");
        let new = splice(&md, &t).unwrap();
        assert!(new.starts_with("head\n") && new.ends_with(&format!("{END}\ntail\n")));
        assert!(!new.contains("old"));
        assert!(splice("no markers", &t).is_err());
    }

    #[test]
    fn every_wall_has_a_distinct_feature_and_folder() {
        let mut seen = std::collections::BTreeSet::new();
        for w in Wall::ALL {
            assert!(seen.insert(w.image_dir()));
            assert!(seen.insert(w.bin_dir()));
            assert!(w.init_features()[1].ends_with(&format!("weaken-{}", w.name())));
        }
    }
}
