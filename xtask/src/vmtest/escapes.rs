//! The escape suite: one scenario per item of `attacks.md`, each run as a
//! user would (through `docker`), with and without `--privileged`, and each
//! checking afterwards that the VM is unchanged (init's services, a VM-side
//! canary, the settings' digest, global sysctls).

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::time::Duration;

use super::vm::Vm;

/// What must not change: services and their restart counts, and init's
/// integrity snapshot.
pub struct Baseline {
    integrity: Value,
    services: Vec<(String, Value, Value)>,
}

fn services(vm: &Vm) -> Result<Vec<(String, Value, Value)>> {
    let st = vm.status()?;
    Ok(st["guest"]["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("").to_string(),
                s["ready"].clone(),
                s["restarts"].clone(),
            )
        })
        .collect())
}

pub fn baseline(vm: &Vm) -> Result<Baseline> {
    Ok(Baseline {
        integrity: integrity(vm)?,
        services: services(vm)?,
    })
}

fn integrity(vm: &Vm) -> Result<Value> {
    let v = hull_qemu::control::request(
        &vm.home.join("vsock.sock"),
        &serde_json::json!({"op": "integrity"}),
    )?;
    ensure!(v.get("error").is_none(), "integrity: {v}");
    Ok(v)
}

/// The VM's wall-clock offset (realtime minus boot time, seconds) out of a
/// snapshot; it is compared within a second or two, since the two clocks are
/// read one after the other.
fn clock(v: &mut Value) -> Result<i64> {
    v.as_object_mut()
        .and_then(|o| o.remove("clock_offset_s"))
        .and_then(|c| c.as_i64())
        .with_context(|| format!("the integrity snapshot has no clock_offset_s: {v}"))
}

/// Fails if anything in the baseline changed: settings, the canary, the
/// watched sysctls (the hostname among them), uevent_helper, the root's
/// read-only state and the VM's clock (a settimeofday moves its offset).
pub fn unchanged(vm: &Vm, b: &Baseline) -> Result<()> {
    let mut now = integrity(vm)?;
    let mut before = b.integrity.clone();
    let (c0, c1) = (clock(&mut before)?, clock(&mut now)?);
    ensure!(
        (c1 - c0).abs() <= 2,
        "the VM's clock moved: realtime - boottime was {c0} s, is {c1} s"
    );
    ensure!(
        now == before,
        "the VM changed:\n before {before}\n after  {now}"
    );
    let s = services(vm)?;
    ensure!(
        s == b.services,
        "services changed: before {:?}, after {s:?}",
        b.services
    );
    Ok(())
}

/// Runs the probe in a fresh container (`extra` are docker run flags) and
/// requires the refusal to carry `errno` (the one the wall in front of the
/// attempt answers), and every object the probe named to have been there
/// (no `SETUP missing` line).
pub fn denied(vm: &Vm, extra: &[&str], probe: &[&str], errno: &str) -> Result<String> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.push("busybox");
    args.push("hull-probe");
    args.extend_from_slice(probe);
    let r = vm.docker(&args)?;
    refused_with(&r.stdout, errno)
        .with_context(|| format!("hull-probe {probe:?} {extra:?}: {r}"))?;
    ensure!(r.code == Some(0), "hull-probe {probe:?} {extra:?}: {r}");
    Ok(r.out().to_string())
}

/// `out` (a probe's output) holds a `DENIED <errno>` line and no `SETUP
/// missing` line.
pub fn refused_with(out: &str, errno: &str) -> Result<()> {
    if let Some(l) = out.lines().find(|l| l.starts_with("SETUP missing")) {
        bail!("the attempt had nothing to act on ({l})");
    }
    let want = format!("DENIED {errno} ");
    ensure!(
        out.lines().any(|l| l.starts_with(&want)),
        "not refused with {errno}"
    );
    Ok(())
}

/// Each of `lines` is in `out`, whole.
pub fn has_lines(out: &str, lines: &[&str], what: &str) -> Result<()> {
    for l in lines {
        ensure!(
            out.lines().any(|x| x.trim() == *l),
            "{what}: no line `{l}` in:\n{out}"
        );
    }
    Ok(())
}

/// Runs `script` with busybox's sh twice, as is and `--privileged`; each
/// run must exit 0.
pub fn sh_both(vm: &Vm, script: &str) -> Result<Vec<(&'static str, super::vm::Run)>> {
    let mut out = Vec::new();
    for (mode, extra) in [
        ("default", &[][..]),
        ("--privileged", &["--privileged"][..]),
    ] {
        out.push((mode, sh_in(vm, extra, script)?));
    }
    Ok(out)
}

