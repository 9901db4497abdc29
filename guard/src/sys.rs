//! The guard's own wrappers of the syscalls nix and libc do not wrap (new
//! mount API, openat2, namespaces, fd passing). The guard shares no code with
//! the runtime but the protocol, so it keeps these itself; `sysx` holds the
//! ones only the vetting needs (statx, pidfd_getfd, path-less mount calls).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub const OPEN_TREE_CLONE: u32 = 1;
pub const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

const FSOPEN_CLOEXEC: u32 = 1;
const FSMOUNT_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn fd_result(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
}

fn unit_result(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// openat2(2): resolve `path` under `dirfd` with the given RESOLVE_* flags.
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: valid C string, a correctly sized open_how, kernel copies both.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                p.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match fd_result(r) {
            // openat2 returns EAGAIN when a concurrent rename raced RESOLVE_IN_ROOT.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// open_tree(2) on `path` relative to `dirfd` (empty path = the fd itself).
pub fn open_tree(dirfd: RawFd, path: Option<&Path>, flags: u32) -> io::Result<OwnedFd> {
    let (p, extra) = match path {
        Some(p) => (cstr(p)?, 0),
        None => (cstring("")?, libc::AT_EMPTY_PATH as u32),
    };
    // SAFETY: valid C string; the kernel returns a new fd or an error.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            p.as_ptr(),
            flags | extra | libc::O_CLOEXEC as u32,
        )
    };
    fd_result(r)
}

/// mount_setattr(2) on the mount (tree) behind `fd`.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clr: u64,
    userns: Option<RawFd>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: userns.map(|f| f as u64).unwrap_or(0),
    };
    let empty = cstring("")?;
    let flags = libc::AT_EMPTY_PATH as u32 | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: a correctly sized mount_attr and a valid fd; the kernel copies both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    unit_result(r)
}

/// move_mount(2) of the detached tree `from` onto the object that `to` refers to.
/// Both ends are fds, so no path is resolved again after it was checked.
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let empty = cstring("")?;
    // SAFETY: two valid fds and empty C strings; flags select the fds themselves.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    unit_result(r)
}

/// move_mount(2) of the detached tree `from` onto `path` (a path the runtime owns).
pub fn move_mount_path(from: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let empty = cstring("")?;
    let p = cstr(path)?;
    // SAFETY: valid fd and C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            p.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    unit_result(r)
}

/// A filesystem context from fsopen(2).
pub struct FsContext(OwnedFd);

impl FsContext {
    pub fn open(fstype: &str) -> io::Result<Self> {
        let t = cstring(fstype)?;
        // SAFETY: valid C string.
        let r = unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) };
        fd_result(r).map(FsContext)
    }

    pub fn set_flag(&self, key: &str) -> io::Result<()> {
        let k = cstring(key)?;
        // SAFETY: valid fd and C string; value pointer must be NULL for SET_FLAG.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                k.as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        unit_result(r)
    }

    pub fn set_string(&self, key: &str, value: &str) -> io::Result<()> {
        let k = cstring(key)?;
        let v = cstring(value)?;
        // SAFETY: valid fd and C strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        unit_result(r)
    }

    /// Create the superblock and return a detached mount with `attrs`.
    pub fn mount(self, attrs: u64) -> io::Result<OwnedFd> {
        // SAFETY: valid fd; null key/value for CMD_CREATE.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        unit_result(r)?;
        // SAFETY: valid fd; the kernel returns a new mount fd.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.0.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs,
            )
        };
        fd_result(r)
    }
}

/// Sends one datagram with at most one fd; retries EINTR. MSG_NOSIGNAL: a
/// dead peer is an EPIPE error, never a SIGPIPE.
pub fn send_with_fd(sock: RawFd, data: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(data)];
    let fds: Vec<RawFd> = fd.into_iter().collect();
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    loop {
        match sendmsg::<()>(sock, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one datagram of a seqpacket socket into `buf` with at most one
/// passed fd (any more are closed); retries EINTR. `(0, _)` means the peer
/// closed.
pub fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    loop {
        let mut iov = [io::IoSliceMut::new(buf)];
        match recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(m) => {
                let mut fd = None;
                for c in m.cmsgs().into_iter().flatten() {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for f in fds {
                            // SAFETY: the kernel installed this fd for us just now.
                            let owned = unsafe { OwnedFd::from_raw_fd(f) };
                            if fd.is_none() {
                                fd = Some(owned);
                            }
                        }
                    }
                }
                return Ok((m.bytes, fd));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// setns(2) with an nsfs fd or a pidfd (then `nstype` may hold several CLONE_NEW* bits).
pub fn setns(fd: BorrowedFd<'_>, nstype: i32) -> io::Result<()> {
    // SAFETY: valid fd, integer flags.
    let r = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    unit_result(r as libc::c_long)
}

pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: integer flags only.
    let r = unsafe { libc::unshare(flags) };
    unit_result(r as libc::c_long)
}

pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) };
    unit_result(r as libc::c_long)
}

/// `struct sched_attr` (include/uapi/linux/sched/types.h), first version
/// plus the utilization clamps (56 bytes).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// Ask the fair scheduler (EEVDF, Linux 6.12+) for a short time slice for
/// this thread: the same weight (so the same share of the CPU, and the same
/// nice value), but an earlier deadline on every wake-up, so the thread
/// runs soon after it is woken instead of after the running task's slice.
/// `slice_ns` is clamped by the kernel to 0.1..100 ms. Older kernels ignore
/// the runtime of a fair task.
pub fn set_fair_slice(slice_ns: u64) -> io::Result<()> {
    // SAFETY: getpriority has no memory arguments; -1 with errno 0 is a
    // valid nice, so errno is cleared first and checked after.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, 0);
        if n == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        n
    };
    // Keep whatever fair policy we were started with (normal or batch).
    const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: 0,
        flags: SCHED_FLAG_KEEP_POLICY,
        nice,
        priority: 0,
        runtime: slice_ns,
        deadline: 0,
        period: 0,
        util_min: 0,
        util_max: 0,
    };
    // SAFETY: sched_setattr(0 = this thread, a live sched_attr whose size
    // field states its length, no syscall flags).
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    unit_result(r)
}

/// The start time of `pid` (field 22 of /proc/PID/stat), to tell a live
/// container process from a recycled pid.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) " the state is field 3, so start time (22) is index 19.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    /// The worker's short slice really reaches the scheduler, and leaves
    /// the nice value and policy as they were. Needs Linux 6.12+ (custom
    /// fair slices); an older kernel fails here rather than pass unchecked.
    #[test]
    fn fair_slice_is_set_and_nice_kept() {
        let field = |sched: &str, key: &str| -> Option<String> {
            sched
                .lines()
                .find(|l| l.split(':').next().map(str::trim) == Some(key))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        };
        // A thread of its own, so the test process keeps its slice.
        let (before, after) = std::thread::spawn(move || {
            let read = || std::fs::read_to_string("/proc/thread-self/sched").expect("read sched");
            let before = read();
            super::set_fair_slice(100_000).expect("sched_setattr");
            (before, read())
        })
        .join()
        .expect("thread");
        assert_eq!(
            field(&after, "se.slice").as_deref(),
            Some("100000"),
            "se.slice after set_fair_slice (kernel without custom fair slices?):\n{after}"
        );
        assert_eq!(
            field(&after, "prio"),
            field(&before, "prio"),
            "nice changed"
        );
        assert_eq!(
            field(&after, "policy"),
            field(&before, "policy"),
            "policy changed"
        );
    }
}
