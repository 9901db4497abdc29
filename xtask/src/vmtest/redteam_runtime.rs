//! Red-team routes through hull-runtime (issue 12; attacks.md 26-29 and the
//! runtime's fail-open paths), each driven through `docker` as a user would,
//! each asserting the mechanism that stops it and that the attempt was real.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::escapes::{baseline, unchanged};
use super::vm::Vm;

/// A busybox root (probe included) in a fresh folder, for images with extras.
pub(super) fn rootfs_tar(tag: &str) -> Result<(PathBuf, PathBuf)> {
    let work = super::boot::tempdir()?.join(tag);
    std::fs::create_dir_all(&work)?;
    let tar = super::images::busybox_rootfs(&work)?;
    Ok((work, tar))
}

/// Appends entries to an uncompressed tar with Python's tarfile (it writes
/// device nodes and symlinks without needing them on this machine).
/// `entries`: (name, kind "blk"/"chr"/"sym", major, minor, link target).
pub(super) fn append_entries(tar: &Path, entries: &[(&str, &str, u32, u32, &str)]) -> Result<()> {
    let mut py = String::from("import tarfile,sys\nt=tarfile.open(sys.argv[1],'a')\n");
    for (name, kind, major, minor, link) in entries {
        let ty = match *kind {
            "blk" => "tarfile.BLKTYPE",
            "chr" => "tarfile.CHRTYPE",
            "sym" => "tarfile.SYMTYPE",
            "dir" => "tarfile.DIRTYPE",
            k => bail!("unknown tar entry kind {k}"),
        };
        py.push_str(&format!(
            "i=tarfile.TarInfo({name:?}); i.type={ty}; i.devmajor={major}; i.devminor={minor}; i.mode=0o666; i.uid=0; i.gid=0; i.linkname={link:?}\nt.addfile(i)\n"
        ));
    }
    py.push_str("t.close()\n");
    let st = std::process::Command::new("python3")
        .arg("-c")
        .arg(&py)
        .arg(tar)
        .status()
        .context("python3 (needed to write device nodes into a test image) is missing")?;
    ensure!(st.success(), "python3 could not extend {}", tar.display());
    Ok(())
}

pub(super) fn import(vm: &Vm, tar: &Path, tag: &str) -> Result<()> {
    vm.docker(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        &tar.display().to_string(),
        tag,
    ])?
    .success()
    .with_context(|| format!("docker import {tag}"))?;
    Ok(())
}

/// The virtio-blk major of the VM's kernel (`virtblk` in /proc/devices).
pub(super) fn virtblk_major(vm: &Vm) -> Result<u32> {
    let r = vm
        .docker(&["run", "--rm", "busybox", "cat", "/proc/devices"])?
        .success()?;
    r.stdout
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some(n), Some("virtblk")) => n.parse().ok(),
                _ => None,
            }
        })
        .with_context(|| format!("no virtblk major in the VM's /proc/devices: {r}"))
}

