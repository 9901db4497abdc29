//! The escape suite: one scenario per item of `attacks.md`, each run as a
//! user would (through `docker`), with and without `--privileged`, and each
//! checking afterwards that the VM is unchanged (init's services, a VM-side
//! canary, the settings' digest, global sysctls).

use anyhow::{bail, ensure, Result};
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

/// Fails if anything in the baseline changed.
pub fn unchanged(vm: &Vm, b: &Baseline) -> Result<()> {
    let now = integrity(vm)?;
    ensure!(
        now == b.integrity,
        "the VM changed:\n before {}\n after  {now}",
        b.integrity
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
/// requires the kernel to have refused.
pub fn denied(vm: &Vm, extra: &[&str], probe: &[&str]) -> Result<String> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.push("busybox");
    args.push("hull-probe");
    args.extend_from_slice(probe);
    let r = vm.docker(&args)?;
    if r.code != Some(0) || !r.stdout.starts_with("DENIED") {
        bail!("escape attempt was not refused: {r}");
    }
    Ok(r.out().to_string())
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
fn denied_both(vm: &Vm, probe: &[&str]) -> Result<()> {
    denied(vm, &[], probe)?;
    denied(vm, &["--privileged"], probe)?;
    Ok(())
}

/// 5. Load a kernel module.
pub fn kernel_modules(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    denied_both(vm, &["finit-module"])?;
    denied_both(vm, &["init-module"])?;
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
///    made, and mounting one fails.
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
    denied_both(vm, &["mknod", "/tmp/vda", "block", "254", "0"])?;
    denied(
        vm,
        &["--privileged"],
        &["mount", "/dev/vda", "/mnt", "erofs"],
    )?;
    unchanged(vm, &b)
}

/// 2. core_pattern / uevent helper.
pub fn core_pattern(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    for (mode, r) in sh_both(
        vm,
        "echo '|/bin/sh -c reboot' > /proc/sys/kernel/core_pattern 2>/dev/null && echo WROTE; \
             echo /bin/sh > /sys/kernel/uevent_helper 2>/dev/null && echo WROTE-UEVENT; echo done",
    )? {
        ensure!(
            !r.stdout.contains("WROTE"),
            "a global helper was set with {mode}: {r}"
        );
    }
    unchanged(vm, &b)
}

/// 3. cgroup v1 hierarchies cannot be mounted (release_agent, CVE-2022-0492).
pub fn cgroup_v1_release_agent(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    for ctrl in ["rdma", "memory", "none,name=x"] {
        denied(
            vm,
            &["--privileged"],
            &["mount", "cgroup", "/mnt", "cgroup", ctrl],
        )?;
    }
    unchanged(vm, &b)
}

/// 4. A container cannot raise its own limits nor reach other cgroups.
pub fn cgroup_escalation(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let r = vm
        .docker(&[
            "run", "--rm", "--privileged", "--memory", "64m", "busybox", "sh", "-c",
            "echo max > /sys/fs/cgroup/memory.max 2>/dev/null && echo RAISED; cat /sys/fs/cgroup/memory.max; \
             ls /sys/fs/cgroup/../ | grep -c docker || true",
        ])?
        .success()?;
    ensure!(
        !r.stdout.contains("RAISED"),
        "the container raised its own memory limit: {r}"
    );
    ensure!(r.stdout.lines().next() == Some("67108864"), "{r}");
    unchanged(vm, &b)
}

/// 6. BPF: the VM's programs and maps stay out of reach.
pub fn bpf(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    denied_both(vm, &["bpf-prog-list"])?;
    denied_both(vm, &["bpf-map-list"])?;
    unchanged(vm, &b)
}

/// 8. CVE-2024-21626: no fd of the runtime leaks into the container, and a
///    working directory under /proc/self/fd is refused or stays inside.
pub fn leaked_fd_cwd(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    denied(vm, &[], &["chdir-fd"])?;
    denied(vm, &["--privileged"], &["chdir-fd"])?;
    for n in 3..=20 {
        let wd = format!("/proc/self/fd/{n}");
        let r = vm.docker(&["run", "--rm", "-w", &wd, "busybox", "sh", "-c", "cat ../../../etc/hostname 2>/dev/null; ls ../../../var/lib/hull 2>/dev/null && echo ESCAPED"])?;
        ensure!(!r.stdout.contains("ESCAPED"), "-w {wd} reached the VM: {r}");
    }
    unchanged(vm, &b)
}

/// 10. Read-only mounts stay read-only: directly, through a bind, inside
///     `unshare -m`, after chroot.
pub fn remount_read_only(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["volume", "create", "ro-vol"])?.success()?;
    let script = "mount -o remount,rw /data 2>/dev/null && echo RW-DIRECT; \
        mkdir -p /b && mount --bind /data /b && (mount -o remount,rw,bind /b 2>/dev/null && echo RW-BIND); \
        unshare -m sh -c 'mount -o remount,rw /data 2>/dev/null && echo RW-UNSHARE'; \
        touch /data/x 2>/dev/null && echo WROTE; echo done";
    let r = sh_in(vm, &["--privileged", "-v", "ro-vol:/data:ro"], script)?;
    ensure!(r.out() == "done", "a read-only mount became writable: {r}");
    unchanged(vm, &b)
}

/// 11. Masks and the container's own root mounts cannot be removed.
pub fn unmask(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let script = "for p in /proc/sys /proc/keys /proc/kcore /proc/timer_list /sys/firmware /proc/sysrq-trigger /proc /sys /; do \
        umount $p 2>/dev/null && echo UNMOUNTED-$p; umount -l $p 2>/dev/null && echo DETACHED-$p; done; echo done";
    let r = vm
        .docker(&["run", "--rm", "--privileged", "busybox", "sh", "-c", script])?
        .success()?;
    ensure!(r.out() == "done", "a mask or root mount came off: {r}");
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
    for opt in [
        "seccomp=unconfined",
        "systempaths=unconfined",
        "apparmor=unconfined",
    ] {
        let r = vm.docker(&[
            "run",
            "--rm",
            "--security-opt",
            opt,
            "busybox",
            "hull-probe",
            "vsock",
        ]);
        // Refused at the door, or run with vsock still denied.
        if let Ok(r) = r {
            ensure!(
                !r.stdout.contains("ALLOWED socket(AF_VSOCK)"),
                "--security-opt {opt}: {r}"
            );
        }
    }
    unchanged(vm, &b)
}

/// 18. Devices: no VM device reaches a container, none can be created.
pub fn devices(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    denied_both(vm, &["mknod", "/tmp/mem", "char", "1", "1"])?;
    denied(
        vm,
        &["--privileged"],
        &["mknod", "/tmp/kmsg", "char", "1", "11"],
    )?;
    let r = vm.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/vda:/dev/xvda",
        "busybox",
        "sh",
        "-c",
        "ls /dev/xvda 2>/dev/null || echo absent",
    ]);
    if let Ok(r) = r {
        ensure!(
            r.out() == "absent" || !r.ok(),
            "--device /dev/vda reached the container: {r}"
        );
    }
    unchanged(vm, &b)
}

