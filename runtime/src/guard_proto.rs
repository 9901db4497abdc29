//! The runtime's side of the hull-guard interface.
//!
//! One connection per handoff on a root-only unix stream socket. The runtime
//! sends one JSON line (a [`Request`]); for `Register` the seccomp listener fd
//! rides along on the same `sendmsg` as SCM_RIGHTS. The guard answers with one
//! JSON line (a [`Response`]). Nothing in these messages is trusted by the guard
//! for its decisions about the container's own calls (it vets mount ids, not
//! strings); they tell it *which* container a listener belongs to.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::idrange::{IdRange, Owner};

pub const PROTOCOL_VERSION: u32 = 1;

/// One initial mount of the container, as the runtime made it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitialMount {
    pub destination: String,
    pub fstype: String,
    pub source: String,
    pub readonly: bool,
    /// masked (tmpfs or /dev/null over it), readonly-path, or a spec mount.
    pub role: MountRole,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MountRole {
    Rootfs,
    Spec,
    Masked,
    ReadonlyPath,
    Device,
    /// A file of hull-guard's procfs emulation bound over a /proc file.
    Emulated,
}

/// Which process the listener belongs to: the container's init or an exec'd one.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    Init,
    Exec,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerIdentity {
    pub id: String,
    /// VM pid of the process that loaded the filter.
    pub pid: i32,
    pub kind: ProcessKind,
    pub uid_range: IdRange,
    pub gid_range: IdRange,
    /// The bundle's rootfs as given (VM path).
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub privileged: bool,
    pub mounts: Vec<InitialMount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Take over this seccomp listener (attached as SCM_RIGHTS). Without one
    /// (a profile that lets no mount-family call through), the guard only
    /// records the container (procfs emulation).
    Register {
        version: u32,
        container: ContainerIdentity,
    },
    /// The container is gone: forget its state.
    Unregister {
        version: u32,
        id: String,
        state_dir: PathBuf,
    },
    /// Id ranges through the guard (the runtime may also use the shared
    /// locked file directly; both go through [`crate::idrange`]).
    AllocateRange {
        version: u32,
        owner: Owner,
    },
    ReleaseRange {
        version: u32,
        owner: Owner,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<IdRange>,
}

/// A connection to hull-guard, checked to be root's before anything is sent.
pub struct GuardClient {
    stream: UnixStream,
    path: PathBuf,
}

impl GuardClient {
    pub fn connect(path: &Path) -> Result<Self> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| {
            Error::Guard(format!(
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
            Error::Guard(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format_is_tagged_json() {
        let r = Request::Unregister {
            version: 1,
            id: "c1".into(),
            state_dir: "/run/x/c1".into(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.starts_with(r#"{"op":"unregister""#), "{s}");
        let back: Request = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
    }
}