/// 26. Device nodes shipped in an image: block nodes for the virtio-blk
///     majors and /dev/mem's char node, outside /dev, read with and without
///     `--privileged`, and through a named volume Docker pre-fills from the
///     image. Every open fails with EACCES (nodev on every mount hull gives
///     a container); the nodes really are there with their numbers.
pub fn image_devices(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let vblk = virtblk_major(vm)?;
    let (work, tar) = rootfs_tar("devimg")?;
    append_entries(&tar, &[("evil", "dir", 0, 0, "")])?;
    let nodes: Vec<(String, &str, u32, u32)> = vec![
        ("evil/vda".into(), "blk", vblk, 0),
        ("evil/b254".into(), "blk", 254, 0),
        ("evil/b253".into(), "blk", 253, 0),
        ("evil/mem".into(), "chr", 1, 1),
    ];
    let entries: Vec<(&str, &str, u32, u32, &str)> = nodes
        .iter()
        .map(|(n, k, ma, mi)| (n.as_str(), *k, *ma, *mi, ""))
        .collect();
    append_entries(&tar, &entries)?;
    import(vm, &tar, "devimg:26")?;
    let _ = std::fs::remove_dir_all(&work);
    vm.docker(&["volume", "create", "devvol26"])?.success()?;
    let script = "ls -ln /evil; for f in /evil/vda /evil/b254 /evil/b253 /evil/mem; do hull-probe open-read $f; done; true";
    for (mode, extra) in [
        ("default", vec![]),
        ("--privileged", vec!["--privileged"]),
        ("named volume", vec!["-v", "devvol26:/evil"]),
        (
            "named volume, --privileged",
            vec!["--privileged", "-v", "devvol26:/evil"],
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(extra.iter().copied());
        args.extend(["devimg:26", "sh", "-c", script]);
        let r = vm.docker(&args)?.success()?;
        for (name, kind, major, minor) in &nodes {
            let base = name.trim_start_matches("evil/");
            let t = if *kind == "blk" { 'b' } else { 'c' };
            // busybox ls -ln: "brw-rw-rw- 1 0 0 254, 0 ... vda"
            let listed = r.stdout.lines().any(|l| {
                let norm = l.split_whitespace().collect::<Vec<_>>().join(" ");
                l.starts_with(t)
                    && l.ends_with(&format!(" {base}"))
                    && norm.contains(&format!(" {major}, {minor} "))
            });
            ensure!(
                listed,
                "{mode}: /{name} is not a {t} {major}:{minor} node in the container, so nothing was tried: {r}"
            );
            let want = format!("DENIED EACCES open(/{name})");
            ensure!(
                r.stdout.lines().any(|l| l == want),
                "{mode}: reading /{name} ({t} {major}:{minor}) was not refused with EACCES (nodev): {r}"
            );
        }
    }
    unchanged(vm, &b)
}

/// Audit events of `hull logs audit` whose mount target is `target`, by verdict.
fn audited(vm: &Vm, target: &str, verdict: &str) -> Result<usize> {
    let log = vm.hull_cmd(&["logs", "audit"])?.success()?;
    Ok(log
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["args"]["target"] == target && e["verdict"] == verdict)
        .count())
}

const SWAP_REFUSAL: &str = "a component of it is a symlink";

/// 27. A bind source approved at create, swapped for a symlink to the VM's
///     /run before `docker start` (and before `docker restart`): the runtime
///     refuses the source, naming it, and /h never lists the VM's /run.
pub fn bind_swap(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["volume", "create", "v27"])?.success()?;
    let data = "/var/lib/docker/volumes/v27/_data";
    vm.docker(&[
        "run", "--rm", "-v", "v27:/d", "busybox", "mkdir", "/d/x", "/d/y",
    ])?
    .success()?;
    let x = format!("{data}/x:/h");
    vm.docker(&["create", "--name", "t27", "-v", &x, "busybox", "ls", "/h"])?
        .success()
        .context("docker create with a bind under a volume was refused at the gate")?;
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            "v27:/d",
            "busybox",
            "sh",
            "-c",
            "rmdir /d/x && ln -s /run /d/x && ls -l /d/x",
        ])?
        .success()?;
    ensure!(
        r.out().contains("-> /run"),
        "the symlink was not put in place: {r}"
    );
    let r = vm.docker(&["start", "-a", "t27"])?;
    let msg = format!("refusing bind source {data}/x for /h: {SWAP_REFUSAL}");
    ensure!(
        !r.stdout.contains("docker") && !r.stdout.contains("hull"),
        "/h listed the VM's /run: {r}"
    );
    r.failure_with(&msg)?;
    let _ = vm.docker(&["rm", "-f", "t27"]);

    // dockerd's own restart: never passes the gate.
    let y = format!("{data}/y:/h");
    vm.docker(&[
        "run", "-d", "--name", "t27r", "-v", &y, "busybox", "sleep", "300",
    ])?
    .success()?;
    vm.docker(&[
        "run",
        "--rm",
        "-v",
        "v27:/d",
        "busybox",
        "sh",
        "-c",
        "rmdir /d/y && ln -s /run /d/y",
    ])?
    .success()?;
    let r = vm.docker(&["restart", "-t", "1", "t27r"])?;
    let listing = vm.docker(&["exec", "t27r", "ls", "/h"])?;
    let _ = vm.docker(&["rm", "-f", "t27r"]);
    ensure!(
        !listing.ok() || !(listing.stdout.contains("docker") || listing.stdout.contains("hull")),
        "after docker restart /h lists the VM's /run: {listing}"
    );
    r.failure_with(&format!(
        "refusing bind source {data}/y for /h: {SWAP_REFUSAL}"
    ))?;
    // dockerd's own sources still work: resolv.conf, hosts, hostname (every
    // container) and `--init` (its init binary, a symlink on the VM's
    // read-only root).
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "--init",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname && echo init-ok",
        ])?
        .success()?;
    ensure!(r.out().ends_with("init-ok"), "--init: {r}");
    unchanged(vm, &b)
}