/// 19. Global kernel state: sysctls, sysrq, reboot, swap, kexec, clock.
pub fn global_kernel_state(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let script = "for k in kernel/panic kernel/printk kernel/pid_max vm/overcommit_memory fs/protected_symlinks kernel/hostname; do \
        echo 1 > /proc/sys/$k 2>/dev/null; done; echo c > /proc/sysrq-trigger 2>/dev/null && echo SYSRQ; echo done";
    for (mode, r) in sh_both(vm, script)? {
        ensure!(
            !r.stdout.contains("SYSRQ"),
            "sysrq reached the VM ({mode}): {r}"
        );
    }
    for probe in ["reboot", "swapon", "kexec", "settimeofday"] {
        denied_both(vm, &[probe])?;
    }
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
    denied_both(vm, &["vsock", "2", "1024"])?;
    denied_both(vm, &["vsock", "2", "2375"])?;
    unchanged(vm, &b)
}

/// 21. Cross-container: other containers' processes are invisible.
pub fn cross_container(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["run", "-d", "--name", "victim", "busybox", "sleep", "300"])?
        .success()?;
    let pid = vm
        .docker(&["inspect", "-f", "{{.State.Pid}}", "victim"])?
        .success()?
        .out()
        .to_string();
    let r1 = denied(vm, &["--privileged"], &["kill", &pid]);
    let r2 = denied(vm, &["--privileged"], &["ptrace", &pid]);
    vm.docker(&["rm", "-f", "victim"])?.success()?;
    r1?;
    r2?;
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
    denied(vm, &ro, &["mount-setattr-rw", "/data"])?;
    denied(vm, &ro, &["fspick", "/"])?;
    denied(vm, &ro, &["fspick", "/data"])?;
    denied(vm, &ro, &["fsopen", "cgroup"])?;
    denied(vm, &ro, &["fsopen", "proc"])?;
    denied(vm, &ro, &["fsopen", "ext4"])?;
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
        (touch /ro14/x 2>/dev/null && echo WROTE-RO); \
        grep -c ' /ro14 ro,' /proc/self/mountinfo | sed 's/^/ro_mounts=/'; \
        hull-probe toctou umount 1500 /tmp/own14 /proc/timer_list; \
        wc -c < /proc/timer_list | sed 's/^/masked_bytes=/'; \
        grep -c ' /proc/timer_list ' /proc/self/mountinfo | sed 's/^/masks=/'";
    let r = sh_in(vm, &["--privileged", "-v", "toctou-vol:/ro14:ro"], script)?;
    let out = r.out();
    ensure!(
        !out.contains("WROTE-RO"),
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
