//! `run`: create + start, then wait for the container unless --detach.

use crate::cli::RunArgs;
use crate::config::RuntimeConfig;
use crate::error::{Context, Result};

pub fn run(cfg: &RuntimeConfig, a: &RunArgs) -> Result<i32> {
    // The init is the helper's child; as a subreaper we inherit it to wait on it.
    crate::sys::set_child_subreaper().ctx(|| "PR_SET_CHILD_SUBREAPER")?;
    let created = super::create::create(cfg, &a.create)?;
    if let Err(e) = super::start::start(cfg, &a.create.id) {
        let _ = super::delete::delete(cfg, &a.create.id, true);
        return Err(e);
    }
    tracing::debug!(stage = "started", "run");
    if a.detach {
        return Ok(0);
    }
    let code = super::exec::wait_code(nix::unistd::Pid::from_raw(created.pid))?;
    tracing::debug!(stage = "exited", "run");
    if !a.keep {
        super::delete::delete(cfg, &a.create.id, true)?;
        tracing::debug!(stage = "deleted", "run");
    }
    Ok(code)
}
