//! Syscalls the guard needs beyond `crate::sys`: acting on another process's
//! fds and capabilities, statx by fd, and the path-less mount calls.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn fd_result(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
    }
}

fn unit(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// A pidfd for a thread (the trapped caller may be any thread).
pub fn pidfd_open_thread(tid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    match fd_result(r) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Kernels before 6.9: only thread-group leaders.
            // SAFETY: integer arguments only.
            fd_result(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, 0) })
        }
        other => other,
    }
}

/// A duplicate of the caller's fd `fd`.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    fd_result(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Effective capabilities of thread `tid` (in its own user namespace).
pub fn effective_caps(tid: i32) -> io::Result<u64> {
    let mut h = CapHeader {
        version: 0x2008_0522,
        pid: tid,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as _LINUX_CAPABILITY_VERSION_3 requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) };
    unit(r)?;
    Ok(d[0].effective as u64 | ((d[1].effective as u64) << 32))
}

pub const CAP_SYS_ADMIN: u64 = 21;

pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mnt_id: u64,
    pub mount_root: bool,
    pub mode: u32,
    pub rdev: u64,
}

const STATX_ATTR_MOUNT_ROOT: u64 = 0x2000;
const STATX_MNT_ID: u32 = 0x1000;

pub fn statx_fd(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    // SAFETY: zeroed plain-old-data struct, filled by the kernel.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, empty C string, output struct of the right size.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_TYPE | libc::STATX_INO | STATX_MNT_ID,
            &mut st,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat_of(&st))
}

fn stat_of(st: &libc::statx) -> Stat {
    Stat {
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        mnt_id: st.stx_mnt_id,
        mount_root: st.stx_attributes & st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT != 0,
        mode: st.stx_mode as u32,
        rdev: libc::makedev(st.stx_rdev_major, st.stx_rdev_minor),
    }
}

/// statx(2) of `path` under `dir`, following links (magic ones included).
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// The unique id of the mount `fd` is on. Unlike the ids mountinfo shows
/// (recycled as soon as a mount is gone), it is never given to another
/// mount while the VM runs, so a set of them names mounts for good.
pub fn mnt_id_unique(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: zeroed plain-old-data struct, filled by the kernel.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, empty C string, output struct of the right size.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_MNT_ID_UNIQUE,
            &mut st,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.stx_mask & STATX_MNT_ID_UNIQUE == 0 {
        // Kernels before 6.8: refuse rather than fall back to recycled ids.
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(st.stx_mnt_id)
}

const NR_STATMOUNT: libc::c_long = 457;

/// struct mnt_id_req, first version (24 bytes).
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

/// Is the mount with unique id `id` attached in our current mount namespace
/// (false: detached, from fsmount or an open_tree clone, or in another
/// namespace)? Asked of the kernel, not of a mountinfo listing, which leaves
/// out every mount outside the reader's root.
pub fn attached_here(id: u64) -> io::Result<bool> {
    const STATMOUNT_SB_BASIC: u64 = 0x1;
    let req = MntIdReq {
        size: std::mem::size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id: id,
        param: STATMOUNT_SB_BASIC,
    };
    let mut buf = [0u64; 512];
    // SAFETY: a valid request struct of the size it declares and an output
    // buffer of the size passed.
    let r = unsafe {
        libc::syscall(
            NR_STATMOUNT,
            &req as *const MntIdReq,
            buf.as_mut_ptr(),
            std::mem::size_of_val(&buf),
            0,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        // The kernel looks the id up in our namespace first: ENOENT is
        // "not here".
        e if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        // Found, but outside our root (we are chrooted to the caller's) and
        // hidden from us: attached all the same.
        e if e.raw_os_error() == Some(libc::EPERM) => Ok(true),
        e => Err(e),
    }
}

pub fn statx_at(dir: BorrowedFd<'_>, path: &str) -> io::Result<Stat> {
    let p = cstring(path.as_bytes())?;
    // SAFETY: zeroed plain-old-data struct, filled by the kernel.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and C string, output struct of the right size.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            p.as_ptr(),
            0,
            libc::STATX_TYPE | libc::STATX_INO | STATX_MNT_ID,
            &mut st,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat_of(&st))
}

pub fn fstatfs_type(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: zeroed plain-old-data struct, filled by the kernel.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and output struct.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut s) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s.f_type as i64)
}

pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
pub const SYSFS_MAGIC: i64 = 0x6265_6572;

/// openat(2) with O_PATH (never following a final symlink unless `follow`).
pub fn open_path(dirfd: RawFd, path: &[u8], follow: bool) -> io::Result<OwnedFd> {
    let p = cstring(path)?;
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    // SAFETY: valid C string; the kernel returns a new fd or an error.
    fd_result(unsafe { libc::openat(dirfd, p.as_ptr(), flags) } as libc::c_long)
}

pub fn open_at(dirfd: RawFd, path: &str, flags: i32) -> io::Result<OwnedFd> {
    let p = cstring(path.as_bytes())?;
    // SAFETY: valid C string; the kernel returns a new fd or an error.
    fd_result(unsafe { libc::openat(dirfd, p.as_ptr(), flags | libc::O_CLOEXEC) } as libc::c_long)
}

pub fn fchdir(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    unit(unsafe { libc::fchdir(fd.as_raw_fd()) } as libc::c_long)
}

pub fn chroot_dot() -> io::Result<()> {
    // SAFETY: valid C string.
    unit(unsafe { libc::chroot(c".".as_ptr()) } as libc::c_long)
}

