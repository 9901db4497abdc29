//! `kill`: signal the init through a pidfd (no pid-reuse race), or every
//! process of the container's cgroup with --all.

use std::os::fd::AsFd;

use crate::config::RuntimeConfig;
use crate::error::{Error, Result};
use crate::state::State;
use crate::sys;

pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Other(format!("unknown signal {s:?}")))
}

pub fn kill(cfg: &RuntimeConfig, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let st = State::load(&cfg.root, id)?;
    if all {
        if let Some(cg) = &st.cgroup {
            return signal_all_frozen(cg, sig);
        }
    }
    signal_init(&st, sig)
}

/// Signal every process of the cgroup with the cgroup frozen (SIGKILL goes
/// through `cgroup.kill`, atomic already): no process can fork a child the
/// walk of `cgroup.procs` would miss. A container paused before stays paused.
fn signal_all_frozen(cg: &crate::cgroup::Cgroup, sig: i32) -> Result<()> {
    if sig == libc::SIGKILL {
        return cg.signal_all(sig);
    }
    let was_frozen = cg.frozen();
    cg.freeze(true)?;
    let r = cg.signal_all(sig);
    if !was_frozen {
        cg.freeze(false)?;
    }
    r
}

pub fn signal_init(st: &State, sig: i32) -> Result<()> {
    if !st.alive() {
        return Err(Error::Other("container not running".into()));
    }
    let fd = sys::pidfd_open(st.pid).map_err(|_| Error::Other("container not running".into()))?;
    // The pidfd pins the process: check it is still ours before signalling.
    if !st.alive() {
        return Err(Error::Other("container not running".into()));
    }
    sys::pidfd_send_signal(fd.as_fd(), sig).map_err(|e| {
        if e.raw_os_error() == Some(libc::ESRCH) {
            Error::Other("container not running".into())
        } else {
            Error::Other(format!("signal {sig} to container {}: {e}", st.id))
        }
    })
}
