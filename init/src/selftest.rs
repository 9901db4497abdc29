//! `hull.selftest`: checks made from inside the booted VM, printed on the
//! console for the boot test, which then expects a clean power-off.

use std::path::Path;

use crate::mounts;

pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

pub fn run() -> Vec<Check> {
    vec![
        no_modules(),
        root_read_only(),
        root_verified(),
        api_mounts(),
    ]
}

fn no_modules() -> Check {
    let proc_modules = Path::new("/proc/modules").exists();
    let modprobe = Path::new("/proc/sys/kernel/modprobe").exists();
    // SAFETY: finit_module with an invalid fd and empty params touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let enosys = r == -1 && errno == libc::ENOSYS;
    Check {
        name: "kernel-has-no-modules",
        ok: !proc_modules && !modprobe && enosys,
        detail: format!(
            "/proc/modules={proc_modules} /proc/sys/kernel/modprobe={modprobe} finit_module={}",
            if enosys {
                "ENOSYS".to_string()
            } else {
                format!("ret {r} errno {errno}")
            }
        ),
    }
}

/// The root is the kernel's dm-verity mapping (hull-root on dm-0).
fn root_verified() -> Check {
    let r = crate::status::root_verity();
    Check {
        name: "root-is-verified",
        ok: r.verified,
        detail: format!(
            "dm-0={:?} root_dev={:?} dm0_dev={:?} root_hash={}",
            r.dm_name,
            r.root_dev,
            r.dm0_dev,
            r.root_hash.as_deref().unwrap_or("none")
        ),
    }
}

fn root_read_only() -> Check {
    let ro = mounts::is_read_only("/");
    let ty = mounts::fstype_of("/").unwrap_or_default();
    let write = std::fs::write("/.hull-selftest-write", b"x");
    let erofs = matches!(&write, Err(e) if e.raw_os_error() == Some(libc::EROFS));
    Check {
        name: "root-is-read-only",
        ok: ro && ty == "erofs" && erofs,
        detail: format!("statvfs_ro={ro} fstype={ty} write={write:?}"),
    }
}

fn api_mounts() -> Check {
    let want = [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "devtmpfs"),
        ("/sys/fs/cgroup", "cgroup2"),
        ("/run", "tmpfs"),
        ("/tmp", "tmpfs"),
    ];
    let bad: Vec<String> = want
        .iter()
        .filter(|(t, ty)| mounts::fstype_of(t).as_deref() != Some(ty))
        .map(|(t, ty)| format!("{t} is not {ty}"))
        .collect();
    Check {
        name: "api-filesystems",
        ok: bad.is_empty(),
        detail: if bad.is_empty() {
            "all mounted".into()
        } else {
            bad.join(", ")
        },
    }
}