/// `docker run --rm <extra> busybox sh -c <script>`, which must succeed.
pub fn sh_in(vm: &Vm, extra: &[&str], script: &str) -> Result<super::vm::Run> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend(["busybox", "sh", "-c", script]);
    vm.docker(&args)?.success()
}

/// Both with default settings and with `--privileged`.
fn denied_both(vm: &Vm, probe: &[&str], errno: &str) -> Result<()> {
    denied(vm, &[], probe, errno)?;
    denied(vm, &["--privileged"], probe, errno)?;
    Ok(())
}

/// 5. Load a kernel module.
pub fn kernel_modules(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // EPERM: hull's seccomp deny list (the kernel behind it has no module
    // support at all and would answer ENOSYS).
    denied_both(vm, &["finit-module"], "EPERM")?;
    denied_both(vm, &["init-module"], "EPERM")?;
    let r = vm.docker(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "test ! -e /proc/modules && echo none",
    ])?;
    ensure!(r.out() == "none", "/proc/modules exists: {r}");
    unchanged(vm, &b)
}

/// 1. Mount the VM's disk: no block devices in the container, none can be
///    made, and mounting one that an image ships is refused.
pub fn vm_disk(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    for (mode, r) in sh_both(
        vm,
        "ls /dev/vda /dev/vdb /dev/mem /dev/kmsg /dev/port 2>/dev/null; echo listed",
    )? {
        ensure!(r.out() == "listed", "VM devices visible with {mode}: {r}");
    }
    // Asking for the disk by name is refused at the door.
    vm.docker(&[
        "run",
        "--rm",
        "--privileged",
        "--device",
        "/dev/vda",
        "busybox",
        "true",
    ])?
    .failure_with("is a VM device")?;
    // EPERM: mknod of a device needs CAP_MKNOD in the VM's user namespace
    // (the kernel's check; the container's root has it only in its own).
    denied_both(vm, &["mknod", "/tmp/vda", "block", "254", "0"], "EPERM")?;
    // The node can still come from an image (dockerd, the VM's root, makes
    // it): the virtio-blk nodes of the VM's disks are there, and mounting
    // each is the guard's EPERM (no mount whose source is a block device;
    // the nodev mount behind it would answer EACCES). The data disk holds
    // the canary: the write through the would-be mount is attempted, and
    // the integrity snapshot shows the canary unchanged.
    let major = super::redteam_runtime::virtblk_major(vm)?;
    let (work, tar) = super::redteam_runtime::rootfs_tar("disk01")?;
    super::redteam_runtime::append_entries(
        &tar,
        &[
            ("disks", "dir", 0, 0, ""),
            ("disks/vda", "blk", major, 0, ""),
            ("disks/vdb", "blk", major, 16, ""),
        ],
    )?;
    let imported = super::redteam_runtime::import(vm, &tar, "disk01:1");
    let _ = std::fs::remove_dir_all(&work);
    imported?;
    let script = "mkdir -p /tmp/disk01; for d in vda vdb; do \
        hull-probe mount /disks/$d /tmp/disk01 ext4; hull-probe mount /disks/$d /tmp/disk01 erofs ro; done; \
        hull-probe write /tmp/disk01/hull/canary x; true";
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "--privileged",
            "disk01:1",
            "sh",
            "-c",
            script,
        ])?
        .success()?;
    let out = r.out();
    has_lines(
        out,
        &[
            "SETUP exists /disks/vda (block)",
            "SETUP exists /disks/vdb (block)",
            "DENIED EPERM mount(/disks/vda, /tmp/disk01, ext4)",
            "DENIED EPERM mount(/disks/vda, /tmp/disk01, erofs)",
            "DENIED EPERM mount(/disks/vdb, /tmp/disk01, ext4)",
            "DENIED EPERM mount(/disks/vdb, /tmp/disk01, erofs)",
            // Nothing got mounted: the canary's path does not exist.
            "SETUP missing /tmp/disk01/hull/canary: No such file or directory (os error 2)",
            "DENIED ENOENT open(/tmp/disk01/hull/canary, O_WRONLY|O_CREAT|O_TRUNC)",
        ],
        "the image's disk nodes",
    )?;
    ensure!(
        audited(vm, "/tmp/disk01", "deny")? >= 4,
        "the guard's audit does not show the four disk mounts refused"
    );
    unchanged(vm, &b)
}

