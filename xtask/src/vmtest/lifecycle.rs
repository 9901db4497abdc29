//! The VM's lifecycle as Colima/Lima users know it: `hull list`, profiles,
//! the remembered size and the "needs a restart" answer, growing the data
//! disk, upgrading to a rebuilt image on the same disk, refusing a disk from
//! a newer hull, and `hull delete`. Five boots in all, in order:
//!
//! 1. image N (1 cpu, 2 GiB disk): list, config, refusals; data written.
//!    Then the disk is relabelled `hull-data` from the host (as disks were
//!    made before labels) and image N boots again: it reads the stamp
//!    through a read-only mount and labels the disk `hull-data.f1`.
//! 2. `hull restart` on image N+1 (built here with another build id and data
//!    format 2) with a 3 GiB disk and 2 cpus: the format read from the
//!    superblock's label (no probe mount), grown, migrated and relabelled
//!    `hull-data.f2`, data read back.
//! 3. image N again on that disk: refused by its label, untouched; relabelled
//!    `hull-data` from the host, refused by its stamp, untouched; then
//!    `hull delete`.
//!
//! The VM lives in the default profile of a scratch `HOME` (no `HULL_HOME`),
//! as a user's would.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use super::vm::Vm;
use crate::vm as build;

pub const NEXT_BUILD: &str = "lifecycle-next";
const GIB: u64 = 1 << 30;
const KEPT: &str = "kept-across-upgrade";

/// The suite's sizes at its first boot (with the runner's `--memory 2048`).
pub fn up_args() -> Vec<String> {
    ["--cpus", "1", "--disk-gib", "2"]
        .map(String::from)
        .to_vec()
}

pub const SCENARIOS: &[(&str, super::Ser)] = &[
    ("lifecycle/list-profiles-config", list_profiles_config),
    ("lifecycle/unlabelled-disk-adopted", unlabelled_disk_adopted),
    ("lifecycle/restart-grow-upgrade", restart_grow_upgrade),
    (
        "lifecycle/newer-disk-refused-delete",
        newer_disk_refused_delete,
    ),
];

/// A scratch user `HOME` whose default profile is the VM, and image N+1:
/// this checkout rebuilt with another build id and data format 2 (a real
/// newer hull, not a copy of image N).
pub fn setup(vm: &mut Vm, work: &Path) -> Result<Box<dyn std::any::Any>> {
    let user = work.join("lifecycle-user");
    std::fs::create_dir_all(&user)?;
    if let Some(unused) = vm.home.parent() {
        let _ = std::fs::remove_dir_all(unused);
    }
    vm.home = user.join(".local/share/hull");
    vm.env.push(("HULL_HOME".into(), String::new()));
    vm.env.push(("HOME".into(), user.display().to_string()));
    let next = work.join("image-next");
    build::image(&build::ImageArgs {
        out: Some(next.clone()),
        no_deps: true,
        knobs: build::InitKnobs {
            build_id: Some(NEXT_BUILD.into()),
            data_format: Some(2),
        },
        ..Default::default()
    })
    .context("building image N+1")?;
    ensure!(
        files_differ(&vm.image.join("root.erofs"), &next.join("root.erofs"))?,
        "image N+1's root.erofs is the same file as image N's: the rebuild changed nothing"
    );
    vm.vars
        .insert("next_image".into(), next.display().to_string());
    vm.vars
        .insert("user_home".into(), user.display().to_string());
    Ok(Box::new(()))
}

fn files_differ(a: &Path, b: &Path) -> Result<bool> {
    let st = std::process::Command::new("cmp")
        .args(["-s"])
        .arg(a)
        .arg(b)
        .status()
        .context("running cmp")?;
    Ok(st.code() == Some(1))
}

fn list(vm: &Vm) -> Result<Vec<Value>> {
    let r = vm.hull_cmd(&["list", "--json"])?.success()?;
    let v: Value = serde_json::from_str(&r.stdout).with_context(|| r.to_string())?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

fn default_row(vm: &Vm) -> Result<Value> {
    list(vm)?
        .into_iter()
        .find(|r| r["name"] == "default")
        .context("`hull list` has no `default` VM")
}

fn config(vm: &Vm) -> Result<Value> {
    let p = vm.home.join("vm.json");
    let text = std::fs::read_to_string(&p).with_context(|| p.display().to_string())?;
    Ok(serde_json::from_str(&text)?)
}

/// Total KiB of the filesystem under a named volume (the data disk).
fn disk_kib(vm: &Vm) -> Result<u64> {
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "busybox",
            "df",
            "-k",
            "/data",
        ])?
        .success()?;
    r.stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no size in df's output: {r}"))
}

