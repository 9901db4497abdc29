//! The kernel's own hardening switches (kernel-config/README.md, second
//! round), tried from containers through `docker run`, with and without
//! `--privileged` (a privileged container is root only in its own user
//! namespace, which none of these switches trust).

use anyhow::{ensure, Result};

use super::escapes::{baseline, unchanged};
use super::vm::Vm;

/// TIOCSTI, a low fixed mapping and a forced /proc/pid/mem write are each
/// refused by the mechanism the kernel option adds, after the probe showed
/// its precondition was in place.
pub fn kernel_switches(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // Every check runs, so one report shows each switch that is missing.
    let mut failed = Vec::new();
    for extra in [&[][..], &["--privileged"][..]] {
        // LEGACY_TIOCSTI off: EIO without CAP_SYS_ADMIN in the VM's namespace
        // (with it on, a process could type into its controlling tty).
        let r = denied(vm, extra, &["tiocsti"]).and_then(|out| {
            ensure!(
                out.contains("SETUP controlling tty is a fresh pty")
                    && out.contains("DENIED EIO ioctl(TIOCSTI)"),
                "not refused by the legacy switch: {out}"
            );
            Ok(())
        });
        failed.extend(r.err().map(|e| format!("TIOCSTI {extra:?}: {e:#}")));
        // DEFAULT_MMAP_MIN_ADDR=65536: 32 KiB is below the floor (EPERM from
        // the capability check for CAP_SYS_RAWIO in the VM's namespace).
        let r = denied(vm, extra, &["mmap-low", "0x8000"]).and_then(|out| {
            ensure!(
                out.contains("DENIED EPERM mmap at 0x8000"),
                "not refused by mmap_min_addr: {out}"
            );
            Ok(())
        });
        failed.extend(r.err().map(|e| format!("mmap at 32 KiB {extra:?}: {e:#}")));
        // PROC_MEM_NO_FORCE: the write obeys the page's protection.
        let r = denied(vm, extra, &["proc-mem-write"]).and_then(|out| {
            ensure!(
                out.contains("SETUP page")
                    && out.contains("DENIED EIO pwrite(/proc/self/mem)")
                    && out.contains("NOW the page holds 'a'"),
                "not refused by the page protection: {out}"
            );
            Ok(())
        });
        failed.extend(
            r.err()
                .map(|e| format!("/proc/self/mem write {extra:?}: {e:#}")),
        );
    }
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    unchanged(vm, &b)
}

/// `hull-probe <probe>` in a fresh busybox container; it must report a
/// refusal (exit 0, a `DENIED` line). Its `SETUP`/`NOW` lines stay in the
/// returned text for the caller to check.
fn denied(vm: &Vm, extra: &[&str], probe: &[&str]) -> Result<String> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend(["busybox", "hull-probe"]);
    args.extend_from_slice(probe);
    let r = vm.docker(&args)?;
    ensure!(
        r.code == Some(0) && r.stdout.lines().any(|l| l.starts_with("DENIED")),
        "the attempt was not refused: {r}"
    );
    Ok(r.stdout.clone())
}
