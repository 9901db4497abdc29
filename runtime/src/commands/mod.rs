//! One module per CLI verb.

pub mod create;
pub mod delete;
pub mod exec;
pub mod features;
pub mod info;
pub mod kill;
pub mod pause;
pub mod ps;
pub mod run;
pub mod start;
pub mod update;

use std::path::Path;

use crate::error::{Context, Result};

/// Write a pid file the way runc does: complete or absent (tmp + rename).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("hull-tmp");
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))
}
