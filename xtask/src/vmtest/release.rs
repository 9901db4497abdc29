//! The release bundle (issue 18 item 4): a VM boots from the folder `cargo
//! xtask release` writes, through `hull up --image <bundle>`, and `hull
//! status --json` names its version and commit; a bundle with one changed
//! byte in any file, an extra file or a missing one is refused by the real
//! `hull up` before anything boots, naming the file.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use hull_qemu::bundle::{self, BUNDLE_JSON};

use super::vm::Vm;

/// The suite boots the bundle written from the test's image.
pub fn setup(vm: &mut Vm, work: &Path) -> Result<Box<dyn std::any::Any>> {
    let w = crate::release::write(
        &vm.image,
        crate::release::image_arch(&vm.image)?,
        &work.join("release-boot"),
        false,
    )?;
    vm.vars.insert("bundle_name".into(), w.bundle.name.clone());
    vm.vars
        .insert("bundle_version".into(), w.bundle.version.clone());
    vm.vars
        .insert("bundle_commit".into(), w.bundle.commit.clone());
    vm.image = w.dir;
    Ok(Box::new(()))
}

/// `hull status --json` reports the bundle the VM booted from.
pub fn status_version(vm: &Vm) -> Result<()> {
    ensure!(
        vm.image.join(BUNDLE_JSON).exists(),
        "the suite did not boot a bundle: {}",
        vm.image.display()
    );
    let st = vm.status()?;
    let b = &st["bundle"];
    ensure!(
        b["version"] == env!("CARGO_PKG_VERSION") && b["version"] == vm.var("bundle_version")?,
        "status shows bundle version {} (want {}): {b}",
        b["version"],
        env!("CARGO_PKG_VERSION")
    );
    ensure!(
        b["commit"] == vm.var("bundle_commit")? && b["name"] == vm.var("bundle_name")?,
        "status shows {b}"
    );
    let human = vm.hull_cmd(&["status"])?.success()?;
    let line = format!(
        "bundle    {} (hull {}, commit {})",
        vm.var("bundle_name")?,
        vm.var("bundle_version")?,
        vm.var("bundle_commit")?
    );
    ensure!(
        human.stdout.contains(&line),
        "`hull status` lacks {line:?}:\n{}",
        human.stdout
    );
    Ok(())
}

/// What the VM runs with is what the manifest says (item 3): init applied
/// exactly the manifest's `[vm] sysctls` (from the root's vm.json), each
/// read back, the kernel booted with the bundle's boot.json words, and
/// dockerd runs with `[vm.engine]`'s storage and log drivers and cgroupfs.
pub fn manifest_applied(vm: &Vm) -> Result<()> {
    let m = hull_image::Manifest::load(&crate::vm::manifest())?;
    let st = vm.status()?;
    let got: Vec<(String, String, String)> = st["guest"]["sysctls"]
        .as_array()
        .context("status has no guest sysctls")?
        .iter()
        .map(|o| {
            let f = |k: &str| o[k].as_str().unwrap_or("?").to_string();
            (f("key"), f("wanted"), f("result"))
        })
        .collect();
    let want: Vec<(String, String)> =
        m.vm.sysctls
            .iter()
            .map(|s| (s.key.replace('/', "."), s.value.clone()))
            .collect();
    ensure!(
        got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.0 == w.0 && g.1 == w.1 && (g.2 == "ok" || g.2 == "absent")),
        "the VM's sysctls are not the manifest's:\n  VM:       {got:?}\n  manifest: {want:?}"
    );
    let boot = hull_qemu::machine::BootConfig::load(&vm.image).map_err(anyhow::Error::msg)?;
    let r = vm
        .docker(&["run", "--rm", "busybox", "cat", "/proc/cmdline"])?
        .success()?;
    let words: Vec<&str> = r.out().split(' ').collect();
    for w in &boot.cmdline {
        ensure!(
            words.contains(&w.as_str()),
            "the kernel's command line lacks boot.json's {w:?}: {}",
            r.out()
        );
    }
    ensure!(
        r.out().contains("dm-mod.create="),
        "no computed verity table: {}",
        r.out()
    );
    // dockerd runs with the manifest's [vm.engine] defaults.
    let info = vm
        .docker(&[
            "info",
            "--format",
            "{{.Driver}} {{.LoggingDriver}} {{.CgroupDriver}}",
        ])?
        .success()?;
    let e = &m.vm.engine;
    let want = format!(
        "{} {} cgroupfs",
        e.get("storage-driver")
            .and_then(|v| v.as_str())
            .unwrap_or("?"),
        e.get("log-driver").and_then(|v| v.as_str()).unwrap_or("?"),
    );
    ensure!(
        info.out() == want,
        "dockerd runs with {:?}, the manifest's [vm.engine] says {want:?}",
        info.out()
    );
    Ok(())
}

