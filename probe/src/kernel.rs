//! Probes of the kernel's own hardening switches (kernel-config/README.md):
//! each sets up the precondition, says it did, then makes the one call the
//! option decides.

use crate::report;

/// TIOCSTI (push a byte into a terminal's input queue) on a fresh pty that is
/// the controlling terminal of a child in its own session, so that only the
/// legacy switch (and CAP_SYS_ADMIN in the VM's namespace) decides.
pub fn tiocsti() -> i32 {
    // SAFETY: fork in a single-threaded probe; the child only makes raw calls
    // and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return report(-1, "fork");
    }
    if pid == 0 {
        let code = tiocsti_child();
        // SAFETY: ends the forked child without running the parent's exit path.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        println!("FAILED the TIOCSTI child died (status {status})");
        2
    }
}

fn tiocsti_child() -> i32 {
    // SAFETY: setsid/posix_openpt/grantpt/unlockpt/ptsname_r/open/ioctl on
    // descriptors this function owns; buffers outlive the calls.
    unsafe {
        if libc::setsid() < 0 {
            return report(-1, "setsid");
        }
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if m < 0 || libc::grantpt(m) < 0 || libc::unlockpt(m) < 0 {
            return report(-1, "open the pty master");
        }
        let mut name = [0 as libc::c_char; 64];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return report(-1, "ptsname");
        }
        let s = libc::open(name.as_ptr(), libc::O_RDWR);
        if s < 0 {
            return report(-1, "open the pty slave");
        }
        if libc::ioctl(s, libc::TIOCSCTTY, 0) < 0 {
            return report(-1, "TIOCSCTTY");
        }
        println!("SETUP controlling tty is a fresh pty");
        let b: libc::c_char = b'x' as libc::c_char;
        report(
            libc::ioctl(s, libc::TIOCSTI, &b as *const libc::c_char) as i64,
            "ioctl(TIOCSTI) on the controlling tty",
        )
    }
}

/// A fixed anonymous mapping at `addr`, below the default 64 KiB floor.
pub fn mmap_low(addr: usize) -> i32 {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return report(-1, &format!("mmap at {addr:#x}"));
    }
    report(p as i64, &format!("mmap at {addr:#x}"))
}

/// A write through /proc/self/mem into a page mapped read-only: allowed only
/// when the kernel forces writes past page protections (FOLL_FORCE).
pub fn proc_mem_write() -> i32 {
    // SAFETY: a fresh private anonymous page, read-only after the first write;
    // the pwrite targets it through our own /proc/self/mem.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return report(-1, "mmap");
        }
        *(p as *mut u8) = b'a';
        if libc::mprotect(p, 4096, libc::PROT_READ) < 0 {
            return report(-1, "mprotect read-only");
        }
        let fd = libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR);
        if fd < 0 {
            return report(-1, "open /proc/self/mem");
        }
        println!("SETUP page {p:p} is read-only and holds 'a'");
        let b = b'b';
        let r = libc::pwrite(fd, (&b as *const u8).cast(), 1, p as libc::off_t) as i64;
        let e = crate::errno();
        println!("NOW the page holds '{}'", *(p as *const u8) as char);
        *libc::__errno_location() = e;
        report(r, "pwrite(/proc/self/mem) into the read-only page")
    }
}
