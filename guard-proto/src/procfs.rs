//! The layout of hull-guard's procfs emulation (a FUSE mount), which the
//! runtime binds over a container's /proc files: one directory per
//! container, named by the first VM id of its range, holding the files below.

use std::path::{Path, PathBuf};

use crate::idrange::FIRST_ID;

/// (file name in a container's directory, path inside the container it is
/// bound over). The runtime binds each before the container enters its user
/// namespace, so the binds are locked like every other initial mount.
pub const EMULATED: &[(&str, &str)] = &[
    ("uptime", "/proc/uptime"),
    ("swaps", "/proc/swaps"),
    ("meminfo", "/proc/meminfo"),
    ("cpuinfo", "/proc/cpuinfo"),
    ("kernel.panic", "/proc/sys/kernel/panic"),
    ("kernel.panic_on_oops", "/proc/sys/kernel/panic_on_oops"),
    ("kernel.sysrq", "/proc/sys/kernel/sysrq"),
    ("kernel.printk", "/proc/sys/kernel/printk"),
    ("kernel.pid_max", "/proc/sys/kernel/pid_max"),
    ("kernel.kptr_restrict", "/proc/sys/kernel/kptr_restrict"),
    ("kernel.dmesg_restrict", "/proc/sys/kernel/dmesg_restrict"),
    ("vm.overcommit_memory", "/proc/sys/vm/overcommit_memory"),
    ("fs.protected_fifos", "/proc/sys/fs/protected_fifos"),
    ("fs.protected_hardlinks", "/proc/sys/fs/protected_hardlinks"),
    ("fs.protected_regular", "/proc/sys/fs/protected_regular"),
    ("fs.protected_symlinks", "/proc/sys/fs/protected_symlinks"),
];

const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Is `dir` a live hull procfs mount? (The guard checks its own mount; the
/// runtime checks the directory it opens, see its `rootfs::clone_emulated`.)
pub fn is_mounted(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: zeroed plain-old-data struct, filled by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and an output struct of the right type.
    let fuse =
        unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 && st.f_type as i64 == FUSE_SUPER_MAGIC;
    fuse && dir.join(FIRST_ID.to_string()).join("uptime").exists()
}

/// The directory of the container whose range starts at `start`.
pub fn container_dir(mount: &Path, start: u32) -> PathBuf {
    mount.join(start.to_string())
}
