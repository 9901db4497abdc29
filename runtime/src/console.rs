//! The container's terminal: a pty from the container's own devpts instance;
//! the master goes to the caller over the console socket (SCM_RIGHTS), the
//! slave becomes the process's stdio and controlling terminal.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};

pub fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).ctx(|| format!("connect console socket {}", path.display()))
}

/// Given the ptmx master, get its slave without a path lookup (TIOCGPTPEER),
/// so no /dev/pts entry can be swapped under us.
pub fn open_pair(ptmx: OwnedFd) -> Result<(OwnedFd, OwnedFd)> {
    let master = ptmx;
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "unlock pty");
    }
    // SAFETY: TIOCGPTPEER returns a new fd for the slave.
    let s = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "open pty slave");
    }
    // SAFETY: the kernel just gave us this fd.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    Ok((master, slave))
}

pub fn send_master(sock: &UnixStream, master: BorrowedFd<'_>) -> Result<()> {
    let name = b"/dev/ptmx";
    let iov = [std::io::IoSlice::new(name)];
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::Other(format!("send pty master over the console socket: {e}")))?;
    Ok(())
}

/// Make `slave` the stdio and controlling terminal of this process.
pub fn become_tty(slave: BorrowedFd<'_>) -> Result<()> {
    nix::unistd::setsid().ctx(|| "setsid")?;
    // SAFETY: TIOCSCTTY with arg 0 on a tty fd we hold.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "set controlling terminal");
    }
    for n in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), n).ctx(|| "dup2 pty slave")?;
    }
    Ok(())
}

/// Bind the pty slave over /dev/console (an empty file the mount builder made),
/// never following a link there: a container sharing a /dev volume may have
/// swapped it. This one mount is made inside the container's user namespace,
/// so it is not locked: unmounting it only reveals what was there.
pub fn bind_console(slave: BorrowedFd<'_>) -> Result<()> {
    let tree = crate::sys::open_tree(slave.as_raw_fd(), None, crate::sys::OPEN_TREE_CLONE)
        .ctx(|| "clone the pty for /dev/console")?;
    let dev = crate::sys::openat2(
        libc::AT_FDCWD,
        Path::new("/dev"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        crate::sys::RESOLVE_IN_ROOT | crate::sys::RESOLVE_NO_SYMLINKS,
    )
    .ctx(|| "open the container's /dev")?;
    // Ids 0 here are the container's root: we are inside its user namespace.
    crate::safepath::cover(
        tree.as_fd(),
        dev.as_fd(),
        c"console",
        (0, 0),
        "/dev/console",
    )
}

/// Inside the container (after joining its mount namespace): a new pty from
/// the container's own devpts, its master sent to the engine's console
/// socket, the slave made our controlling terminal. The container's init
/// also binds the slave on /dev/console; an exec'd process does not.
pub fn attach_tty(sock: &UnixStream, as_console: bool) -> Result<()> {
    let ptmx = crate::sys::openat2(
        libc::AT_FDCWD,
        Path::new("/dev/pts/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
        crate::sys::RESOLVE_IN_ROOT
            | crate::sys::RESOLVE_NO_SYMLINKS
            | crate::sys::RESOLVE_NO_MAGICLINKS,
    )
    .ctx(|| "open the container's /dev/pts/ptmx")?;
    let (master, slave) = open_pair(ptmx)?;
    if as_console {
        bind_console(slave.as_fd())?;
    }
    send_master(sock, master.as_fd())?;
    drop(master);
    become_tty(slave.as_fd())
}
