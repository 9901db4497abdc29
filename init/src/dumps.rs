//! Core dumps as Docker Engine has them, with hull's own daemons kept out.
//!
//! Docker's systemd unit starts dockerd and containerd with
//! `LimitCORE=infinity`, and every container inherits that unless `docker run
//! --ulimit core=...` says otherwise. With core_pattern "core" (sysctl.rs) the
//! kernel writes a dump into the crashing process's cwd, through its own
//! mount namespace and as its own ids: into a volume or bind when that is
//! where it runs, never anywhere the process could not write itself. A
//! "|helper" pattern can never run (the kernel's empty static user-mode
//! helper path), so nothing else is reachable through core_pattern.
//!
//! init itself is made non-dumpable: it holds the admin's settings and the
//! control channel, and no core of it may ever be written (PID 1 cannot dump
//! anyway; the flag also keeps ptrace by uid away). The gate does the same
//! for itself (gate/src/main.rs), as do hull-guard and hull-runtime during
//! their work. dockerd and containerd keep the kernel's default: their cwd
//! is the read-only root, where a dump cannot be written.

use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};

/// Errors are reported, not fatal: a VM without container core dumps still
/// runs containers.
pub fn apply() -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        errors.push(format!("prctl(PR_SET_DUMPABLE, 0) for init: {e}"));
    }
    // Inherited by every service init starts and so by every container.
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, RLIM_INFINITY, RLIM_INFINITY) {
        errors.push(format!("setrlimit(RLIMIT_CORE, infinity): {e}"));
    }
    errors
}
