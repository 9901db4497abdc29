//! `pause` / `resume`: the cgroup v2 freezer.

use crate::config::RuntimeConfig;
use crate::error::{Error, Result};
use crate::state::{State, Status};

pub fn set_paused(cfg: &RuntimeConfig, id: &str, pause: bool) -> Result<()> {
    let st = State::load(&cfg.root, id)?;
    let status = st.status(&cfg.root);
    let ok = if pause {
        matches!(status, Status::Running | Status::Created)
    } else {
        status == Status::Paused
    };
    if !ok {
        return Err(Error::BadState {
            id: id.into(),
            status: status.as_str().into(),
            what: if pause {
                "container not running"
            } else {
                "container not paused"
            }
            .into(),
        });
    }
    let cg = st
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::Other(format!("container {id} has no cgroup v2: cannot pause")))?;
    cg.freeze(pause)
}
