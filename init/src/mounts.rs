//! The API filesystems. The root stays read-only; everything that must change
//! at run time lives on tmpfs (/run, /tmp) or the data disk (/var/lib).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};

struct Api {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
    mode: u32,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

fn api() -> [Api; 9] {
    [
        Api {
            source: "proc",
            target: "/proc",
            fstype: "proc",
            flags: NOSUID_NODEV_NOEXEC,
            data: "",
            mode: 0o555,
        },
        Api {
            source: "sysfs",
            target: "/sys",
            fstype: "sysfs",
            flags: NOSUID_NODEV_NOEXEC,
            data: "",
            mode: 0o555,
        },
        Api {
            source: "devtmpfs",
            target: "/dev",
            fstype: "devtmpfs",
            flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
            data: "mode=0755",
            mode: 0o755,
        },
        Api {
            source: "devpts",
            target: "/dev/pts",
            fstype: "devpts",
            flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
            data: "newinstance,ptmxmode=0666,mode=0620,gid=5",
            mode: 0o755,
        },
        Api {
            source: "shm",
            target: "/dev/shm",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
            data: "mode=1777",
            mode: 0o1777,
        },
        Api {
            source: "mqueue",
            target: "/dev/mqueue",
            fstype: "mqueue",
            flags: NOSUID_NODEV_NOEXEC,
            data: "",
            mode: 0o755,
        },
        // cgroup v2 only, ever: v1 hierarchies are the release_agent escape.
        Api {
            source: "cgroup2",
            target: "/sys/fs/cgroup",
            fstype: "cgroup2",
            flags: NOSUID_NODEV_NOEXEC,
            data: "nsdelegate,memory_recursiveprot",
            mode: 0o755,
        },
        Api {
            source: "run",
            target: "/run",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
            data: "mode=0755",
            mode: 0o755,
        },
        Api {
            source: "tmp",
            target: "/tmp",
            fstype: "tmpfs",
            flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
            data: "mode=1777",
            mode: 0o1777,
        },
    ]
}

/// Mounts every API filesystem; returns the failures (init goes on without them).
pub fn mount_api() -> Vec<String> {
    let mut failed = Vec::new();
    for m in api() {
        let target = Path::new(m.target);
        if !target.exists() {
            // Only possible below a tmpfs we mounted (the root is read-only).
            if let Err(e) = fs::create_dir_all(target) {
                failed.push(format!("mkdir {}: {e}", m.target));
                continue;
            }
            let _ = fs::set_permissions(target, fs::Permissions::from_mode(m.mode));
        }
        let data = (!m.data.is_empty()).then_some(m.data);
        match mount(Some(m.source), target, Some(m.fstype), m.flags, data) {
            Ok(()) => crate::debug!("mounted {} on {}", m.fstype, m.target),
            Err(e) => failed.push(format!("mount {} on {}: {e}", m.fstype, m.target)),
        }
    }
    dev_links();
    failed
}

fn dev_links() {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = symlink(target, link);
    }
    // The devpts instance above is private: /dev/ptmx must be its ptmx.
    let _ = fs::remove_file("/dev/ptmx");
    let _ = symlink("pts/ptmx", "/dev/ptmx");
}

/// Whether `path` is on a read-only mount.
pub fn is_read_only(path: &str) -> bool {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .unwrap_or(false)
}

/// The filesystem type of the mount at exactly `target` (the topmost one),
/// from /proc/self/mountinfo.
pub fn fstype_of(target: &str) -> Option<String> {
    let mounts = procfs::process::Process::myself().ok()?.mountinfo().ok()?;
    mounts
        .0
        .into_iter()
        .rev()
        .find(|m| m.mount_point == std::path::Path::new(target))
        .map(|m| m.fs_type)
}