/// Every x86_64 syscall name, from this machine's kernel headers.
fn all_syscalls() -> Result<Vec<String>> {
    let h = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
    let text = std::fs::read_to_string(h)
        .with_context(|| format!("{h} (linux-libc-dev) is needed to list every syscall"))?;
    let v: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#define __NR_"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    ensure!(v.len() > 300, "{h} lists only {} syscalls", v.len());
    Ok(v)
}

/// 28. A custom profile listing every syscall but `acct` as allowed (the gate
///     refuses a profile that allows every syscall Docker withholds, so the
///     one left out keeps this a profile the gate passes, which still allows
///     bpf, perf_event_open, open_by_handle_at and keyctl): hull's deny list
///     still answers (EPERM; ENOSYS for the keyring), where the kernel's own
///     answer would differ (EINVAL, E2BIG), and a mount still goes to
///     hull-guard (audited).
pub fn seccomp_widen(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{
            "names": all_syscalls()?.into_iter().filter(|n| n != "acct").collect::<Vec<_>>(),
            "action": "SCMP_ACT_ALLOW",
        }],
    });
    let dir = super::boot::tempdir()?;
    let file = dir.join("allow-all.json");
    std::fs::write(&file, profile.to_string())?;
    let opt = format!("seccomp={}", file.display());
    let script =
        "hull-probe bpf-bad-cmd; hull-probe perf-event-open; hull-probe open-by-handle-at; \
        hull-probe keyctl; mkdir -p /tmp/m28 && hull-probe mount tmpfs /tmp/m28 tmpfs; true";
    let r = vm.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    let r = r?.success()?;
    for want in [
        "DENIED EPERM bpf(unknown command)",
        "DENIED EPERM perf_event_open",
        "DENIED EPERM open_by_handle_at",
        "DENIED ENOSYS keyctl(KEYCTL_GET_KEYRING_ID)",
    ] {
        ensure!(
            r.stdout.lines().any(|l| l == want),
            "under an allow-everything profile, expected {want:?}: {r}"
        );
    }
    ensure!(
        audited(vm, "/tmp/m28", "allow")? > 0,
        "the tmpfs mount under the custom profile never reached hull-guard: {r}"
    );
    unchanged(vm, &b)
}

/// 29. `docker exec` runs in the container's cgroup (its /proc/self/cgroup is
///     the cgroup namespace's root, as the init's is).
pub fn exec_cgroup(vm: &Vm) -> Result<()> {
    vm.docker(&["run", "-d", "--name", "c29", "busybox", "sleep", "300"])?
        .success()?;
    let r = vm.docker(&[
        "exec",
        "c29",
        "sh",
        "-c",
        "cat /proc/self/cgroup; cat /proc/1/cgroup",
    ]);
    let _ = vm.docker(&["rm", "-f", "c29"]);
    let r = r?.success()?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(
        lines == ["0::/", "0::/"],
        "docker exec is not in the container's cgroup (own, then the init's): {r}"
    );
    Ok(())
}