fn flip(p: &Path, at: u64) -> Result<()> {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .with_context(|| p.display().to_string())?;
    let mut b = [0u8];
    f.read_exact_at(&mut b, at)?;
    b[0] ^= 0x01;
    f.write_all_at(&b, at)?;
    Ok(())
}

/// `hull up --image <bundle>` in a fresh home must fail naming `needle`,
/// and leave no VM behind: no data disk made, no console, no QEMU.
fn refused(hull: &Path, dir: &Path, case: &str, needle: &str) -> Result<()> {
    let vm = Vm::new(hull, dir, &[])?;
    let d = dir.display().to_string();
    let r = vm.hull_cmd(&["up", "--image", &d, "--accel", "tcg", "--timeout", "60"])?;
    if r.ok() {
        let _ = vm.hull_cmd(&["down", "--force"]);
        bail!("{case}: `hull up` booted a changed bundle: {r}");
    }
    ensure!(
        r.stderr.contains(needle) && r.stderr.contains("refusing to boot"),
        "{case}: `hull up` failed without naming it ({needle:?}): {r}"
    );
    for f in ["data.qcow2", "console.log", "state.json"] {
        ensure!(
            !vm.home.join(f).exists(),
            "{case}: refused, but {f} was made in the home first"
        );
    }
    eprintln!(
        "[vm-test]   {case}: {}",
        r.stderr.trim().lines().last().unwrap_or("")
    );
    Ok(())
}

/// One changed byte in each file of the bundle (the middle of the file;
/// bundle.json's first byte), an extra file, a missing file: each refused
/// by `hull up`, naming the file; the intact bundle passes the same check.
pub fn tampered_refused(hull: &Path, image: &Path) -> Result<()> {
    let work = super::boot::tempdir()?;
    let r = tampered_cases(hull, image, &work);
    let _ = fs::remove_dir_all(&work);
    r
}

fn tampered_cases(hull: &Path, image: &Path, work: &Path) -> Result<()> {
    let w = crate::release::write(image, crate::release::image_arch(image)?, work, false)?;
    let dir = &w.dir;
    bundle::verify(dir).context("the fresh bundle does not verify")?;
    ensure!(
        w.bundle.files.len() >= bundle::REQUIRED.len(),
        "{:?}",
        w.bundle.files.keys()
    );
    for (name, e) in &w.bundle.files {
        let p = dir.join(name);
        let at = e.bytes / 2;
        flip(&p, at)?;
        let r = refused(
            hull,
            dir,
            &format!("one byte of {name} (offset {at})"),
            &format!("{name} was changed (sha256 "),
        );
        flip(&p, at)?;
        r?;
    }
    let listing = dir.join(BUNDLE_JSON);
    flip(&listing, 0)?;
    let r = refused(
        hull,
        dir,
        "first byte of bundle.json",
        "bundle.json is malformed",
    );
    flip(&listing, 0)?;
    r?;
    let extra = dir.join("vmlinuz.orig");
    fs::write(&extra, b"x")?;
    let r = refused(
        hull,
        dir,
        "an extra file",
        "vmlinuz.orig is not part of the bundle",
    );
    fs::remove_file(&extra)?;
    r?;
    let qcow2 = dir.join("root.qcow2");
    fs::rename(&qcow2, work.join("root.qcow2"))?;
    let r = refused(hull, dir, "a missing file", "root.qcow2 is missing");
    fs::rename(work.join("root.qcow2"), &qcow2)?;
    r?;
    bundle::verify(dir).context("the restored bundle does not verify")?;
    Ok(())
}