/// The `cpu_steps` names in a `data_disk` outcome.
fn disk_steps(d: &Value) -> Vec<String> {
    d["cpu_steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s[0].as_str().map(String::from))
        .collect()
}

/// Sets the ext4 label of the stopped VM's data disk from the host and
/// returns the label it had. e2label wants a plain file, so the qcow2 is
/// converted to raw and back.
fn relabel_disk(vm: &Vm, label: &str) -> Result<String> {
    let disk = vm.home.join("data.qcow2");
    let raw = PathBuf::from(vm.var("user_home")?).join("relabel.raw");
    let run = |prog: &str, args: &[&std::ffi::OsStr]| -> Result<String> {
        let o = std::process::Command::new(prog)
            .args(args)
            .output()
            .with_context(|| format!("running {prog} (from `cargo xtask deps`)"))?;
        ensure!(
            o.status.success(),
            "{prog} {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let (d, r) = (disk.as_os_str(), raw.as_os_str());
    let q = |s: &'static str| std::ffi::OsStr::new(s);
    run(
        "qemu-img",
        &[q("convert"), q("-f"), q("qcow2"), q("-O"), q("raw"), d, r],
    )?;
    let was = run("e2label", &[r])?;
    run("e2label", &[r, std::ffi::OsStr::new(label)])?;
    run(
        "qemu-img",
        &[q("convert"), q("-f"), q("raw"), q("-O"), q("qcow2"), r, d],
    )?;
    std::fs::remove_file(&raw)?;
    Ok(was)
}

/// Boot 1: listed, remembered, a changed flag on a running VM refused with
/// the way to apply it; profiles map to homes; data written for boot 2.
fn list_profiles_config(vm: &mut Vm) -> Result<()> {
    let d = vm.status()?["guest"]["data_disk"].clone();
    ensure!(
        d["formatted"] == true && d["decided_by"] == "blank disk" && d["format"] == 1,
        "a new disk: {d}"
    );
    let row = default_row(vm)?;
    ensure!(row["running"] == true, "{row}");
    ensure!(row["cpus"] == 1 && row["memory_mib"] == 2048, "{row}");
    ensure!(row["disk_bytes"] == 2 * GIB, "{row}");
    ensure!(
        row["disk_used_bytes"].as_u64().is_some_and(|u| u > 0),
        "{row}"
    );
    ensure!(
        row["image"].as_str() == Some(&*vm.image.canonicalize()?.display().to_string()),
        "{row}"
    );
    let text = vm.hull_cmd(&["list"])?.success()?;
    ensure!(
        text.stdout
            .lines()
            .any(|l| l.starts_with("default ") && l.contains("running") && l.contains("2GiB")),
        "{text}"
    );
    let c = config(vm)?;
    ensure!(
        c["cpus"] == 1 && c["memory_mib"] == 2048 && c["disk_gib"] == 2,
        "vm.json: {c}"
    );
    vm.hull_cmd(&["up", "--cpus", "2"])?
        .failure_with("needs a restart: `hull restart --cpus 2`")?;
    vm.hull_cmd(&["up", "--disk-gib", "5"])?
        .failure_with("running with a 2 GiB disk")?;
    // The same (or no) flags on a running VM are fine.
    vm.hull_cmd(&["up", "--cpus", "1"])?.success()?;
    ensure!(config(vm)? == c, "vm.json changed: {}", config(vm)?);

    let st = vm
        .hull_cmd(&["--name", "dev", "status", "--json"])?
        .success()?;
    let st: Value = serde_json::from_str(&st.stdout)?;
    let dev = vm.home.join("profiles/dev");
    ensure!(
        st["home"].as_str() == Some(&*dev.display().to_string()) && st["state"] == "stopped",
        "--name dev: {st}"
    );
    vm.hull_cmd(&["--name", "../x", "status"])?
        .failure_with("VM name \"../x\" is not allowed")?;
    vm.hull_cmd(&["delete"])?
        .failure_with("is running; stop it first (`hull down`) or use `hull delete --force`")?;

    vm.docker(&["volume", "create", "keep"])?.success()?;
    vm.docker(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        &format!("echo {KEPT} > /data/f"),
    ])?
    .success()?;
    vm.docker(&["tag", "busybox:latest", "hull-test/kept:1"])?
        .success()?;
    let kib = disk_kib(vm)?;
    // ext4 on 2 GiB, less its metadata.
    ensure!((1_800_000..2_100_000).contains(&kib), "df: {kib} KiB");
    vm.vars.insert("df_before".into(), kib.to_string());
    Ok(())
}

/// Boot 1b: a disk from before labels (made with the label `hull-data`,
/// stamp format 1): image N reads its stamp through the read-only mount,
/// uses it as it is and labels it, so that the next boot decides from the
/// superblock (boot 2 asserts that).
fn unlabelled_disk_adopted(vm: &mut Vm) -> Result<()> {
    vm.hull_cmd(&["down"])?.success()?;
    let was = relabel_disk(vm, "hull-data")?;
    ensure!(
        was == "hull-data.f1",
        "image N's mkfs labelled the disk {was:?}"
    );
    vm.up()?;
    let d = vm.status()?["guest"]["data_disk"].clone();
    ensure!(
        d["mounted"] == true && d["error"].is_null() && d["format"] == 1,
        "{d}"
    );
    ensure!(
        d["decided_by"] == "read-only mount (its label \"hull-data\" names no data format)",
        "not read through the probe mount: {d}"
    );
    ensure!(
        d["relabelled"] == "\"hull-data\" -> hull-data.f1",
        "not relabelled: {d}"
    );
    ensure!(
        d["migrated"].is_null() && d["found"]["format"] == 1 && d["found"]["build"] == "dev",
        "{d}"
    );
    ensure!(
        disk_steps(&d)
            .iter()
            .any(|s| s == "stamp read (read-only mount)"),
        "{d}"
    );
    let f = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "busybox",
            "cat",
            "/data/f",
        ])?
        .success()?;
    ensure!(f.out() == KEPT, "volume file: {f}");
    Ok(())
}

