//! `cargo xtask bench` (and `--shares-only`): issue 14's file-system figures.
//! One boot, the same load (`hull-probe fsbench`, probe/src/fsbench.rs) in
//! three places of one container image: a host directory shared over
//! virtiofs (the user settings' `filesharingDirectories`, bound by its host
//! path as a user would), a named volume (the VM's ext4 data disk), and a
//! host directory shared over QEMU's 9p (hidden `hull up --bench-9p-share`,
//! bound by its VM path; 9p binds are not id-mapped, so the directory is
//! mode 0777 for the container's unmapped root). Each figure is reported as
//! virtiofs against the other two, with the goals: the small-file
//! load at least 3x faster than 9p and within 3x of the named volume.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::{metric, Metric};
use crate::vmtest::{self, vm::Vm};

/// One place the load runs in.
struct Place {
    label: &'static str,
    /// What mountinfo must say `/w` is, or the run measured the wrong thing.
    fs: &'static str,
    source: String,
}

/// What one `hull-probe fsbench` run printed: `(phase, key) -> value`.
struct Figures {
    label: &'static str,
    v: BTreeMap<(String, String), String>,
}

impl Figures {
    fn parse(label: &'static str, out: &str) -> Figures {
        let mut v = BTreeMap::new();
        for line in out.lines() {
            let mut w = line.split_whitespace();
            if w.next() != Some("FSBENCH") {
                continue;
            }
            let Some(phase) = w.next() else { continue };
            for kv in w {
                if let Some((k, val)) = kv.split_once('=') {
                    v.insert((phase.to_string(), k.to_string()), val.to_string());
                }
            }
        }
        Figures { label, v }
    }

    fn text(&self, phase: &str, key: &str) -> Result<&str> {
        self.v
            .get(&(phase.to_string(), key.to_string()))
            .map(String::as_str)
            .with_context(|| format!("{}: fsbench printed no {phase} {key}", self.label))
    }

    /// A figure that must be a positive, finite number.
    fn num(&self, phase: &str, key: &str) -> Result<f64> {
        let t = self.text(phase, key)?;
        let x: f64 = t
            .parse()
            .with_context(|| format!("{}: {phase} {key}={t} is no number", self.label))?;
        ensure!(
            x.is_finite() && x > 0.0,
            "{}: {phase} {key}={t} is not a plausible figure",
            self.label
        );
        Ok(x)
    }
}

