//! A container's persisted state (`<root>/<id>/state.json`, root-only) and the
//! runc-shaped JSON that `state` prints for the shim.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::error::{Context, Error, Result};
use crate::idrange::IdRange;
use crate::sys;

/// The init waits in accept(2) on this socket until `start` connects.
pub const START_SOCK: &str = "start.sock";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// /proc/PID/stat start time: tells our init from a recycled pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: HashMap<String, String>,
    pub cgroup: Option<Cgroup>,
    pub ids: IdRange,
    pub privileged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl State {
    pub fn load(root: &Path, id: &str) -> Result<State> {
        let p = dir(root, id).join("state.json");
        let data = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(e).ctx(|| format!("read {}", p.display())),
        };
        serde_json::from_slice(&data).map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    pub fn save(&self, root: &Path) -> Result<()> {
        let d = dir(root, &self.id);
        let tmp = d.join("state.json.tmp");
        let data = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, d.join("state.json")).ctx(|| "rename state.json")
    }

    pub fn alive(&self) -> bool {
        self.pid > 0 && sys::pid_start_time(self.pid) == Some(self.pid_start)
    }

    pub fn status(&self, root: &Path) -> Status {
        if !self.alive() {
            return Status::Stopped;
        }
        if dir(root, &self.id).join(START_SOCK).exists() {
            return Status::Created;
        }
        if self.cgroup.as_ref().is_some_and(|c| c.frozen()) {
            return Status::Paused;
        }
        Status::Running
    }

    /// runc's `state` output.
    pub fn to_runc_json(&self, root: &Path) -> serde_json::Value {
        let status = self.status(root);
        serde_json::json!({
            "ociVersion": "1.0.2",
            "id": self.id,
            "pid": if status == Status::Stopped { 0 } else { self.pid },
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": self.annotations,
        })
    }

    /// The OCI state hooks receive on stdin.
    pub fn hook_json(&self, status: &str) -> String {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "id": self.id,
            "pid": self.pid,
            "status": status,
            "bundle": self.bundle,
            "annotations": self.annotations,
        })
        .to_string()
    }
}