/// Boot 2: `hull restart` onto image N+1 with a bigger disk and more cpus.
fn restart_grow_upgrade(vm: &mut Vm) -> Result<()> {
    let next = PathBuf::from(vm.var("next_image")?);
    let next_s = next.display().to_string();
    let r = vm
        .hull_cmd(&[
            "restart",
            "--image",
            &next_s,
            "--disk-gib",
            "3",
            "--cpus",
            "2",
            "--timeout",
            "240",
        ])?
        .success()?;
    ensure!(
        r.stderr.contains("stopped in")
            && r.stderr.contains("data disk grown from 2 to 3 GiB")
            && r.stderr.contains("cpus 1 -> 2 (saved)"),
        "{r}"
    );
    let st = vm.status()?;
    let g = &st["guest"];
    ensure!(
        g["build"] == NEXT_BUILD && g["data_format"] == 2,
        "not image N+1: {}",
        g
    );
    let d = &g["data_disk"];
    ensure!(d["mounted"] == true && d["format"] == 2, "{d}");
    ensure!(
        d["migrated"]
            .as_str()
            .is_some_and(|m| m.starts_with("format 1 (hull ")
                && m.ends_with(&format!(
                    "-> 2 (hull {} build {NEXT_BUILD})",
                    env!("CARGO_PKG_VERSION")
                ))),
        "migration: {d}"
    );
    ensure!(d["found"]["build"] == "dev", "N's stamp: {d}");
    // Boot 1b labelled the disk and it was stopped cleanly: the format came
    // from the superblock, with no read-only mount, and was raised.
    ensure!(
        d["decided_by"] == "superblock label hull-data.f1",
        "not decided from the label: {d}"
    );
    let steps = disk_steps(d);
    ensure!(
        steps.iter().any(|s| s == "stamp read (superblock)")
            && !steps.iter().any(|s| s.contains("read-only mount")),
        "steps: {steps:?}"
    );
    ensure!(
        d["relabelled"] == "\"hull-data.f1\" -> hull-data.f2",
        "not relabelled: {d}"
    );
    ensure!(
        d["grown"].as_str().is_some_and(|g| g.contains("is now")),
        "resize2fs: {d}"
    );
    ensure!(st["vm"]["cpus"] == 2, "{}", st["vm"]);

    let before: u64 = vm.var("df_before")?.parse()?;
    let after = disk_kib(vm)?;
    ensure!(
        after > before + 900 * 1024,
        "df did not grow by ~1 GiB: {before} -> {after} KiB"
    );
    let f = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "busybox",
            "cat",
            "/data/f",
        ])?
        .success()?;
    ensure!(f.out() == KEPT, "volume file: {f}");
    vm.docker(&["image", "inspect", "hull-test/kept:1"])?
        .success()?;
    let c = config(vm)?;
    ensure!(
        c["cpus"] == 2
            && c["disk_gib"] == 3
            && c["image"].as_str() == Some(&*next.canonicalize()?.display().to_string()),
        "vm.json: {c}"
    );
    eprintln!(
        "[vm-test] lifecycle: df {before} -> {after} KiB; {}",
        d["migrated"]
    );

    // Stopped: shrinking is refused before anything boots or changes.
    vm.hull_cmd(&["down"])?.success()?;
    vm.hull_cmd(&["up", "--disk-gib", "2", "--image", &next_s])?
        .failure_with("--disk-gib 2 would shrink it, which hull refuses")?;
    let row = default_row(vm)?;
    ensure!(
        row["running"] == false && row["disk_bytes"] == 3 * GIB,
        "{row}"
    );
    Ok(())
}

