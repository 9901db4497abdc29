//! The seccomp user-notification listener, through raw ioctls: libseccomp 0.4
//! has no ADDFD nor SET_FLAGS, and the hot path wants no allocation.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    /// The calling thread, in the listener's pid namespace (the VM's).
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

#[repr(C)]
struct Resp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

#[repr(C)]
struct AddFd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

const fn iowr(nr: u64, size: usize) -> u64 {
    (3 << 30) | ((size as u64) << 16) | (0x21 << 8) | nr
}
const fn iow(nr: u64, size: usize) -> u64 {
    (1 << 30) | ((size as u64) << 16) | (0x21 << 8) | nr
}

const NOTIF_RECV: u64 = iowr(0, std::mem::size_of::<Notif>());
const NOTIF_SEND: u64 = iowr(1, std::mem::size_of::<Resp>());
const NOTIF_ID_VALID: u64 = iow(2, 8);
const NOTIF_ADDFD: u64 = iow(3, std::mem::size_of::<AddFd>());
const NOTIF_SET_FLAGS: u64 = iow(4, 8);

const ADDFD_FLAG_SEND: u32 = 2;
const FLAG_CONTINUE: u32 = 1;
const FD_SYNC_WAKE_UP: u64 = 1;

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const X32_SYSCALL_BIT: i32 = 0x4000_0000;

fn ioctl(fd: RawFd, req: u64, arg: *mut libc::c_void) -> io::Result<i32> {
    // SAFETY: every caller passes a pointer to a correctly sized, live struct
    // for the request it names (or, for SET_FLAGS, a plain integer).
    let r = unsafe { libc::ioctl(fd, req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// One container process's listener.
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    pub fn new(fd: OwnedFd) -> Self {
        let l = Listener { fd };
        // Why: the trapped thread sleeps while we work; waking us on its own
        // CPU (and it on ours) saves two cross-CPU wake-ups per call.
        if let Err(e) = l.set_flags(FD_SYNC_WAKE_UP) {
            tracing::debug!("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP unavailable: {e}");
        }
        l
    }

    fn set_flags(&self, flags: u64) -> io::Result<()> {
        // This one takes the flags as the ioctl argument itself, not a pointer.
        ioctl(
            self.fd.as_raw_fd(),
            NOTIF_SET_FLAGS,
            flags as usize as *mut _,
        )
        .map(|_| ())
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// The next notification. ENOENT means the caller went away before we
    /// took it (skip it).
    pub fn recv(&self) -> io::Result<Notif> {
        // The kernel insists on a zeroed buffer.
        let mut n = Notif::default();
        ioctl(
            self.fd.as_raw_fd(),
            NOTIF_RECV,
            &mut n as *mut Notif as *mut _,
        )?;
        Ok(n)
    }

    /// Still the same call of the same live thread? Checked after anything
    /// was read from the caller's memory or /proc, which a recycled pid would
    /// otherwise misattribute.
    pub fn id_valid(&self, id: u64) -> bool {
        let mut i = id;
        ioctl(
            self.fd.as_raw_fd(),
            NOTIF_ID_VALID,
            &mut i as *mut u64 as *mut _,
        )
        .is_ok()
    }

    /// Answer with a return value (errno = 0) or a failure (errno > 0).
    pub fn respond(&self, id: u64, val: i64, errno: i32) -> io::Result<()> {
        let mut r = Resp {
            id,
            val,
            error: -errno,
            flags: 0,
        };
        ioctl(
            self.fd.as_raw_fd(),
            NOTIF_SEND,
            &mut r as *mut Resp as *mut _,
        )
        .map(|_| ())
    }

    /// Let the kernel run the call as the caller made it. Only for calls
    /// whose arguments hold no pointer the caller could rewrite, or whose
    /// vetting adds nothing to the kernel's own locks (see the worker).
    pub fn respond_continue(&self, id: u64) -> io::Result<()> {
        let mut r = Resp {
            id,
            val: 0,
            error: 0,
            flags: FLAG_CONTINUE,
        };
        ioctl(
            self.fd.as_raw_fd(),
            NOTIF_SEND,
            &mut r as *mut Resp as *mut _,
        )
        .map(|_| ())
    }

    /// Install `fd` in the caller and answer the call with its number, atomically.
    pub fn respond_fd(&self, id: u64, fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<i32> {
        let mut a = AddFd {
            id,
            flags: ADDFD_FLAG_SEND,
            srcfd: fd.as_raw_fd() as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        ioctl(
            self.fd.as_raw_fd(),
            NOTIF_ADDFD,
            &mut a as *mut AddFd as *mut _,
        )
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_uapi() {
        assert_eq!(NOTIF_RECV, 0xc050_2100);
        assert_eq!(NOTIF_SEND, 0xc018_2101);
        assert_eq!(NOTIF_ID_VALID, 0x4008_2102);
        assert_eq!(NOTIF_ADDFD, 0x4018_2103);
        assert_eq!(NOTIF_SET_FLAGS, 0x4008_2104);
    }
}