/// 2. core_pattern / uevent helper.
pub fn core_pattern(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // core_pattern exists (core dumps land in the crashing process's cwd,
    // as under Docker Engine) and holds init's "core"; a container cannot
    // point it at a program: /proc/sys is read-only in containers
    // (EROFS), and the file belongs to the VM's root, which no container
    // root is (EACCES with --privileged). The kernel could not run a "|helper" anyway (empty static
    // user-mode helper path, kernel-config). There is no uevent_helper at
    // all (no UEVENT_HELPER), and creating one fails on the read-only /sys.
    let script = "cat /proc/sys/kernel/core_pattern; \
        hull-probe write /proc/sys/kernel/core_pattern '|/bin/sh -c reboot'; \
        hull-probe write /sys/kernel/uevent_helper /bin/sh; echo done";
    for (mode, r) in sh_both(vm, script)? {
        has_lines(
            r.out(),
            &[
                "core",
                "SETUP missing /sys/kernel/uevent_helper: No such file or directory (os error 2)",
                "done",
            ],
            mode,
        )?;
        // By default /proc/sys is read-only (EROFS); `--privileged` leaves
        // it writable, and then the file's owner, the VM's root, which a
        // container's root (an unprivileged id in the VM) is not, refuses
        // it (EACCES).
        let wall = if mode == "default" { "EROFS" } else { "EACCES" };
        ensure!(
            r.out().lines().any(
                |l| l.starts_with(&format!("DENIED {wall} open(/proc/sys/kernel/core_pattern"))
            ),
            "core_pattern was not refused with {wall} ({mode}): {r}"
        );
        // Creating it instead: EROFS where /sys is mounted read-only, else
        // ENOENT (sysfs creates no files); the wall is the missing knob,
        // asserted above.
        ensure!(
            r.out().lines().any(|l| {
                l.starts_with("DENIED EROFS open(/sys/kernel/uevent_helper")
                    || l.starts_with("DENIED ENOENT open(/sys/kernel/uevent_helper")
            }),
            "uevent_helper was written ({mode}): {r}"
        );
    }
    ensure!(
        b.integrity["uevent_helper"] == "absent"
            && b.integrity["sysctls"]["kernel.core_pattern"] == "core",
        "the VM has a uevent_helper, or a core_pattern other than init's \"core\": {}",
        b.integrity
    );
    unchanged(vm, &b)
}

/// 3. cgroup v1 hierarchies cannot be mounted (release_agent, CVE-2022-0492).
pub fn cgroup_v1_release_agent(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // The guard's EPERM (cgroup v1 is not on its allow-list), in the audit.
    for ctrl in ["rdma", "memory", "none,name=x"] {
        let r = sh_in(
            vm,
            &["--privileged"],
            &format!("mkdir -p /tmp/cg03 && hull-probe mount cgroup /tmp/cg03 cgroup - {ctrl}"),
        )?;
        refused_with(r.out(), "EPERM").with_context(|| format!("cgroup v1 {ctrl}: {r}"))?;
    }
    ensure!(
        audited(vm, "/tmp/cg03", "deny")? >= 3,
        "the guard's audit does not show the three cgroup v1 mounts refused"
    );
    unchanged(vm, &b)
}

/// 4. A container cannot raise its own limits nor reach other cgroups.
pub fn cgroup_escalation(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // A sibling that is running while the attacker looks for it.
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "cg04-sibling",
        "busybox",
        "sleep",
        "300",
    ])?
    .success()?;
    let sibling = vm
        .docker(&[
            "inspect",
            "-f",
            "{{.Id}} {{.State.Running}}",
            "cg04-sibling",
        ])?
        .success();
    // EACCES: the container's cgroup files belong to the VM's root, which
    // its user namespace does not map (with --privileged the cgroup mount
    // is read-write, so no EROFS stands in front; nsdelegate's EPERM for
    // the namespace root's own files is behind). The sibling's cgroup (its
    // directory is named after its id) is nowhere under the container's
    // cgroup mount nor under a fresh cgroup2 mount: both show the
    // container's own cgroup namespace root.
    let script = |id: &str| {
        format!(
            "hull-probe write /sys/fs/cgroup/memory.max max; echo limit=$(cat /sys/fs/cgroup/memory.max); \
             echo own=$(cat /proc/self/cgroup); \
             mkdir -p /tmp/cg2 && mount -t cgroup2 none /tmp/cg2 && echo fresh_mount=1; \
             echo fresh_is_own=$([ \"$(ls /tmp/cg2)\" = \"$(ls /sys/fs/cgroup)\" ] && echo 1 || echo 0); \
             echo sibling_seen=$(find /sys/fs/cgroup /tmp/cg2 -name '*{id}*' 2>/dev/null | wc -l)"
        )
    };
    let r = sibling.and_then(|s| {
        let (id, running) = s.out().split_once(' ').unwrap_or(("", ""));
        ensure!(
            id.len() == 64 && running == "true",
            "the sibling is not running: {s}"
        );
        vm.docker(&[
            "run",
            "--rm",
            "--privileged",
            "--memory",
            "64m",
            "busybox",
            "sh",
            "-c",
            &script(id),
        ])?
        .success()
    });
    vm.docker(&["rm", "-f", "cg04-sibling"])?.success()?;
    let r = r?;
    let out = r.out();
    refused_with(out, "EACCES").with_context(|| format!("memory.max: {r}"))?;
    has_lines(
        out,
        &[
            "limit=67108864",
            "own=0::/",
            "fresh_mount=1",
            "fresh_is_own=1",
            "sibling_seen=0",
        ],
        "the container's cgroup view",
    )?;
    unchanged(vm, &b)
}

