//! The channel between the runtime and the processes it forks (a SEQPACKET
//! socketpair: one message per send, so no framing; fds ride as SCM_RIGHTS).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// Parent → child: go on to the next stage.
    Continue,
    /// Child → parent: namespaces joined (hooks may run now).
    NamespacesReady,
    /// Child → parent: everything is set up; a seccomp listener may be attached.
    Ready {
        has_listener: bool,
        #[serde(default)]
        mounts: Vec<crate::guard_proto::InitialMount>,
    },
    /// Runtime → mount builder: one of hull-guard's emulated /proc files, a
    /// detached mount (the fd), by its index in `procfs::EMULATED`, cloned
    /// while the builder works; a `Continue` ends the list.
    Emulated { index: usize, source: String },
    /// Child → parent: the pid the parent should report (exec's grandchild).
    Pid(i32),
    /// Either way: a failure, with the message the user should see.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_fd(msg, None)
    }

    pub fn send_fd(&self, msg: &Msg, fd: Option<RawFd>) -> Result<()> {
        let data = serde_json::to_vec(msg).map_err(|e| Error::Other(e.to_string()))?;
        crate::sys::send_with_fd(self.fd.as_raw_fd(), &data, fd).ctx(|| "sync channel send")
    }

    /// Receive one message; `Ok(None)` means the other end closed (it died).
    pub fn recv(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 65536];
        let (n, fd) = crate::sys::recv_with_fd(self.fd.as_raw_fd(), &mut buf)
            .ctx(|| "sync channel receive")?;
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Other(format!("sync channel: {e}")))?;
        Ok(Some((msg, fd)))
    }

    /// Receive and require `Continue` (or turn an `Error` into an error).
    pub fn expect_continue(&self) -> Result<()> {
        match self.recv()? {
            Some((Msg::Continue, _)) => Ok(()),
            Some((Msg::Error(e), _)) => Err(Error::Other(e)),
            Some((m, _)) => Err(Error::Other(format!("sync channel: unexpected {m:?}"))),
            None => Err(Error::Other("runtime went away during setup".into())),
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
