//! What hull-runtime and hull-guard share, and nothing else: the messages on
//! the guard's socket, the id-range table both of them lock ([`idrange`]),
//! and the layout of the guard's procfs emulation the runtime binds from
//! ([`procfs`]).
//!
//! The socket: one connection per handoff, root-only unix stream. The runtime
//! sends one JSON line (a [`Request`]); for `Register` the seccomp listener fd
//! rides along on the same `sendmsg` as SCM_RIGHTS. The guard answers with
//! one JSON line (a [`Response`]). Nothing in these messages is trusted by the
//! guard for its decisions about the container's own calls (it vets mount
//! ids, not strings); they tell it *which* container a listener belongs to.
//!
//! Both sides depend on this crate; it depends on neither (no cycle), and it
//! holds no logic of either side's decisions.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod idrange;
pub mod procfs;

use idrange::{IdRange, Owner};

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
    /// locked file directly; both go through [`idrange`]).
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
