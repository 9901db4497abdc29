//! The arm64 smoke suite: the arm64 image (`cargo xtask image --arch arm64`)
//! booted under `qemu-system-aarch64 -M virt -accel tcg` on this x86_64
//! machine, driven with the host's docker CLI like the x86 suites. Small on
//! purpose: emulation makes every step several times slower than the x86
//! VM's, and the x86 suite stays the full one. What it proves: the same
//! channel, settings delivery and walls work on the other architecture.
//!
//! Scenarios (each `arm64/<name>`, selectable with `--filter`):
//! boot, docker-version, run-uname, namespaces (uid_map, refused
//! `--pid=host`), escape-05-kernel-modules (arm64's seccomp deny list),
//! power-off.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use hull_qemu::arch::Arch;

use super::vm::Vm;
use super::{conformance, escapes, images, report, selected, Args, Tally};

pub const SCENARIOS: &[&str] = &[
    "arm64/boot",
    "arm64/docker-version",
    "arm64/run-uname",
    "arm64/namespaces",
    "arm64/escape-05-kernel-modules",
    "arm64/power-off",
];

/// Debian's static busybox for arm64, from the VM's own suite (trixie):
/// mmdebstrap's `extract` variant fetches and unpacks the one package
/// without running anything of it; cached under `<cache>/rootfs/`.
pub fn busybox_static_arm64() -> Result<PathBuf> {
    use sha2::Digest;
    let m = hull_image::Manifest::load(&crate::vm::manifest())?;
    let mut h = sha2::Sha256::new();
    h.update(b"hull-busybox-arm64-1\0");
    h.update(m.debian.suite.as_bytes());
    h.update(m.debian.mirror.as_bytes());
    let key = hex::encode(h.finalize());
    let dir = crate::paths::cache().join("rootfs");
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join(format!("busybox-arm64-{}", &key[..16]));
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!(
        "[vm-test] fetching {}'s busybox-static for arm64",
        m.debian.suite
    );
    let tmp = dir.join(format!("busybox-arm64-{}.d", &key[..16]));
    let _ = std::fs::remove_dir_all(&tmp);
    let st = std::process::Command::new("mmdebstrap")
        .args([
            "--mode=root",
            "--format=directory",
            "--variant=extract",
            "--architectures=arm64",
            "--include=busybox-static",
        ])
        .arg(&m.debian.suite)
        .arg(&tmp)
        .arg(&m.debian.mirror)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running mmdebstrap (`cargo xtask deps`)")?;
    let found = ["usr/bin/busybox", "bin/busybox"]
        .iter()
        .map(|p| tmp.join(p))
        .find(|p| p.is_file());
    let res = match (st.success(), found) {
        (true, Some(b)) => std::fs::copy(&b, &bin).map(|_| ()).map_err(Into::into),
        (true, None) => Err(anyhow::anyhow!(
            "busybox-static for arm64 unpacked, but no usr/bin/busybox in {}",
            tmp.display()
        )),
        (false, _) => Err(anyhow::anyhow!("mmdebstrap of busybox-static:arm64 failed")),
    };
    let _ = std::fs::remove_dir_all(&tmp);
    res.map(|()| bin)
}

/// Imports `busybox:latest` built of arm64 binaries into the VM.
fn import_busybox(vm: &Vm, work: &Path) -> Result<()> {
    let bb = busybox_static_arm64()?;
    let probe = images::probe_bin_for(Arch::Arm64)?;
    let tar = images::busybox_rootfs_from(work, &bb, &probe, "busybox-arm64")?;
    vm.docker_timeout(
        &[
            "import",
            "-c",
            "CMD [\"/bin/sh\"]",
            &tar.display().to_string(),
            "busybox:latest",
        ],
        Duration::from_secs(300),
    )?
    .success()
    .context("docker import of the arm64 busybox")?;
    Ok(())
}

