//! `delete`: kill what is left (with --force, or a never-started container),
//! run poststop hooks, remove the cgroup, free the id range, forget the state.

use std::time::{Duration, Instant};

use crate::cli::GuardMode;
use crate::config::RuntimeConfig;
use crate::error::{Error, Result};
use crate::guard_proto::{GuardClient, Request, PROTOCOL_VERSION};
use crate::hooks;
use crate::idrange::{Allocator, Owner};
use crate::state::{self, State, Status};

pub fn delete(cfg: &RuntimeConfig, id: &str, force: bool) -> Result<()> {
    let sdir = state::dir(&cfg.root, id);
    let st = match State::load(&cfg.root, id) {
        Ok(s) => s,
        Err(Error::NotFound(_)) if force => {
            // A create that died half-way may have left a directory behind.
            let _ = std::fs::remove_dir_all(&sdir);
            let _ = Allocator::new(&cfg.idranges_dir, cfg.idranges_max).release(&Owner {
                id: id.into(),
                state_dir: sdir,
            });
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let status = st.status(&cfg.root);
    match status {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&st)?,
        Status::Running | Status::Paused if force => kill_and_wait(&st)?,
        s => {
            return Err(Error::BadState {
                id: id.into(),
                status: s.as_str().into(),
                what: "cannot delete a container that is not stopped (use --force)".into(),
            })
        }
    }
    if let Some(cg) = &st.cgroup {
        let _ = cg.signal_all(libc::SIGKILL);
        if let Err(e) = cg.remove() {
            tracing::warn!("{e}");
        }
    }
    if let Some(h) = crate::spec::saved_hooks(&sdir) {
        if let Err(e) = hooks::run(
            "poststop",
            h.poststop().as_deref().unwrap_or_default(),
            &st.hook_json("stopped"),
        ) {
            tracing::warn!("{e}");
        }
    }
    tracing::debug!(stage = "stopped, cgroup removed", "delete");
    if cfg.guard == GuardMode::Required {
        // Best effort: the guard also notices the listener closing.
        if let Ok(mut g) = GuardClient::connect(&cfg.guard_socket) {
            let _ = g.call(
                &Request::Unregister {
                    version: PROTOCOL_VERSION,
                    id: id.into(),
                    state_dir: sdir.clone(),
                },
                None,
            );
        }
    }
    tracing::debug!(stage = "unregistered", "delete");
    std::fs::remove_dir_all(&sdir)
        .map_err(|e| Error::Other(format!("remove {}: {e}", sdir.display())))?;
    let owner = Owner {
        id: id.into(),
        state_dir: sdir.clone(),
    };
    if cfg.guard == GuardMode::Required {
        if let Ok(mut g) = GuardClient::connect(&cfg.guard_socket) {
            let released = g.call(
                &Request::ReleaseRange {
                    version: PROTOCOL_VERSION,
                    owner: owner.clone(),
                },
                None,
            );
            if released.is_ok() {
                return Ok(());
            }
        }
    }
    // The same allocator, directly (flock-protected): a delete never fails
    // because the guard is down.
    Allocator::new(&cfg.idranges_dir, cfg.idranges_max)
        .release(&Owner {
            id: id.into(),
            state_dir: sdir,
        })
        .map_err(Into::into)
}

fn kill_and_wait(st: &State) -> Result<()> {
    if let Some(cg) = &st.cgroup {
        // A frozen cgroup cannot die; thaw it after the kill is queued.
        let _ = cg.signal_all(libc::SIGKILL);
        if cg.frozen() {
            let _ = cg.freeze(false);
        }
    }
    let _ = super::kill::signal_init(st, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while st.alive() {
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "container {} init did not die",
                st.id
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
