//! Thin wrappers around the syscalls that nix and libc do not wrap (the new
//! mount API, openat2, pidfd). Each returns `std::io::Result` and owns the fd it
//! creates; callers never see raw integers unless they ask for them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub const OPEN_TREE_CLONE: u32 = 1;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
#[cfg(not(feature = "weaken-nodev"))]
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// The nodev-off build (`cargo xtask vm-test --weaken nodev`, never
/// shipped): every "nodev" the runtime sets or parses sets nothing.
#[cfg(feature = "weaken-nodev")]
pub const MOUNT_ATTR_NODEV: u64 = 0;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

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

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    fd_result(r)
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: valid pidfd, null siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    unit_result(r)
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

/// Mark every fd from `first` up as close-on-exec (CVE-2024-21626: nothing
/// the runtime opened may survive into the container).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    unit_result(r)
}

pub fn pivot_root_dot() -> io::Result<()> {
    let dot = cstring(".")?;
    // SAFETY: valid C strings.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    unit_result(r)
}

pub fn set_dumpable(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) };
    unit_result(r as libc::c_long)
}

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    unit_result(r as libc::c_long)
}

pub fn set_keepcaps(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) };
    unit_result(r as libc::c_long)
}

pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    unit_result(r as libc::c_long)
}

/// Kill this process if its parent dies (the runtime's helpers never outlive it).
pub fn set_pdeathsig(sig: i32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    unit_result(r as libc::c_long)
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

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2), but born straight into the cgroup behind `cgroup_dir`
/// (clone3 CLONE_INTO_CGROUP). Why: moving a process into a cgroup afterwards
/// takes the kernel's cgroup-wide write lock and waits for an RCU grace
/// period (~10 ms); being born there does not. Returns 0 in the child.
/// Only for a single-threaded caller, like fork.
pub fn fork_into_cgroup(cgroup_dir: BorrowedFd<'_>) -> io::Result<i32> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 with no stack behaves like fork; the caller is single-threaded.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}
