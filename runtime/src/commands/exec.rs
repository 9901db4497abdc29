//! `exec`: a new process in a running container.
//!
//! The runtime forks a child into the container's pid namespace; the child
//! joins the container's cgroup, then every other namespace at once through a
//! pidfd (atomic: no window where it sits half in), and finishes like the init
//! (credentials, seccomp with its own listener for hull-guard, exec). The
//! runtime process is non-dumpable all along, so nothing in the container can
//! open its /proc/PID/exe (CVE-2019-5736).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;
use oci_spec::runtime::{LinuxSeccomp, Process, ProcessBuilder, Spec, UserBuilder};

use crate::cli::{ExecArgs, GuardMode};
use crate::config::RuntimeConfig;
use crate::error::{Context, Error, Result};
use crate::guard_proto::{GuardClient, ProcessKind, GUARD_WAIT};
use crate::state::{self, State, Status};
use crate::sync::{self, Msg};
use crate::{cgroup, console, namespaces, process, sys};

pub struct ExecOutcome {
    pub pid: i32,
    /// Exit code when not detached.
    pub code: Option<i32>,
}

fn load_process(a: &ExecArgs, spec: &Spec) -> Result<Process> {
    if let Some(p) = &a.process {
        let data = std::fs::read(p).ctx(|| format!("read {}", p.display()))?;
        return serde_json::from_slice(&data)
            .map_err(|e| Error::Bundle(format!("{}: {e}", p.display())));
    }
    if a.command.is_empty() {
        return Err(Error::Other(
            "exec: no command (give --process or arguments)".into(),
        ));
    }
    let base = spec.process().clone().unwrap_or_default();
    let mut env = base.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    let (uid, gid) = match &a.user {
        Some(u) => {
            let (u, g) = u.split_once(':').unwrap_or((u.as_str(), "0"));
            (
                u.parse()
                    .map_err(|_| Error::Other(format!("bad uid {u:?}")))?,
                g.parse()
                    .map_err(|_| Error::Other(format!("bad gid {g:?}")))?,
            )
        }
        None => (base.user().uid(), base.user().gid()),
    };
    let be = |e: oci_spec::OciSpecError| Error::Other(e.to_string());
    ProcessBuilder::default()
        .args(a.command.clone())
        .env(env)
        .cwd(
            a.cwd
                .clone()
                .map(PathBuf::from)
                .unwrap_or_else(|| base.cwd().clone()),
        )
        .terminal(a.tty)
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .build()
                .map_err(be)?,
        )
        .capabilities(base.capabilities().clone().unwrap_or_default())
        .no_new_privileges(a.no_new_privs || base.no_new_privileges().unwrap_or(false))
        .build()
        .map_err(be)
}

/// The v2 cgroup the init is in now (it may have moved into a sub-cgroup it
/// made itself, as Docker-in-Docker does).
fn init_cgroup(pid: i32, st: &State) -> Option<PathBuf> {
    let own = st.cgroup.as_ref()?.path.clone();
    let current = (|| {
        let root = cgroup::v2_root()?.0;
        let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let line = s.lines().find(|l| l.starts_with("0::"))?;
        let rel = line.trim_start_matches("0::").trim_start_matches('/');
        Some(root.join(rel))
    })();
    match current {
        // Never follow the init out of the container's own subtree.
        Some(p) if p.starts_with(&own) => Some(p),
        _ => Some(own),
    }
}