/// 6. BPF: the VM's programs and maps stay out of reach.
pub fn bpf(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // EPERM: hull's seccomp deny list (behind it: unprivileged BPF is off,
    // and the container has no CAP_BPF in the VM's namespace).
    denied_both(vm, &["bpf-prog-list"], "EPERM")?;
    denied_both(vm, &["bpf-map-list"], "EPERM")?;
    unchanged(vm, &b)
}

/// 8. CVE-2024-21626: no fd of the runtime leaks into the container, and a
///    working directory under /proc/self/fd is refused or stays inside.
pub fn leaked_fd_cwd(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // "none": the probe looked at fds 3..64 and found none open.
    denied(vm, &[], &["chdir-fd"], "none")?;
    denied(vm, &["--privileged"], &["chdir-fd"], "none")?;
    let mut ran = 0;
    for n in 3..=20 {
        let wd = format!("/proc/self/fd/{n}");
        // Were fd n a leaked directory of the VM, ../../../ would climb out
        // of the container's root: the canary write is attempted there.
        let r = vm.docker(&[
            "run",
            "--rm",
            "-w",
            &wd,
            "busybox",
            "sh",
            "-c",
            "hull-probe write ../../../var/lib/hull/canary x; ls ../../../var/lib/hull 2>/dev/null && echo ESCAPED; echo ran",
        ])?;
        if r.ok() {
            ran += 1;
            ensure!(
                !r.stdout.contains("ESCAPED")
                    && r.stdout
                        .contains("DENIED ENOENT open(../../../var/lib/hull/canary"),
                "-w {wd} reached the VM: {r}"
            );
        } else {
            // The runtime could not enter a directory that does not exist in
            // the container (the fd is not open there).
            ensure!(
                r.stderr.contains(&wd) || r.stdout.contains(&wd),
                "-w {wd}: failed for another reason than the missing directory: {r}"
            );
        }
    }
    eprintln!("[vm-test] escape/08: {ran} of 18 -w /proc/self/fd/N runs started");
    unchanged(vm, &b)
}

/// 10. Read-only mounts stay read-only: directly, through a bind, inside
///     `unshare -m`, after chroot.
pub fn remount_read_only(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["volume", "create", "ro-vol"])?.success()?;
    // EPERM from the guard in every case (remounting an initial mount, or a
    // bind or copy of it); the kernel's lock behind it (MNT_LOCK_READONLY)
    // would answer EPERM to the bind remount too. The write: EROFS.
    let script = "hull-probe mount - /data - remount-rw; \
        mkdir -p /b && mount --bind /data /b && echo bound=1; hull-probe mount - /b - bind-remount-rw; \
        unshare -m hull-probe mount - /data - bind-remount-rw | sed 's/^/unshare: /'; \
        chroot / hull-probe mount - /data - remount-rw | sed 's/^/chroot: /'; \
        hull-probe write /data/x; echo done";
    let r = sh_in(vm, &["--privileged", "-v", "ro-vol:/data:ro"], script)?;
    has_lines(
        r.out(),
        &[
            "SETUP exists /data (dir)",
            "DENIED EPERM mount(-, /data, -)",
            "bound=1",
            "DENIED EPERM mount(-, /b, -)",
            "unshare: DENIED EPERM mount(-, /data, -)",
            "chroot: DENIED EPERM mount(-, /data, -)",
            "DENIED EROFS open(/data/x, O_WRONLY|O_CREAT|O_TRUNC)",
            "done",
        ],
        "a read-only mount",
    )?;
    unchanged(vm, &b)
}