fn sha256(p: &Path) -> Result<String> {
    let o = std::process::Command::new("sha256sum").arg(p).output()?;
    ensure!(o.status.success(), "sha256sum {}", p.display());
    Ok(String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Boot 3: image N meets the disk image N+1 labelled and stamped with
/// format 2. It is refused by the label with the reason, through `hull up`
/// and `hull status`, and not one byte of it changes. Labelled as before
/// labels, it is refused by its stamp, again untouched. Then the VM is
/// deleted.
fn newer_disk_refused_delete(vm: &mut Vm) -> Result<()> {
    let disk = vm.home.join("data.qcow2");
    // Stopped (as the last scenario leaves it; a no-op then).
    vm.hull_cmd(&["down"])?.success()?;
    vm.hull_cmd(&["delete"])?
        .failure_with("stdin is not a terminal (use `hull delete --force`)")?;
    ensure!(
        disk.exists(),
        "delete without confirmation removed the disk"
    );
    let before = sha256(&disk)?;
    let image = vm.image.display().to_string();
    let r = vm
        .hull_cmd(&["up", "--image", &image, "--timeout", "240"])?
        .failure_with("the VM cannot use its data disk")?;
    let want = format!(
        "its ext4 label hull-data.f2 says it is in data format 2, newer than this hull {} (build dev) understands (format 1): not mounting it",
        env!("CARGO_PKG_VERSION")
    );
    ensure!(r.stderr.contains(&want), "expected {want:?}: {r}");
    let st = vm.status()?;
    let d = &st["guest"]["data_disk"];
    ensure!(
        d["mounted"] == false && d["error"].as_str().is_some_and(|e| e.contains(&want)),
        "status: {d}"
    );
    let human = vm.hull_cmd(&["status"])?.success()?;
    ensure!(
        human.stdout.contains("data disk ERROR:") && human.stdout.contains(&want),
        "{human}"
    );
    ensure!(sha256(&disk)? == before, "the refused disk changed");

    // The same disk labelled as before labels: the read-only mount reads
    // the stamp, which refuses it as well.
    vm.hull_cmd(&["down"])?.success()?;
    let was = relabel_disk(vm, "hull-data")?;
    ensure!(was == "hull-data.f2", "image N+1 left the label {was:?}");
    let before = sha256(&disk)?;
    let r = vm
        .hull_cmd(&["up", "--image", &image, "--timeout", "240"])?
        .failure_with("the VM cannot use its data disk")?;
    let want = format!(
        "laid out by hull {} (build {NEXT_BUILD}) in data format 2, newer than this hull {} (build dev) understands (format 1): not mounting it",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    );
    ensure!(r.stderr.contains(&want), "expected {want:?}: {r}");
    ensure!(sha256(&disk)? == before, "the refused disk changed");

    // Running: --force stops it, then deletes it unasked.
    let r = vm.hull_cmd(&["delete", "--force"])?.success()?;
    ensure!(r.stderr.contains("deleted the VM in"), "{r}");
    for f in ["data.qcow2", "vm.json", "state.json", "console.log"] {
        ensure!(!vm.home.join(f).exists(), "{f} is left after delete");
    }
    ensure!(
        list(vm)?.iter().all(|r| r["name"] != "default"),
        "`hull list` still shows it"
    );
    Ok(())
}