pub fn exec(cfg: &RuntimeConfig, a: &ExecArgs) -> Result<ExecOutcome> {
    let st = State::load(&cfg.root, &a.id)?;
    match st.status(&cfg.root) {
        Status::Running | Status::Created => {}
        s => {
            return Err(Error::BadState {
                id: a.id.clone(),
                status: s.as_str().into(),
                what: "cannot exec in a container that is not running".into(),
            })
        }
    }
    let sdir = state::dir(&cfg.root, &a.id);
    let spec: Spec = serde_json::from_slice(
        &std::fs::read(sdir.join("config.json")).ctx(|| "read saved config")?,
    )
    .map_err(|e| Error::Other(format!("saved config: {e}")))?;
    let mut proc_ = load_process(a, &spec)?;
    if proc_.capabilities().is_none() {
        proc_.set_capabilities(
            spec.process()
                .as_ref()
                .and_then(|p| p.capabilities().clone()),
        );
    }
    let terminal = proc_.terminal().unwrap_or(false) || a.tty;
    let mut guard = match cfg.guard {
        GuardMode::Required => Some(GuardClient::connect_waiting(&cfg.guard_socket, GUARD_WAIT)?),
        _ => None,
    };
    let console = match (terminal, &a.console_socket) {
        (true, Some(p)) => Some(console::connect(p)?),
        (true, None) => return Err(Error::Other("exec --tty needs --console-socket".into())),
        _ => None,
    };
    let pidfd =
        sys::pidfd_open(st.pid).map_err(|_| Error::Other("container not running".into()))?;
    if !st.alive() {
        return Err(Error::Other("container not running".into()));
    }
    let pidns: OwnedFd = std::fs::File::open(format!("/proc/{}/ns/pid", st.pid))
        .ctx(|| "open the container's pid namespace")?
        .into();
    let cg_procs = init_cgroup(st.pid, &st).map(|p| p.join("cgroup.procs"));
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let (pch, cch) = sync::pair()?;
    let cg_dir = cg_procs
        .as_ref()
        .and_then(|p| p.parent())
        .and_then(|d| std::fs::File::open(d).ok())
        .map(OwnedFd::from);
    let (fork, joined) = namespaces::fork_in(Some(&pidns), cg_dir.as_ref().map(|f| f.as_fd()))?;
    // Born in the cgroup: nothing left to join.
    let cg_procs = if joined { None } else { cg_procs };
    let child = match fork {
        ForkResult::Child => {
            drop(pch);
            let err = match exec_child(
                &proc_,
                profile.as_ref(),
                cfg.guard,
                &pidfd,
                cg_procs.as_deref(),
                console.as_ref(),
                &cch,
                a.preserve_fds,
            ) {
                Ok(()) => "exec returned".to_string(),
                Err(e) => e.to_string(),
            };
            let _ = cch.send(&Msg::Error(err.clone()));
            eprintln!("hull-runtime exec: {err}");
            // SAFETY: end the forked child without unwinding.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(cch);
    let pid = child.as_raw();
    let fail = |e: Error| {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(child, None);
        e
    };
    let (mounts_listener, _) = match pch.recv().map_err(fail)? {
        Some((Msg::Ready { .. }, fd)) => (fd, ()),
        Some((Msg::Error(e), _)) => return Err(fail(Error::Other(e))),
        other => return Err(fail(Error::Other(format!("exec: unexpected {other:?}")))),
    };
    if let (Some(g), Some(l)) = (guard.as_mut(), mounts_listener.as_ref()) {
        super::create::register(g, Some(l), &st, &sdir, ProcessKind::Exec, pid, vec![])
            .map_err(fail)?;
    }
    drop(mounts_listener);
    pch.send(&Msg::Continue).map_err(fail)?;
    if let Some(p) = &a.pid_file {
        super::write_pid_file(p, pid)?;
    }
    if a.detach {
        return Ok(ExecOutcome { pid, code: None });
    }
    let code = wait_code(child)?;
    Ok(ExecOutcome {
        pid,
        code: Some(code),
    })
}

pub fn wait_code(child: nix::unistd::Pid) -> Result<i32> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::Other(format!("wait: {e}"))),
        }
    }
}

/// Move this process into the container's cgroup (clone3 could not place it
/// there at birth). Failing is fatal: a process outside the cgroup would run
/// outside the container's limits, its freezer and `kill --all`.
pub fn join_cgroup(procs: &Path) -> Result<()> {
    std::fs::write(procs, "0").map_err(|e| {
        Error::Other(format!(
            "exec: cannot join the container's cgroup ({}): {e}; refusing to run a process outside it",
            procs.display()
        ))
    })
}

#[allow(clippy::too_many_arguments)]
fn exec_child(
    p: &Process,
    profile: Option<&LinuxSeccomp>,
    guard: GuardMode,
    pidfd: &OwnedFd,
    cg_procs: Option<&Path>,
    console_sock: Option<&std::os::unix::net::UnixStream>,
    ch: &sync::Channel,
    preserve_fds: u32,
) -> Result<()> {
    sys::set_pdeathsig(libc::SIGKILL).ctx(|| "pdeathsig")?;
    if let Some(procs) = cg_procs {
        join_cgroup(procs)?;
    }
    process::set_rlimits(p)?;
    process::set_oom_score_adj(p)?;
    let all = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    sys::setns(pidfd.as_fd(), all).ctx(|| "join the container's namespaces")?;
    nix::unistd::setresgid(0.into(), 0.into(), 0.into()).ctx(|| "setresgid 0")?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into()).ctx(|| "setresuid 0")?;
    if let Some(sock) = console_sock {
        console::attach_tty(sock, false)?;
    }
    process::enter_cwd(p)?;
    let prog = process::find_executable(p)?;
    let filter = crate::seccomp::build(profile, guard)?;
    let listener = process::secure(p, &filter, guard)?;
    sys::set_pdeathsig(0).ctx(|| "pdeathsig")?;
    ch.send_fd(
        &Msg::Ready {
            has_listener: listener.is_some(),
            mounts: vec![],
        },
        listener.as_ref().map(|l| l.as_raw_fd()),
    )?;
    drop(listener);
    ch.expect_continue()?;
    process::exec(&prog, p, preserve_fds)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_cgroup_join_fails_the_exec() {
        let e = super::join_cgroup(std::path::Path::new(
            "/nonexistent-hull-cgroup/cgroup.procs",
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("refusing to run a process outside it"),
            "{e}"
        );
    }
}