/// The engine is the arm64 one: `docker version` answers through the
/// channel, and its server says so.
fn docker_version(vm: &Vm) -> Result<()> {
    let r = vm
        .docker(&["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"])?
        .success()?;
    ensure!(
        r.out() == "linux/arm64",
        "docker version: the server is not linux/arm64: {r}"
    );
    Ok(())
}

/// A container of the arm64 busybox runs, on an aarch64 kernel.
fn run_uname(vm: &Vm) -> Result<()> {
    let r = vm
        .docker(&["run", "--rm", "busybox", "uname", "-m"])?
        .success()?;
    ensure!(r.out() == "aarch64", "uname -m in a container: {r}");
    Ok(())
}

/// `hull down` powers the VM off cleanly: PSCI SYSTEM_OFF ends QEMU (the
/// console says so), nothing is left running.
fn power_off(vm: &mut Vm) -> Result<()> {
    let state = std::fs::read_to_string(vm.home.join("state.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
    let qemu = v["qemu_pid"]
        .as_u64()
        .context("state.json has no qemu_pid")?;
    let r = vm.down()?;
    ensure!(r.ok(), "hull down: {r}");
    let gone = Instant::now();
    while Path::new(&format!("/proc/{qemu}")).exists() {
        if gone.elapsed() > Duration::from_secs(30) {
            bail!("QEMU (pid {qemu}) still runs 30 s after `hull down`");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let console = std::fs::read_to_string(vm.home.join("console.log")).unwrap_or_default();
    ensure!(
        console.contains("reboot: Power down"),
        "the console does not show a kernel power-off (PSCI) after `hull down`; its tail: {}",
        console
            .lines()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    Ok(())
}

/// Runs the selected arm64 scenarios on `image` with this `hull`.
pub fn run_suite(args: &Args, image: &Path, hull: &Path) -> Result<Tally> {
    let want = |n: &str| selected(args.filter.as_deref(), n);
    let mut tally = Tally::default();
    if !SCENARIOS.iter().any(|n| want(n)) {
        return Ok(tally);
    }
    let arch =
        Arch::of_kernel(&image.join(hull_image::pack::KERNEL)).map_err(anyhow::Error::msg)?;
    ensure!(
        arch == Arch::Arm64,
        "{}: the arm64 suite needs an arm64 image, this one is {arch}",
        image.display()
    );
    let work = super::boot::tempdir()?;
    let t0 = Instant::now();
    // Emulation: give the boot more time than the x86 suites' default.
    let mut vm = Vm::new(
        hull,
        image,
        &["--memory", "2048", "--timeout", "600", "--arch", "arm64"],
    )?;
    vm.vars.insert("suite".into(), "arm64".into());
    let t = Instant::now();
    if let Err(e) = vm.up() {
        report("arm64/boot", t.elapsed(), Err(e), None, &mut tally);
        return Ok(tally);
    }
    eprintln!(
        "[vm-test] arm64: VM up (engine answering) in {:.1}s",
        vm.boot_time.as_secs_f64()
    );
    report("arm64/boot", t.elapsed(), Ok(()), Some(&vm), &mut tally);
    let t = Instant::now();
    if let Err(e) = import_busybox(&vm, &work) {
        report("arm64/setup", t.elapsed(), Err(e), Some(&vm), &mut tally);
        return Ok(tally);
    }
    let par: &[(&str, super::Par)] = &[
        ("arm64/docker-version", docker_version),
        ("arm64/run-uname", run_uname),
        ("arm64/namespaces", conformance::s3_namespaces),
        ("arm64/escape-05-kernel-modules", escapes::kernel_modules),
    ];
    // One at a time: under emulation parallel scenarios only queue.
    for (name, f) in par.iter().filter(|(n, _)| want(n)) {
        let t = Instant::now();
        let r = f(&vm);
        report(name, t.elapsed(), r, Some(&vm), &mut tally);
    }
    if want("arm64/power-off") {
        let t = Instant::now();
        let r = power_off(&mut vm);
        report("arm64/power-off", t.elapsed(), r, Some(&vm), &mut tally);
    }
    drop(vm);
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "[vm-test] arm64 suite finished in {:.0}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(tally)
}
