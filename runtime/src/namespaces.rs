//! Which namespaces a container gets.
//!
//! Why the namespaces are created by a helper inside the new user namespace
//! (see `commands::create`): the pid, net, ipc, uts and cgroup namespaces must
//! be owned by the container's user namespace, or root in the container could
//! not use them (hostname, its own network, `mount -t proc`, nested
//! containers); and the kernel only lets a pid namespace be entered once its
//! init exists, so the container's init is the helper's first child.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};
use crate::sys;

/// Namespace types hull keeps apart from the VM.
const ISOLATED: &[(LinuxNamespaceType, i32, &str)] = &[
    (LinuxNamespaceType::Pid, libc::CLONE_NEWPID, "pid"),
    (LinuxNamespaceType::Network, libc::CLONE_NEWNET, "net"),
    (LinuxNamespaceType::Ipc, libc::CLONE_NEWIPC, "ipc"),
    (LinuxNamespaceType::Uts, libc::CLONE_NEWUTS, "uts"),
    (LinuxNamespaceType::Cgroup, libc::CLONE_NEWCGROUP, "cgroup"),
];

#[derive(Debug, Default)]
pub struct Plan {
    /// CLONE_NEW* bits the helper creates (besides the user namespace).
    pub create: i32,
    /// Namespaces to join by path (another container's, never the VM's).
    pub join: Vec<(i32, PathBuf)>,
}

fn same_ns(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Decide the namespaces, refusing any that would be shared with the VM
/// (ECI §3: a missing entry means "share the runtime's", i.e. the VM's).
pub fn plan(spec: &Spec) -> Result<Plan> {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut plan = Plan::default();
    let mut shared: Vec<&str> = Vec::new();
    for (typ, flag, name) in ISOLATED {
        match list.iter().find(|n| n.typ() == *typ) {
            // Docker's --privileged (on cgroup v1 engines) leaves the cgroup
            // namespace out; a private one is strictly more isolated, so hull
            // gives it one instead of refusing (--cgroupns=host elsewhere is
            // still refused).
            None if *typ == LinuxNamespaceType::Cgroup && crate::hardening::is_privileged(spec) => {
                tracing::info!(
                    "privileged bundle without a cgroup namespace: giving it a private one"
                );
                plan.create |= flag;
            }
            None => shared.push(name),
            Some(ns) => match ns.path() {
                None => plan.create |= flag,
                Some(p) => {
                    let host1 = PathBuf::from(format!("/proc/1/ns/{name}"));
                    let own = PathBuf::from(format!("/proc/self/ns/{name}"));
                    if same_ns(p, &host1) || same_ns(p, &own) {
                        shared.push(name);
                    } else if let Err(e) = std::fs::metadata(p) {
                        return Err(Error::Bundle(format!(
                            "{name} namespace path {}: {e}",
                            p.display()
                        )));
                    } else {
                        plan.join.push((*flag, p.clone()));
                    }
                }
            },
        }
    }
    if let Some(u) = list.iter().find(|n| n.typ() == LinuxNamespaceType::User) {
        if u.path().is_some() {
            tracing::info!(
                "ignoring the bundle's user namespace path: every hull container gets its own"
            );
        }
    }
    if let Some(m) = list.iter().find(|n| n.typ() == LinuxNamespaceType::Mount) {
        if let Some(p) = m.path() {
            if same_ns(p, Path::new("/proc/1/ns/mnt")) || same_ns(p, Path::new("/proc/self/ns/mnt"))
            {
                shared.push("mnt");
            } else {
                tracing::info!(
                    "ignoring the bundle's mount namespace path: every hull container gets its own"
                );
            }
        }
    }
    if !shared.is_empty() {
        return Err(Error::Refused(refusal(&shared)));
    }
    Ok(plan)
}

/// ECI's wording (eci-behaviours.md §3).
pub fn refusal(shared: &[&str]) -> String {
    let others: Vec<&str> = shared.iter().copied().filter(|n| *n != "net").collect();
    let mut parts = Vec::new();
    if !others.is_empty() {
        parts.push(format!(
            "can't share namespaces [{}] with the host (because they use the linux user-namespace for isolation)",
            others.join(" ")
        ));
    }
    if shared.contains(&"net") {
        parts.push(
            "can't share a network namespace with the host (because they use the linux user-namespace for isolation)"
                .to_string(),
        );
    }
    format!("hull: {}", parts.join("; "))
}

/// Fork a child born into `pidns` (setns only changes where *children* go,
/// so the runtime moves there for the fork and straight back) and, when
/// `cgroup_dir` is given, into that cgroup (clone3; see
/// `sys::fork_into_cgroup`). The bool says whether the cgroup was joined.
pub fn fork_in(
    pidns: Option<&OwnedFd>,
    cgroup_dir: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(ForkResult, bool)> {
    let own = match pidns {
        Some(target) => {
            let own = std::fs::File::open("/proc/self/ns/pid").ctx(|| "open /proc/self/ns/pid")?;
            sys::setns(target.as_fd(), libc::CLONE_NEWPID).ctx(|| "setns(pid)")?;
            Some(own)
        }
        None => None,
    };
    let r = match cgroup_dir.map(sys::fork_into_cgroup) {
        Some(Ok(0)) => Ok((ForkResult::Child, true)),
        Some(Ok(pid)) => Ok((
            ForkResult::Parent {
                child: nix::unistd::Pid::from_raw(pid),
            },
            true,
        )),
        // SAFETY: single-threaded runtime.
        _ => unsafe { fork() }.map(|f| (f, false)).ctx(|| "fork"),
    };
    if let (Some(own), Ok((ForkResult::Parent { .. }, _))) = (own, &r) {
        sys::setns(own.as_fd(), libc::CLONE_NEWPID)
            .ctx(|| "restore the runtime's pid namespace")?;
    }
    r
}

/// Fork a child born into `pidns` (no cgroup change).
pub fn fork_into_pidns(pidns: Option<&OwnedFd>) -> Result<ForkResult> {
    fork_in(pidns, None).map(|(f, _)| f)
}

/// Open a namespace of `pid` by name (user, net, ipc, uts, cgroup, pid, mnt).
pub fn open_ns(pid: i32, name: &str) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/{name}");
    std::fs::File::open(&path)
        .map(OwnedFd::from)
        .ctx(|| format!("open {path}"))
}

/// The CLONE_NEW* flag and /proc name of the namespaces a container
/// process joins besides user and mount.
pub const JOINABLE: &[(i32, &str)] = &[
    (libc::CLONE_NEWNET, "net"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
];