/// 11. Masks and the container's own root mounts cannot be removed.
pub fn unmask(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // The guard's EPERM for each, but /proc/sys: the guard passes that call
    // on and the kernel's lock refuses it (EINVAL: MNT_LOCKED, a mount made
    // before the user namespace cannot be taken off from inside it).
    // /proc/keys is not there: the kernel has no KEYS.
    // /proc/kcore and /proc/sysrq-trigger are not there either (no
    // PROC_KCORE, no MAGIC_SYSRQ): nothing to unmask.
    let paths = [
        "/proc/sys",
        "/proc/bus",
        "/proc/timer_list",
        "/sys/firmware",
        "/proc",
        "/sys",
        "/",
    ];
    let script = format!(
        "for p in {}; do hull-probe umount $p; hull-probe umount $p detach; done; echo done",
        paths.join(" ")
    );
    let r = sh_in(vm, &["--privileged"], &script)?;
    let out = r.out();
    ensure!(
        !out.lines().any(|l| l.starts_with("SETUP missing")),
        "a mask to remove is not there: {r}"
    );
    for p in paths {
        let errno = if p == "/proc/sys" { "EINVAL" } else { "EPERM" };
        has_lines(
            out,
            &[
                &format!("DENIED {errno} umount2({p})"),
                &format!("DENIED {errno} umount2({p}, DETACH)"),
            ],
            "a mask or root mount",
        )?;
    }
    unchanged(vm, &b)
}

/// 17. Namespace and security flags: sharing the VM's namespaces is refused
///     (ECI §3); seccomp and masks stay whatever the flags say.
pub fn namespace_flags(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    for (flag, msg) in [
        ("--pid=host", "can't share namespaces"),
        ("--network=host", "share a network namespace with the host"),
        ("--ipc=host", "with the host"),
        ("--uts=host", "with the host"),
        ("--cgroupns=host", "with the host"),
    ] {
        vm.docker(&["run", "--rm", flag, "busybox", "true"])?
            .failure_with(msg)?;
    }
    let m = vm
        .docker(&[
            "run",
            "--rm",
            "--userns=host",
            "busybox",
            "cat",
            "/proc/self/uid_map",
        ])?
        .success()?;
    ensure!(
        !m.out().contains("4294967295"),
        "--userns=host was honoured: {m}"
    );
    // Refused at the door with the gate's message, or run with vsock still
    // the seccomp filter's EPERM.
    for (opt, refusal) in [
        (
            "seccomp=unconfined",
            Some("hull: seccomp can't be disabled"),
        ),
        (
            "systempaths=unconfined",
            Some("(--security-opt systempaths=unconfined is not allowed)"),
        ),
        ("apparmor=unconfined", None),
    ] {
        let r = vm.docker(&[
            "run",
            "--rm",
            "--security-opt",
            opt,
            "busybox",
            "hull-probe",
            "vsock",
        ])?;
        match refusal {
            Some(msg) => {
                r.failure_with(msg)?;
            }
            None => refused_with(&r.stdout, "EPERM")
                .with_context(|| format!("--security-opt {opt}: {r}"))?,
        }
    }
    unchanged(vm, &b)
}

/// 18. Devices: no VM device reaches a container, none can be created.
pub fn devices(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // EPERM: mknod needs CAP_MKNOD in the VM's user namespace.
    denied_both(vm, &["mknod", "/tmp/mem", "char", "1", "1"], "EPERM")?;
    denied(
        vm,
        &["--privileged"],
        &["mknod", "/tmp/kmsg", "char", "1", "11"],
        "EPERM",
    )?;
    // Refused by the gate, under another name too.
    vm.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/vda:/dev/xvda",
        "busybox",
        "true",
    ])?
    .failure_with("is a VM device")?;
    unchanged(vm, &b)
}

/// 19. Global kernel state: sysctls, sysrq, reboot, swap, kexec, clock.
pub fn global_kernel_state(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // Writes to the VM-wide sysctls land in the container's emulation or
    // are refused; `unchanged` shows the VM's values stayed. The kernel has
    // no magic SysRq: /proc/sysrq-trigger is absent.
    let script = "for k in kernel/panic kernel/printk kernel/pid_max vm/overcommit_memory fs/protected_symlinks kernel/hostname; do \
        echo 1 > /proc/sys/$k 2>/dev/null; done; test -e /proc/sysrq-trigger && echo SYSRQ-EXISTS; echo done";
    for (mode, r) in sh_both(vm, script)? {
        ensure!(
            r.out() == "done",
            "sysrq exists in the VM's kernel ({mode}): {r}"
        );
    }
    // Each attempt on something the kernel would act on without the wall;
    // EPERM from hull's seccomp deny list. reboot(RESTART) in the
    // container's pid namespace would kill its init (CAP_SYS_BOOT there is
    // all the kernel asks); swapon gets a real swap file on a volume's ext4;
    // kexec_load and settimeofday (which the snapshot's clock would show).
    let priv_swap = ["--privileged", "-v", "swap19:/swap"];
    vm.docker(&["volume", "create", "swap19"])?.success()?;
    let r = sh_in(
        vm,
        &priv_swap,
        "dd if=/dev/zero of=/swap/file bs=1M count=8 2>/dev/null && chmod 600 /swap/file && mkswap /swap/file >/dev/null && echo swapfile=1; \
         od -A n -c -j 4086 -N 10 /swap/file | tr -d ' '",
    )?;
    has_lines(r.out(), &["swapfile=1", "SWAPSPACE2"], "the swap file")?;
    // Every attempt runs, so one report names each wall that is missing.
    let mut failed = Vec::new();
    for extra in [&[][..], &["--privileged"][..]] {
        for probe in [&["reboot", "restart"][..], &["kexec"], &["settimeofday"]] {
            failed.extend(denied(vm, extra, probe, "EPERM").err());
        }
    }
    for extra in [&priv_swap[..], &["-v", "swap19:/swap"]] {
        failed.extend(denied(vm, extra, &["swapon", "/swap/file"], "EPERM").err());
    }
    all_refused(&failed)?;
    // The container's own hostname is its own business.
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            "hostname inner && hostname",
        ])?
        .success()?;
    ensure!(r.out() == "inner", "{r}");
    unchanged(vm, &b)
}

