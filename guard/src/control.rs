//! The guard's internal channel between its main process and each
//! per-container worker: SOCK_SEQPACKET (one JSON message per packet), fds as
//! SCM_RIGHTS.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use hull_guard_proto::ContainerIdentity;

/// Main → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToWorker {
    /// First message: who the worker serves; the first listener rides along.
    Init {
        container: ContainerIdentity,
        /// Set when the guard does not know what this container's
        /// protected mounts are (its saved identity is missing or corrupt):
        /// the worker refuses every call, giving this reason.
        refuse_all: Option<String>,
    },
    /// Another process of the same container (exec): its listener rides along.
    Listener { pid: i32 },
    /// A masked proc/sysfs tree built for a caller (the tree's fd rides along).
    Fresh {
        ok: bool,
        error: Option<String>,
        /// Where each mask and read-only bind of the tree is, relative to
        /// its top, and its superblock (the worker identifies each by id
        /// there, or protects the superblock when it cannot).
        submounts: Vec<(String, u64)>,
    },
}

/// Worker → main.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FromWorker {
    Ready,
    Failed {
        error: String,
    },
    Audit {
        line: String,
    },
    /// Build a masked proc/sysfs for thread `tid` (VM pid) of this container.
    Fresh {
        kind: String,
        tid: i32,
        options: Vec<String>,
    },
}

pub struct Control {
    fd: OwnedFd,
}

pub fn pair() -> std::io::Result<(Control, Control)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Control { fd: a }, Control { fd: b }))
}

const MAX_MSG: usize = 1 << 20;

impl Control {
    pub fn from_fd(fd: OwnedFd) -> Self {
        Control { fd }
    }

    pub fn set_recv_timeout(&self, t: std::time::Duration) -> std::io::Result<()> {
        let tv = nix::sys::time::TimeVal::new(t.as_secs() as i64, t.subsec_micros() as i64);
        nix::sys::socket::setsockopt(&self.fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv)?;
        Ok(())
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub fn send<T: Serialize>(&self, msg: &T, fd: Option<RawFd>) -> std::io::Result<()> {
        let data = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        crate::sys::send_with_fd(self.fd.as_raw_fd(), &data, fd)
    }

    /// One message; `Ok(None)` when the other end closed.
    pub fn recv<T: DeserializeOwned>(&self) -> std::io::Result<Option<(T, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let (n, fd) = match crate::sys::recv_with_fd(self.fd.as_raw_fd(), &mut buf) {
            Ok((0, _)) => return Ok(None),
            Ok(got) => got,
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e),
        };
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Some((msg, fd)))
    }
}

impl AsRawFd for Control {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