/// mount(2) with the target (and source, for binds and moves) named through
/// our own fd table (`cwd` must be the VM's /proc/self/fd), so that nothing
/// is resolved again after it was vetted.
pub fn mount_by_fd(
    source: Option<&[u8]>,
    target_fd: RawFd,
    fstype: Option<&[u8]>,
    flags: u64,
    data: Option<&[u8]>,
) -> io::Result<()> {
    let t = cstring(target_fd.to_string().as_bytes())?;
    let s = source.map(cstring).transpose()?;
    let f = fstype.map(cstring).transpose()?;
    let d = data.map(cstring).transpose()?;
    // SAFETY: valid C strings or NULL.
    let r = unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags as libc::c_ulong,
            d.as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr() as *const libc::c_void),
        )
    };
    unit(r as libc::c_long)
}

/// umount2(2) of the mount `fd` refers to (cwd must be the VM's /proc/self/fd).
pub fn umount_by_fd(fd: RawFd, flags: i32) -> io::Result<()> {
    let t = cstring(fd.to_string().as_bytes())?;
    // SAFETY: valid C string.
    unit(unsafe { libc::umount2(t.as_ptr(), flags) } as libc::c_long)
}

/// umount2(2) of a path relative to our cwd (the VM's /proc/self/fd).
pub fn umount_path(path: &[u8], flags: i32) -> io::Result<()> {
    let t = cstring(path)?;
    // SAFETY: valid C string.
    unit(unsafe { libc::umount2(t.as_ptr(), flags) } as libc::c_long)
}

pub const OPEN_TREE_CLONE: u32 = 1;
pub const AT_RECURSIVE: u32 = 0x8000;
const AT_EMPTY_PATH: u32 = libc::AT_EMPTY_PATH as u32;

pub fn open_tree_fd(fd: BorrowedFd<'_>, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid fd and empty C string.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags | AT_EMPTY_PATH | libc::O_CLOEXEC as u32,
        )
    })
}

pub fn fspick_fd(fd: BorrowedFd<'_>, flags: u32) -> io::Result<OwnedFd> {
    const FSPICK_CLOEXEC: u32 = 1;
    const FSPICK_EMPTY_PATH: u32 = 8;
    // SAFETY: valid fd and empty C string.
    fd_result(unsafe {
        libc::syscall(
            libc::SYS_fspick,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags | FSPICK_EMPTY_PATH | FSPICK_CLOEXEC,
        )
    })
}

pub fn fsopen(fstype: &[u8]) -> io::Result<OwnedFd> {
    let t = cstring(fstype)?;
    // SAFETY: valid C string.
    fd_result(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), 1u32) })
}

pub const FSCONFIG_SET_FLAG: u32 = 0;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_SET_BINARY: u32 = 2;
pub const FSCONFIG_SET_PATH: u32 = 3;
pub const FSCONFIG_SET_PATH_EMPTY: u32 = 4;
pub const FSCONFIG_SET_FD: u32 = 5;
pub const FSCONFIG_CMD_CREATE: u32 = 6;
pub const FSCONFIG_CMD_RECONFIGURE: u32 = 7;
pub const FSCONFIG_CMD_CREATE_EXCL: u32 = 8;

/// The value argument of fsconfig(2), typed by what `cmd` expects.
pub enum FsValue<'a> {
    None,
    Str(&'a CString),
    Bytes(&'a [u8]),
}

/// fsconfig(2). `aux` is the dirfd/fd or the binary length, as `cmd` needs.
pub fn fsconfig(
    fd: BorrowedFd<'_>,
    cmd: u32,
    key: Option<&CString>,
    value: FsValue<'_>,
    aux: i32,
) -> io::Result<()> {
    let (ptr, aux) = match value {
        FsValue::None => (std::ptr::null::<libc::c_void>(), aux),
        FsValue::Str(s) => (s.as_ptr() as *const libc::c_void, aux),
        FsValue::Bytes(b) => (b.as_ptr() as *const libc::c_void, b.len() as i32),
    };
    // SAFETY: valid fd; key is a C string or NULL; the value points at live
    // data of the kind `cmd` names (or is NULL), with its length in aux.
    unit(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            cmd,
            key.map_or(std::ptr::null(), |k| k.as_ptr()),
            ptr,
            aux,
        )
    })
}

pub fn fsmount(fd: BorrowedFd<'_>, flags: u32, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: valid fd, integer arguments.
    fd_result(unsafe { libc::syscall(libc::SYS_fsmount, fd.as_raw_fd(), flags, attrs) })
}

pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const MOVE_MOUNT_BENEATH: u32 = 0x200;

pub fn move_mount_fds(from: BorrowedFd<'_>, to: BorrowedFd<'_>, extra: u32) -> io::Result<()> {
    // SAFETY: two valid fds and empty C strings.
    unit(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH | extra,
        )
    })
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

pub fn mount_setattr_fd(fd: BorrowedFd<'_>, flags: u32, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: valid fd, empty path, a correctly sized mount_attr.
    unit(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags | AT_EMPTY_PATH,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

/// An nsfs ioctl that returns a namespace fd (NS_GET_USERNS, NS_GET_PARENT).
pub fn ns_ioctl(fd: BorrowedFd<'_>, req: u64) -> io::Result<OwnedFd> {
    // SAFETY: an nsfs ioctl with no argument; it returns a new fd or an error.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _) };
    fd_result(r as libc::c_long)
}

pub fn ns_inode(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    Ok(st.st_ino)
}