pub fn run(hull: &Path, image: &Path, files: usize, mib: usize) -> Result<Vec<Metric>> {
    ensure!(
        files > 0 && mib > 0,
        "--share-files and --share-mib must be > 0"
    );
    let mut vm = Vm::new(hull, image, &["--memory", "2048"])?;
    let work = vm
        .home
        .parent()
        .context("the VM home has no parent")?
        .to_path_buf();
    // Siblings, not nested: the VM drops a share inside another.
    let vfs = work.join("share-virtiofs");
    let p9 = work.join("share-9p");
    for d in [&vfs, &p9] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::set_permissions(&p9, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    let (vfs, p9) = (vfs.canonicalize()?, p9.canonicalize()?);
    std::fs::write(
        vm.home.join("settings.json"),
        serde_json::json!({"filesharingDirectories": [vfs]}).to_string(),
    )?;
    vm.up_args
        .extend(["--bench-9p-share".to_string(), p9.display().to_string()]);
    vm.up().context("booting the VM with both shares")?;
    let st = vm.status()?;
    let shares = st["guest"]["shares"]["shares"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (dir, fs) in [(&vfs, "virtiofs"), (&p9, "9p")] {
        let d = dir.display().to_string();
        let s = shares
            .iter()
            .find(|s| s["path"] == d.as_str())
            .with_context(|| format!("the VM reports no share of {d}: {shares:?}"))?;
        ensure!(
            s["fs"] == fs && s["mounted"] == true,
            "{d} is not mounted over {fs} in the VM: {s}"
        );
    }
    vmtest::images::import_busybox(&vm, &work)?;
    vm.docker(&["volume", "create", "hull-bench-fs"])?
        .success()?;
    let places = [
        Place {
            label: "virtiofs share",
            fs: "virtiofs",
            source: vfs.display().to_string(),
        },
        Place {
            label: "named volume",
            fs: "ext4",
            source: "hull-bench-fs".into(),
        },
        Place {
            label: "9p share",
            fs: "9p",
            source: format!("/mnt/host{}", p9.display()),
        },
    ];
    let mut got = Vec::new();
    for p in &places {
        eprintln!(
            "[bench] fsbench in the {} ({files} files, {mib} MiB) ...",
            p.label
        );
        let t = Instant::now();
        let r = vm
            .docker_timeout(
                &[
                    "run",
                    "--rm",
                    "-v",
                    &format!("{}:/w", p.source),
                    "busybox",
                    "hull-probe",
                    "fsbench",
                    "/w",
                    &files.to_string(),
                    &mib.to_string(),
                ],
                Duration::from_secs(3600),
            )?
            .success()
            .with_context(|| format!("fsbench in the {}", p.label))?;
        eprintln!(
            "[bench] fsbench in the {} took {:.0} s:\n{}",
            p.label,
            t.elapsed().as_secs_f64(),
            r.out()
        );
        let f = Figures::parse(p.label, &r.stdout);
        let ty = f.text("fs", "type")?;
        if ty != p.fs {
            bail!(
                "the {} at /w is {ty}, not {}: the run measured the wrong place",
                p.label,
                p.fs
            );
        }
        got.push(f);
    }
    let [v, vol, nine] = [&got[0], &got[1], &got[2]];
    let mut m = Vec::new();
    let n = files;
    // Times: lower is better.
    for (name, phase, key, goal9, goalvol) in [
        (
            format!("{n} small files (100 B): create+write all, lstat all, unlink all"),
            "small_files",
            "total_s",
            Some(3.0),
            Some(3.0),
        ),
        (
            format!("stat storm: {n} lstats of existing files, after the 1 s virtiofs cache has lapsed"),
            "stat_storm",
            "cold_s",
            None,
            None,
        ),
        (
            format!("stat storm: {n} lstats of existing files, repeated at once (virtiofs may answer from its 1 s cache)"),
            "stat_storm",
            "warm_s",
            None,
            None,
        ),
    ] {
        let (tv, t9, tvol) = (
            v.num(phase, key)?,
            nine.num(phase, key)?,
            vol.num(phase, key)?,
        );
        let detail = if phase == "small_files" {
            let part = |f: &Figures| -> Result<String> {
                Ok(format!(
                    "{}: {:.2}/{:.2}/{:.2} s",
                    f.label,
                    f.num(phase, "create_write_s")?,
                    f.num(phase, "stat_s")?,
                    f.num(phase, "delete_s")?
                ))
            };
            format!(
                "; create+write/lstat/unlink: {}, {}, {}",
                part(v)?,
                part(vol)?,
                part(nine)?
            )
        } else {
            String::new()
        };
        let faster = t9 / tv;
        m.push(metric(
            &format!("shares: {name}, virtiofs share vs 9p share"),
            "s",
            tv,
            Some(("9p share", t9)),
            &format!("virtiofs {faster:.2}x as fast as 9p{}{detail}", goal(goal9.map(|g| (faster >= g, format!("at least {g}x"))))),
        ));
        let slower = tv / tvol;
        m.push(metric(
            &format!("shares: {name}, virtiofs share vs named volume"),
            "s",
            tv,
            Some(("named volume", tvol)),
            &format!(
                "virtiofs takes {slower:.2}x the named volume's time{}",
                goal(goalvol.map(|g| (slower <= g, format!("within {g}x"))))
            ),
        ));
    }
    // Rates: higher is better.
    let cached = |f: &Figures| -> Result<String> {
        Ok(format!(
            "{} {}",
            f.label,
            f.text("seq_read", "cached_pages_at_start")?
        ))
    };
    let read_note = format!(
        "; reopened, guest page cache dropped with POSIX_FADV_DONTNEED (4 KiB pages still cached at the first read: {}, {}, {}), the host's page cache may serve it",
        cached(v)?,
        cached(vol)?,
        cached(nine)?
    );
    for (name, phase, note) in [
        (
            format!("sequential write of {mib} MiB in 1 MiB writes + fsync"),
            "seq_write",
            String::new(),
        ),
        (
            format!("sequential read of {mib} MiB in 1 MiB reads"),
            "seq_read",
            read_note,
        ),
    ] {
        let (rv, r9, rvol) = (
            v.num(phase, "mib_s")?,
            nine.num(phase, "mib_s")?,
            vol.num(phase, "mib_s")?,
        );
        m.push(metric(
            &format!("shares: {name}, virtiofs share vs 9p share"),
            "MiB/s",
            rv,
            Some(("9p share", r9)),
            &format!("virtiofs {:.2}x the rate of 9p{note}", rv / r9),
        ));
        m.push(metric(
            &format!("shares: {name}, virtiofs share vs named volume"),
            "MiB/s",
            rv,
            Some(("named volume", rvol)),
            &format!(
                "virtiofs {:.2}x the rate of the named volume{note}",
                rv / rvol
            ),
        ));
    }
    vm.down()?;
    Ok(m)
}

/// " (goal: ...: met)" or " (goal: ...: MISSED)"; empty without a goal.
fn goal(goal: Option<(bool, String)>) -> String {
    match goal {
        Some((met, g)) => format!(" (goal: {g}: {})", if met { "met" } else { "MISSED" }),
        None => String::new(),
    }
}