/// 20. No vsock for containers: the socket itself is refused.
pub fn vsock(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // EPERM: the seccomp filter's AF_VSOCK rule.
    denied_both(vm, &["vsock", "2", "1024"], "EPERM")?;
    denied_both(vm, &["vsock", "2", "2375"], "EPERM")?;
    unchanged(vm, &b)
}

/// 21. Cross-container: another container's processes, even where they are
///     visible (`--pid container:<victim>`), cannot be signalled or traced.
pub fn cross_container(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["run", "-d", "--name", "victim", "busybox", "sleep", "300"])?
        .success()?;
    // The victim's sleep is pid 1 of the pid namespace the attacker joins;
    // the attacker has its own user namespace and id range, so EPERM comes
    // from the kernel's credential check (kill: neither the victim's uid nor
    // CAP_KILL over its user namespace; ptrace: the same, and Yama's
    // ptrace_scope=1 behind it).
    let join = ["--privileged", "--pid", "container:victim"];
    let r1 = denied(vm, &join, &["kill", "1"], "EPERM");
    let r2 = denied(vm, &join, &["ptrace", "1"], "EPERM");
    vm.docker(&["rm", "-f", "victim"])?.success()?;
    let mut failed = Vec::new();
    for r in [r1, r2] {
        failed.extend(
            r.and_then(|r| has_lines(&r, &["SETUP visible pid 1 (sleep)"], "the victim"))
                .err(),
        );
    }
    all_refused(&failed)?;
    unchanged(vm, &b)
}

/// 22. Processes the runtime starts in a container (exec) get no fds of it.
pub fn exec_leaks(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "exec-leak",
        "busybox",
        "sleep",
        "300",
    ])?
    .success()?;
    let r = vm.docker(&["exec", "exec-leak", "hull-probe", "chdir-fd"])?;
    let r2 = vm.docker(&[
        "exec",
        "--privileged",
        "exec-leak",
        "hull-probe",
        "chdir-fd",
    ])?;
    vm.docker(&["rm", "-f", "exec-leak"])?.success()?;
    ensure!(
        r.code == Some(0) && r.stdout.starts_with("DENIED"),
        "docker exec leaked fds: {r}"
    );
    ensure!(
        r2.code == Some(0) && r2.stdout.starts_with("DENIED"),
        "docker exec --privileged leaked fds: {r2}"
    );
    unchanged(vm, &b)
}

/// 24. VM surface: nothing listens on the VM's network, the only vsock ports
///     are the engine's and the control port, and there is no console login.
pub fn vm_surface(vm: &mut Vm) -> Result<()> {
    let v = hull_qemu::control::request(
        &vm.home.join("vsock.sock"),
        &serde_json::json!({"op": "listening"}),
    )?;
    let list = v["listening"].as_array().cloned().unwrap_or_default();
    ensure!(list.is_empty(), "sockets listening in the VM: {list:?}");
    let uds = vm.home.join("vsock.sock");
    let ports: Vec<u32> = (1..=4096).chain((4097..=65535).step_by(251)).collect();
    let mut open = Vec::new();
    for p in ports {
        if hull_qemu::hvsock::connect_blocking(&uds, p).is_ok() {
            open.push(p);
        }
    }
    ensure!(
        open == [1024, 2375],
        "guest vsock ports answering: {open:?}"
    );
    let console = std::fs::read_to_string(vm.home.join("console.log"))?;
    ensure!(!console.contains("login:"), "a login prompt on the console");
    Ok(())
}

