//! The guard's fail-open paths of the red-team issue, through `docker`:
//! protected mounts reached from outside the caller's mountinfo, and a fresh
//! sysfs sharing the superblock of the container's /sys. Each attempt is a
//! raw call of `hull-probe` (no path rewriting), must end in the guard's
//! EPERM, and must be in the audit log as the guard's denial. (The lost or
//! corrupt saved identity needs a guard restart with its state damaged:
//! host tier, `guard/tests/guard.rs`.)

use anyhow::{ensure, Result};
use serde_json::Value;

use super::escapes::sh_in;
use super::vm::Vm;

/// Both with a capability to mount and `--privileged`.
const MODES: [&[&str]; 2] = [&["--cap-add", "SYS_ADMIN"], &["--privileged"]];

/// How many of the guard's EPERM denials the audit log holds for `target`.
fn guard_eperm(vm: &Vm, target: &str) -> Result<usize> {
    let log = vm.hull_cmd(&["logs", "audit"])?.success()?;
    Ok(log
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["args"]["target"] == target && e["verdict"] == "deny" && e["result"] == "EPERM"
        })
        .count())
}

fn value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// A chroot whose mountinfo does not list /proc or its /proc/timer_list mask,
/// with fds on both kept from before: mounting over /proc and unmounting
/// the mask through `/proc/self/fd/N` are the guard's EPERM (it knows
/// protected mounts by unique id and root object, not by the caller's
/// mountinfo).
pub fn protected_by_mount_id(vm: &Vm) -> Result<()> {
    let script = r#"
        mkdir -p /tmp/cr/bin /tmp/cr/proc
        mount --bind /bin /tmp/cr/bin && mount --rbind /proc /tmp/cr/proc || exit 3
        chroot /tmp/cr /bin/sh -c '
            for f in 3 4; do
                id=$(sed -n "s/^mnt_id:[[:space:]]*//p" /proc/self/fdinfo/$f)
                echo "fd${f}_listed=$(grep -c "^$id " /proc/self/mountinfo)"
            done
            test -e /proc/self/fd/3/timer_list && echo fd3_is_proc=1
            hull-probe mount none /proc/self/fd/3 tmpfs
            hull-probe umount /proc/self/fd/4
        ' 3</proc 4</proc/timer_list
        echo masked_bytes=$(wc -c < /proc/timer_list)
        echo proc_covered=$(grep -c ' /proc tmpfs ' /proc/mounts)
    "#;
    for extra in MODES {
        let r = sh_in(vm, extra, script)?;
        let out = r.out();
        // The premise: the real /proc and its mask are behind the fds, and
        // the caller's mountinfo lists neither.
        ensure!(
            value(out, "fd3_listed") == Some("0") && value(out, "fd4_listed") == Some("0"),
            "{extra:?}: the chroot's mountinfo lists the mounts behind the fds:\n{out}"
        );
        ensure!(
            value(out, "fd3_is_proc") == Some("1"),
            "{extra:?}: fd 3 is not the container's /proc:\n{out}"
        );
        for call in [
            "DENIED EPERM mount(none, /proc/self/fd/3, tmpfs)",
            "DENIED EPERM umount2(/proc/self/fd/4)",
        ] {
            ensure!(out.contains(call), "{extra:?}: no `{call}`:\n{out}");
        }
        ensure!(
            value(out, "masked_bytes") == Some("0") && value(out, "proc_covered") == Some("0"),
            "{extra:?}: /proc or its mask changed:\n{out}"
        );
    }
    for target in ["/proc/self/fd/3", "/proc/self/fd/4"] {
        ensure!(
            guard_eperm(vm, target)? >= 2,
            "the guard's audit has no EPERM for {target} in both modes"
        );
    }
    Ok(())
}

/// After `mount -t sysfs` (the same superblock as /sys, one per network
/// namespace), mounting into /sys or over it stays the guard's EPERM;
/// mounting into the fresh sysfs is the container's own business.
pub fn fresh_sysfs_superblock(vm: &Vm) -> Result<()> {
    let script = r#"
        mkdir -p /tmp/s /tmp/x
        mount -t sysfs sysfs /tmp/s || exit 3
        echo superblocks=$(stat -c %d /sys /tmp/s | uniq | wc -l)
        before=$(grep -cE ' /sys(/[^ ]*)? ' /proc/self/mountinfo)
        hull-probe mount none /sys/kernel tmpfs
        hull-probe mount /tmp/x /sys - bind
        hull-probe mount none /tmp/s/kernel tmpfs
        after=$(grep -cE ' /sys(/[^ ]*)? ' /proc/self/mountinfo)
        echo sys_unchanged=$([ "$before" = "$after" ] && echo 1 || echo 0)
    "#;
    for extra in MODES {
        let r = sh_in(vm, extra, script)?;
        let out = r.out();
        ensure!(
            value(out, "superblocks") == Some("1"),
            "{extra:?}: the premise (one sysfs superblock) does not hold:\n{out}"
        );
        for call in [
            "DENIED EPERM mount(none, /sys/kernel, tmpfs)",
            "DENIED EPERM mount(/tmp/x, /sys, -)",
        ] {
            ensure!(out.contains(call), "{extra:?}: no `{call}`:\n{out}");
        }
        ensure!(
            out.contains("ALLOWED mount(none, /tmp/s/kernel, tmpfs)"),
            "{extra:?}: the fresh sysfs is the container's own:\n{out}"
        );
        ensure!(
            value(out, "sys_unchanged") == Some("1"),
            "{extra:?}: something was mounted on /sys:\n{out}"
        );
    }
    for target in ["/sys/kernel", "/sys"] {
        ensure!(
            guard_eperm(vm, target)? >= 2,
            "the guard's audit has no EPERM for {target} in both modes"
        );
    }
    Ok(())
}
