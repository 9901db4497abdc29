//! The runtime's side of the hull-guard interface: the client. The messages
//! themselves (and the id-range table) are the one thing the runtime and the
//! guard share, in `hull-guard-proto`; the runtime knows nothing else of the
//! guard.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use hull_guard_proto::{
    ContainerIdentity, InitialMount, MountRole, ProcessKind, Request, Response, PROTOCOL_VERSION,
};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Error, Result};

/// A connection to hull-guard, checked to be root's before anything is sent.
pub struct GuardClient {
    stream: UnixStream,
    path: PathBuf,
}

/// How long a create or exec waits for a guard socket that is not there
/// yet (or refuses connections) before it fails closed. At boot dockerd
/// starts beside hull-guard, not after it, and restarts containers with a
/// restart policy on its own; a guard that init is restarting is back
/// within its first back-off. Nothing runs unvetted while it waits.
pub const GUARD_WAIT: Duration = Duration::from_secs(5);

impl GuardClient {
    /// [`GuardClient::connect`], retried every 20 ms for up to `wait` while
    /// the socket is missing or refuses connections. Any other failure (a
    /// socket not root's, a peer not root) is final at once.
    pub fn connect_waiting(path: &Path, wait: Duration) -> Result<Self> {
        let start = std::time::Instant::now();
        loop {
            match Self::connect(path) {
                Err(Error::GuardAbsent(msg)) if start.elapsed() < wait => {
                    tracing::debug!("{msg}; waiting for hull-guard");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(Error::GuardAbsent(msg)) => {
                    return Err(Error::Guard(format!(
                        "{msg} (waited {:.1}s)",
                        start.elapsed().as_secs_f64()
                    )))
                }
                other => return other,
            }
        }
    }

    /// One attempt; a missing socket or a refused connection is
    /// [`Error::GuardAbsent`].
    pub fn connect(path: &Path) -> Result<Self> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| {
            Error::GuardAbsent(format!(
                "no guard socket at {} ({e}); the container is not created (fail closed). Start hull-guard, or pass --guard=none only for tests",
                path.display()
            ))
        })?;
        // Why: the listener fd grants control over the container's mount calls;
        // it may only go to a root-owned endpoint.
        if meta.uid() != 0 {
            return Err(Error::Guard(format!(
                "{} is not owned by root; refusing to hand it a seccomp listener",
                path.display()
            )));
        }
        let stream = UnixStream::connect(path).map_err(|e| {
            let absent = matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            );
            (if absent {
                Error::GuardAbsent
            } else {
                Error::Guard
            })(format!(
                "cannot connect to {} ({e}); the container is not created (fail closed)",
                path.display()
            ))
        })?;
        let cred =
            nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                .map_err(|e| {
                    Error::Guard(format!("peer credentials of {}: {e}", path.display()))
                })?;
        if cred.uid() != 0 {
            return Err(Error::Guard(format!(
                "peer on {} runs as uid {}, not root",
                path.display(),
                cred.uid()
            )));
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        Ok(GuardClient {
            stream,
            path: path.to_path_buf(),
        })
    }

    /// Send one request (with an optional fd) and wait for the answer.
    pub fn call(&mut self, req: &Request, fd: Option<BorrowedFd<'_>>) -> Result<Response> {
        let mut line = serde_json::to_vec(req).map_err(|e| Error::Guard(e.to_string()))?;
        line.push(b'\n');
        let raw;
        let cmsgs: Vec<ControlMessage<'_>> = match fd {
            Some(f) => {
                raw = [f.as_raw_fd()];
                vec![ControlMessage::ScmRights(&raw)]
            }
            None => vec![],
        };
        let iov = [std::io::IoSlice::new(&line)];
        let n = sendmsg::<()>(
            self.stream.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| Error::Guard(format!("send to {}: {e}", self.path.display())))?;
        if n < line.len() {
            self.stream
                .write_all(&line[n..])
                .map_err(|e| Error::Guard(format!("send to {}: {e}", self.path.display())))?;
        }
        let mut answer = String::new();
        BufReader::new(&self.stream)
            .read_line(&mut answer)
            .map_err(|e| Error::Guard(format!("no answer from {}: {e}", self.path.display())))?;
        let resp: Response = serde_json::from_str(answer.trim())
            .map_err(|e| Error::Guard(format!("bad answer from {}: {e}", self.path.display())))?;
        if !resp.ok {
            return Err(Error::Guard(resp.error.unwrap_or_else(|| "refused".into())));
        }
        Ok(resp)
    }
}
