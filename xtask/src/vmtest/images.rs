//! Test images, made locally (no registry is reachable): a busybox image from
//! the build machine's busybox-static, and bigger ones built on top of it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::vm::Vm;

const BUSYBOX: &str = "/bin/busybox";

/// The escape suite's probe, linked statically so it runs in any image.
pub fn probe_bin() -> Result<PathBuf> {
    probe_bin_for(hull_qemu::arch::Arch::host())
}

/// [`probe_bin`] for the guest architecture `arch` (cross-built with
/// Debian's cross linker when it is not the host's).
pub fn probe_bin_for(arch: hull_qemu::arch::Arch) -> Result<PathBuf> {
    let triple = arch.rust_target();
    let st = std::process::Command::new("cargo")
        .current_dir(crate::paths::workspace())
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "hull-probe",
            "--target",
            triple,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .envs(crate::vm::cross_env(arch))
        .status()?;
    if !st.success() {
        bail!("building hull-probe failed");
    }
    Ok(crate::paths::target()
        .join(triple)
        .join("release/hull-probe"))
}

/// A tarball of a minimal busybox root (static binary, applet links, passwd).
pub fn busybox_rootfs(dir: &Path) -> Result<PathBuf> {
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: run `cargo xtask deps` (busybox-static)");
    }
    busybox_rootfs_from(dir, Path::new(BUSYBOX), &probe_bin()?, "busybox")
}

/// [`busybox_rootfs`] from a given static busybox and probe (another
/// architecture's). The applet links are the host busybox's list: the
/// guest's busybox cannot run here, and an applet it lacks only fails
/// when called.
pub fn busybox_rootfs_from(
    dir: &Path,
    busybox: &Path,
    probe: &Path,
    name: &str,
) -> Result<PathBuf> {
    let root = dir.join(format!("{name}-root"));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "mnt"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    if !Path::new(BUSYBOX).exists() {
        bail!("{BUSYBOX} is missing: run `cargo xtask deps` (busybox-static)");
    }
    std::fs::copy(busybox, root.join("bin/busybox"))
        .with_context(|| format!("copying {}", busybox.display()))?;
    std::fs::copy(probe, root.join("bin/hull-probe"))?;
    let list = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let tar = dir.join(format!("{name}.tar"));
    tar_dir(&root, &tar)?;
    Ok(tar)
}

/// A root-owned tarball of a folder's content, for `docker import`.
pub fn tar_dir(root: &Path, tar: &Path) -> Result<()> {
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--owner=0", "--group=0", "-cf"])
        .arg(tar)
        .arg(".")
        .status()?;
    if !st.success() {
        bail!("tar of {} failed", root.display());
    }
    Ok(())
}

/// A Debian root (the VM's suite and mirror) with `packages`, built with
/// mmdebstrap like the VM root and cached under `<cache>/rootfs/` by the
/// hash of what goes in.
fn debian_rootfs(name: &str, packages: &[&str]) -> Result<PathBuf> {
    use sha2::Digest;
    let m = hull_image::Manifest::load(&crate::vm::manifest())?;
    let mut h = sha2::Sha256::new();
    h.update(format!("hull-{name}-1\0").as_bytes());
    h.update(m.debian.suite.as_bytes());
    h.update(m.debian.mirror.as_bytes());
    h.update(packages.join(",").as_bytes());
    let key = hex::encode(h.finalize());
    let dir = crate::paths::cache().join("rootfs");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(format!("{name}-{}.tar", &key[..16]));
    if out.exists() {
        return Ok(out);
    }
    eprintln!("[vm-test] building the {name} image (mmdebstrap, cached)");
    let tmp = out.with_extension("tmp");
    let st = std::process::Command::new("mmdebstrap")
        .env("SOURCE_DATE_EPOCH", m.image.source_date_epoch.to_string())
        .args(["--mode=root", "--format=tar", "--variant=minbase"])
        .arg(format!("--include={}", packages.join(",")))
        .arg("--dpkgopt=path-exclude=/usr/share/doc/*")
        .arg("--dpkgopt=path-exclude=/usr/share/man/*")
        .arg("--dpkgopt=path-exclude=/usr/share/locale/*")
        .arg(&m.debian.suite)
        .arg(&tmp)
        .arg(&m.debian.mirror)
        .stdout(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("mmdebstrap for the {name} image failed");
    }
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// Imports `busybox:latest` into the VM.
pub fn import_busybox(vm: &Vm, work: &Path) -> Result<()> {
    let tar = busybox_rootfs(work)?;
    vm.docker(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        &tar.display().to_string(),
        "busybox:latest",
    ])?
    .success()
    .context("docker import busybox")?;
    Ok(())
}

/// Debian packages of the Docker-in-Docker test image: the VM's own engine
/// packages plus the CLI, so the inner engine is the same Docker hull ships.
const DIND_PACKAGES: &[&str] = &[
    "docker.io",
    "docker-cli",
    "containerd",
    "runc",
    "iptables",
    "ca-certificates",
    "busybox",
];

/// A Docker-in-Docker root (trixie, built with mmdebstrap like the VM root),
/// cached by the hash of its package list under `<cache>/rootfs/`. It carries
/// a busybox tarball at /busybox.tar for the inner engine to import.
pub fn dind_rootfs(work: &Path) -> Result<PathBuf> {
    let base = debian_rootfs("dind", DIND_PACKAGES)?;
    // Append the inner busybox image to a copy of the cached root.
    let out = work.join("dind.tar");
    std::fs::copy(&base, &out)?;
    let bb = busybox_rootfs(work)?;
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(work)
        .args(["--owner=0", "--group=0", "-rf"])
        .arg(&out)
        .arg(bb.file_name().context("busybox tar name")?)
        .status()?;
    if !st.success() {
        bail!("adding busybox.tar to the Docker-in-Docker image failed");
    }
    Ok(out)
}

/// Imports `dind:local` (dockerd as its command) into the VM.
pub fn import_dind(vm: &Vm, work: &Path) -> Result<()> {
    let tar = dind_rootfs(work)?;
    vm.docker_timeout(
        &[
            "import",
            "-c",
            "CMD [\"dockerd\"]",
            &tar.display().to_string(),
            "dind:local",
        ],
        std::time::Duration::from_secs(900),
    )?
    .success()
    .context("docker import dind")?;
    Ok(())
}

/// A Debian (trixie) root with systemd as /sbin/init.
pub fn systemd_rootfs() -> Result<PathBuf> {
    debian_rootfs("systemd", &["systemd", "systemd-sysv", "dbus"])
}
