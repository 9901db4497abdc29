//! What hull imposes on every container whatever its bundle asks. Each rule is
//! a deliberate difference from runc/crun (listed in the README).

use oci_spec::runtime::{Capability, Spec};

/// Masked in every container, `--privileged` included (ECI §5 and Docker's list).
/// Directories get an empty read-only tmpfs, files /dev/null.
pub const FORCED_MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Read-only in every container (ECI §5).
pub const FORCED_READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"];

/// `/proc/sys` stays writable only for privileged containers (Docker-in-Docker
/// sets netns-local knobs). Global knobs are still refused there by the kernel:
/// their files belong to the VM's root, which is unmapped in the container.
pub const READONLY_UNLESS_PRIVILEGED: &[&str] = &["/proc/sys"];

/// Device nodes a container may have, whatever `linux.devices` lists.
pub struct SafeDevice {
    pub path: &'static str,
    pub major: u64,
    pub minor: u64,
    /// Only when the bundle asks for it.
    pub on_request: bool,
}

pub const SAFE_DEVICES: &[SafeDevice] = &[
    SafeDevice {
        path: "/dev/null",
        major: 1,
        minor: 3,
        on_request: false,
    },
    SafeDevice {
        path: "/dev/zero",
        major: 1,
        minor: 5,
        on_request: false,
    },
    SafeDevice {
        path: "/dev/full",
        major: 1,
        minor: 7,
        on_request: false,
    },
    SafeDevice {
        path: "/dev/random",
        major: 1,
        minor: 8,
        on_request: false,
    },
    SafeDevice {
        path: "/dev/urandom",
        major: 1,
        minor: 9,
        on_request: false,
    },
    SafeDevice {
        path: "/dev/tty",
        major: 5,
        minor: 0,
        on_request: false,
    },
    SafeDevice {
        path: "/dev/fuse",
        major: 10,
        minor: 229,
        on_request: true,
    },
];

/// Docker's `--privileged` shape: CAP_SYS_ADMIN in the bounding set and no
/// seccomp profile. hull still confines such a container (own userns, safe
/// devices, masks, seccomp with the mount family trapped), but relaxes what
/// only makes sense for it: writable /proc/sys and cgroup subtree.
pub fn is_privileged(spec: &Spec) -> bool {
    let sys_admin = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| b.contains(&Capability::SysAdmin))
        .unwrap_or(false);
    let no_seccomp = spec
        .linux()
        .as_ref()
        .map(|l| l.seccomp().is_none())
        .unwrap_or(true);
    sys_admin && no_seccomp
}

pub fn has_cap(spec: &Spec, cap: Capability) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| b.contains(&cap))
        .unwrap_or(false)
}