/// 13. The new mount API is vetted like mount(2).
pub fn new_mount_api(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["volume", "create", "api-ro"])?.success()?;
    let ro = ["--privileged", "-v", "api-ro:/data:ro"];
    // The guard's EPERM for each: clearing the read-only flag of an initial
    // mount, reconfiguring superblocks the container did not create, and
    // filesystems off its allow-list (proc is never made through fsopen).
    denied(vm, &ro, &["mount-setattr-rw", "/data"], "EPERM")?;
    denied(vm, &ro, &["fspick", "/"], "EPERM")?;
    denied(vm, &ro, &["fspick", "/data"], "EPERM")?;
    denied(vm, &ro, &["fsopen", "cgroup"], "EPERM")?;
    denied(vm, &ro, &["fsopen", "proc"], "EPERM")?;
    denied(vm, &ro, &["fsopen", "ext4"], "EPERM")?;
    // The container's own new-API mounts work.
    let r = vm.docker(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "hull-probe",
        "fsopen",
        "tmpfs",
    ])?;
    ensure!(
        r.stdout.starts_with("ALLOWED"),
        "fsopen(tmpfs) refused: {r}"
    );
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

/// 14. TOCTOU: a second thread rewrites the path of a vetted mount call
///     between the guard's check and the kernel's use. The forbidden mounts
///     stay as they were, and the audit log shows the race reached the guard
///     with both paths.
pub fn toctou(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["volume", "create", "toctou-vol"])?.success()?;
    let script = "mkdir -p /tmp/own14 && mount -t tmpfs own /tmp/own14 && \
        hull-probe toctou remount 1500 /tmp/own14 /ro14 && \
        hull-probe write /ro14/x; \
        grep -c ' /ro14 ro,' /proc/self/mountinfo | sed 's/^/ro_mounts=/'; \
        hull-probe toctou umount 1500 /tmp/own14 /proc/timer_list; \
        wc -c < /proc/timer_list | sed 's/^/masked_bytes=/'; \
        grep -c ' /proc/timer_list ' /proc/self/mountinfo | sed 's/^/masks=/'";
    let r = sh_in(vm, &["--privileged", "-v", "toctou-vol:/ro14:ro"], script)?;
    let out = r.out();
    // EROFS: the volume's read-only mount (its flag and the kernel's lock).
    ensure!(
        out.contains("DENIED EROFS open(/ro14/x, O_WRONLY|O_CREAT|O_TRUNC)"),
        "the read-only volume became writable: {r}"
    );
    ensure!(
        out.contains("ro_mounts=1"),
        "the read-only volume changed: {r}"
    );
    ensure!(
        out.contains("masked_bytes=0"),
        "/proc/timer_list was unmasked: {r}"
    );
    ensure!(
        out.contains("masks=1"),
        "the /proc/timer_list mask came off: {r}"
    );
    // The race was real: the container's own remounts went through, and the
    // guard saw (and refused) the rewritten paths.
    ensure!(
        out.lines()
            .any(|l| l.starts_with("RACED ok=") && !l.starts_with("RACED ok=0 ")),
        "no remount of the container's own tmpfs succeeded, so nothing raced: {r}"
    );
    ensure!(
        audited(vm, "/ro14", "deny")? > 0 && audited(vm, "/proc/timer_list", "deny")? > 0,
        "the rewritten paths never reached the guard"
    );
    ensure!(
        audited(vm, "/tmp/own14", "allow")? > 0,
        "no allowed call was audited"
    );
    unchanged(vm, &b)
}

/// 7. CVE-2019-5736: a process in the container watches for the runtime
///    entering it for `docker exec` and tries to reopen the runtime's
///    executable through /proc/PID/exe for writing.
pub fn runtime_overwrite(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&[
        "run",
        "-d",
        "--privileged",
        "--name",
        "exe-race",
        "busybox",
        "hull-probe",
        "exe-race",
        "240",
        "/tmp/stop",
    ])?
    .success()?;
    let mut execs = Vec::new();
    for _ in 0..4 {
        execs.push(vm.docker(&["exec", "exe-race", "true"]));
        execs.push(vm.docker(&["exec", "--privileged", "exe-race", "true"]));
    }
    let stop = vm.docker(&["exec", "exe-race", "touch", "/tmp/stop"]);
    let waited = vm.docker_timeout(&["wait", "exe-race"], Duration::from_secs(60));
    let logs = vm.docker(&["logs", "exe-race"]);
    vm.docker(&["rm", "-f", "exe-race"])?.success()?;
    for e in execs {
        e?.success()?;
    }
    stop?.success()?;
    waited?.success()?;
    let logs = logs?.success()?;
    ensure!(
        logs.stdout.starts_with("DENIED"),
        "the runtime's executable was opened for writing: {logs}"
    );
    // The race ran: the probe caught processes from outside the container
    // (the runtime entering it), each either refused /proc/PID/exe (the
    // runtime is non-dumpable) or let it open an executable that it then
    // could not reopen for writing.
    let count = |key: &str| -> u64 {
        logs.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0)
    };
    let (refused, foreign, write_refused) = (
        count("exe_refused"),
        count("foreign"),
        count("write_refused"),
    );
    ensure!(
        refused + foreign > 0 && write_refused == foreign,
        "no race with the runtime took place (no foreign process caught): {logs}"
    );
    eprintln!("[vm-test] escape/07: {}", logs.out());
    unchanged(vm, &b)
}

/// 9. Masked-path races (the shape of the 2025 runc advisories): volumes a
///    hostile container filled with device names that are symlinks (into
///    /proc, or elsewhere in the root) or plain files are mounted over other
///    containers' /dev, with a tty, while a third container keeps flipping
///    more links. Devices and masks come from the VM, never from the volume:
///    whatever holds a device name (a link into /proc or elsewhere, a file)
///    gets the VM's own node mounted over it unfollowed, and the volume's
///    content is kept.
pub fn masked_path_races(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let fill = |vol: &str, script: &str| -> Result<()> {
        let v = format!("{vol}:/x");
        vm.docker(&["run", "--rm", "-v", &v, "busybox", "sh", "-c", script])?
            .success()?;
        Ok(())
    };
    fill(
        "evil-dev",
        "ln -s /proc/sys/kernel/panic /x/null && ln -s /proc/sysrq-trigger /x/console",
    )?;
    fill("odd-dev", "ln -s /tmp/n /x/null && echo keep > /x/zero")?;
    let probe = "echo 1 > /dev/null; echo 9 > /dev/full; echo 2 > /dev/urandom; \
        echo x > /dev/console; echo 1 > /proc/sysrq-trigger 2>/dev/null; \
        echo null=$(stat -L -c %t,%T /dev/null) zero=$(stat -L -c %t,%T /dev/zero) \
        urandom=$(stat -L -c %t,%T /dev/urandom); echo done";
    let run = |vol: &str| {
        let v = format!("{vol}:/dev");
        vm.docker(&[
            "run",
            "--rm",
            "--privileged",
            "-t",
            "-v",
            &v,
            "busybox",
            "sh",
            "-c",
            probe,
        ])
    };
    let vm_devices = |r: &super::vm::Run| {
        r.ok() && r.out().contains("null=1,3 zero=1,5 urandom=1,9") && r.out().contains("done")
    };
    // The runtime covers each device name with the VM's node whatever holds
    // it, never following a link: the writes reach the VM's /dev/null, not
    // kernel.panic (which `unchanged` checks below).
    let evil = run("evil-dev")?;
    ensure!(
        vm_devices(&evil),
        "a /dev volume linking into /proc did not get the VM's devices: {evil}"
    );
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "odd-dev-flipper",
        "-v",
        "odd-dev:/x",
        "busybox",
        "sh",
        "-c",
        "while :; do ln -sfn /proc/sys/vm/overcommit_memory /x/random; rm -f /x/random; \
         ln -sfn /proc/sysrq-trigger /x/tty; rm -f /x/tty; usleep 500; done",
    ])?
    .success()?;
    let runs: Vec<_> = (0..3).map(|_| run("odd-dev")).collect();
    vm.docker(&["rm", "-f", "odd-dev-flipper"])?.success()?;
    let mut started = 0;
    for r in runs {
        let r = r?;
        if r.ok() {
            started += 1;
            ensure!(
                vm_devices(&r),
                "the container's devices are not the VM's: {r}"
            );
        } else {
            // The flipper won every retry: the name kept changing under the
            // runtime, which then refuses rather than guesses.
            ensure!(
                r.stderr.contains("kept changing"),
                "unexpected failure: {r}"
            );
        }
    }
    eprintln!("[vm-test] escape/09: {started} of 3 racing starts ran, the rest were refused");
    let kept = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            "odd-dev:/x",
            "busybox",
            "cat",
            "/x/zero",
        ])?
        .success()?;
    ensure!(
        kept.out() == "keep",
        "the volume's own file changed: {kept}"
    );
    unchanged(vm, &b)
}

/// Fails with every one of `failed` (each attempt's own reason), so that one
/// run reports all the walls that are missing, not just the first.
fn all_refused(failed: &[anyhow::Error]) -> Result<()> {
    ensure!(
        failed.is_empty(),
        "{}",
        failed
            .iter()
            .map(|e| format!("{e:#}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}
