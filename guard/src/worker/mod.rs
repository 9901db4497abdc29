//! One worker process per container: it holds the container's seccomp
//! listeners and answers every trapped mount-family call, performing the
//! allowed ones itself.
//!
//! Why a process of its own, living in the container's user namespace as its
//! root: a superblock (tmpfs, overlay, ...) takes its owner from whoever
//! creates it, so the guard must create it *as the container*, never as the
//! VM's root; and joining a user namespace is only possible for a
//! single-threaded process. The worker is never in the container's pid
//! namespace (nothing in the container can see, signal or ptrace it), is
//! non-dumpable, and exits as soon as its control socket to the guard closes
//! (the guard died), so a dead guard leaves no listener behind: trapped calls
//! then fail with ENOSYS.
//!
//! Every call is answered in the same order: copy the arguments out of the
//! caller's memory once, enter the caller's mount namespace, root and cwd,
//! check the notification is still valid, resolve each path to an fd exactly
//! as the kernel would for the caller, vet those objects (mount ids,
//! superblocks, mountinfo of the caller's namespace), and perform the call on
//! the fds (never on the strings again). Only fsmount and open_tree are
//! answered with CONTINUE (see there).
//!
//! Files: this one is the process (start, serving loop, answering); `vet`
//! the steps every call shares; one file per syscall family with its
//! vetting: `mount` (mount(2)), `umount` (umount2), `fscontext` (fsopen,
//! fsconfig, fsmount, fspick), `tree` (move_mount, open_tree), `setattr`
//! (mount_setattr); `caller` reaches the caller's objects, `objects`
//! identifies mounts and holds the checks several calls share, `budget`
//! bounds the audit lines.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use serde_json::json;

use super::audit::{errno_name, now_rfc3339, Event};
use super::control::{Control, FromWorker, ToWorker};
use super::knowledge::{Ident, Knowledge, MountRef};
use super::memory::{read_bytes, read_cstr, read_cstrs};
use super::mountinfo::{self, Entry, Flags};
use super::notify::{Listener, Notif, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::policy::{self, FsKind, MountOp};
use super::sysx::{self, Stat};
use hull_guard_proto::ContainerIdentity;

mod budget;
mod caller;
mod fscontext;
mod mount;
mod objects;
mod setattr;
mod tree;
mod umount;
mod vet;

// Shared by every family's file (which see the parent's names through
// `use super::*`).
use budget::*;
use objects::*;

const PATH_MAX: usize = 4096;

/// The worker's scheduler slice: the kernel's minimum (0.1 ms), well above
/// what one call takes (~20 µs).
const WORKER_SLICE_NS: u64 = 100_000;

const NR_MOUNT: i32 = 165;
const NR_UMOUNT2: i32 = 166;
const NR_OPEN_TREE: i32 = 428;
const NR_MOVE_MOUNT: i32 = 429;
const NR_FSOPEN: i32 = 430;
const NR_FSCONFIG: i32 = 431;
const NR_FSMOUNT: i32 = 432;
const NR_FSPICK: i32 = 433;
const NR_MOUNT_SETATTR: i32 = 442;

fn syscall_name(nr: i32) -> &'static str {
    match nr {
        NR_MOUNT => "mount",
        NR_UMOUNT2 => "umount2",
        NR_OPEN_TREE => "open_tree",
        NR_MOVE_MOUNT => "move_mount",
        NR_FSOPEN => "fsopen",
        NR_FSCONFIG => "fsconfig",
        NR_FSMOUNT => "fsmount",
        NR_FSPICK => "fspick",
        NR_MOUNT_SETATTR => "mount_setattr",
        _ => "unknown",
    }
}

/// How a call ends.
enum Outcome {
    Deny(i32, String),
    /// Performed: the kernel's answer (value or errno).
    Done(Result<i64, i32>, String),
    /// Performed, returning an fd to install in the caller.
    Fd(OwnedFd, bool, String),
    /// The guard could not vet it: fail the call.
    Error(i32, String),
    /// Let the kernel run it (fsmount, open_tree: see there).
    Continue(String),
}

fn deny(reason: impl Into<String>) -> Outcome {
    Outcome::Deny(libc::EPERM, reason.into())
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn lossy(b: &Option<Vec<u8>>) -> serde_json::Value {
    match b {
        Some(v) => json!(String::from_utf8_lossy(v)),
        None => serde_json::Value::Null,
    }
}

/// A caller being served: its ids and the fds taken for it.
struct Caller {
    tid: i32,
    /// Our /proc/<tid> directory for this caller.
    dir: RawFd,
    id: u64,
    /// The mount holding the caller's root directory.
    root_mnt: Option<u64>,
    pidfd: Option<OwnedFd>,
}

pub struct Worker {
    id: String,
    /// First VM id of the container's range.
    range_start: u32,
    ctl: Control,
    listeners: Vec<(i32, Listener)>,
    proc_dir: OwnedFd,
    fd_dir: OwnedFd,
    known: Knowledge,
    cur_mntns: u64,
    /// (dev, inode, mount id) of the root we are chrooted to.
    cur_root: Option<(u64, u64, u64)>,
    userns_ino: u64,
    ns_cache: HashMap<&'static str, u64>,
    audit_buf: Vec<String>,
    budget: AuditBudget,
    /// /proc/<tid> of recent callers: an open directory names its task for
    /// good (a recycled tid is another task, whose lookups fail here), and
    /// saves a procfs lookup and revalidation on every per-call access.
    tid_dirs: HashMap<i32, OwnedFd>,
    /// Why every call is refused (the container's protected mounts are
    /// unknown), if so.
    refuse_all: Option<String>,
}

fn proc_path(tid: i32, what: &str) -> String {
    format!("{tid}/{what}")
}

fn to_io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// The worker's entry point (`hull-guard worker`, control socket on fd 3).
pub fn run(ctl_fd: OwnedFd) -> std::io::Result<()> {
    crate::sys::set_dumpable(false)?;
    // Every trapped call wakes the worker and then its caller: on a busy
    // machine each wake-up would wait for the running task's slice (ms),
    // which dominated a trapped mount's time. A short slice only moves the
    // worker's deadlines earlier; its weight, hence its share of the CPU,
    // is unchanged, so a container flooding mount calls gains no CPU time
    // through it.
    if let Err(e) = crate::sys::set_fair_slice(WORKER_SLICE_NS) {
        tracing::debug!("worker: no short scheduler slice: {e}");
    }
    let ctl = Control::from_fd(ctl_fd);
    let (container, refuse_all, fd) = match ctl.recv::<ToWorker>()? {
        Some((
            ToWorker::Init {
                container,
                refuse_all,
            },
            Some(fd),
        )) => (container, refuse_all, fd),
        _ => {
            return Err(std::io::Error::other(
                "worker: expected Init with a listener",
            ))
        }
    };
    match Worker::start(ctl, container, fd) {
        Ok(mut w) => {
            w.refuse_all = refuse_all;
            let _ = w.ctl.send(&FromWorker::Ready, None);
            w.serve();
            Ok(())
        }
        Err((ctl, e)) => {
            let _ = ctl.send(
                &FromWorker::Failed {
                    error: e.to_string(),
                },
                None,
            );
            Err(e)
        }
    }
}

impl Worker {
    fn start(
        ctl: Control,
        c: ContainerIdentity,
        listener: OwnedFd,
    ) -> Result<Self, (Control, std::io::Error)> {
        let r = (|| -> std::io::Result<(OwnedFd, OwnedFd, Knowledge, u64, u64)> {
            let proc_dir =
                sysx::open_at(libc::AT_FDCWD, "/proc", libc::O_PATH | libc::O_DIRECTORY)?;
            let fd_dir = sysx::open_at(
                libc::AT_FDCWD,
                "/proc/self/fd",
                libc::O_PATH | libc::O_DIRECTORY,
            )?;
            let pid = c.pid;
            let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
            let entries = mountinfo::parse(&info);
            let root = sysx::open_at(
                proc_dir.as_raw_fd(),
                &proc_path(pid, "root"),
                libc::O_PATH | libc::O_DIRECTORY,
            )?;
            let idents = identify(&root, &entries);
            let (known, unknown) = Knowledge::from_initial(entries, &c.mounts, &idents);
            if !unknown.is_empty() {
                tracing::debug!(
                    container = %c.id,
                    "protected by superblock (covered, not reachable to identify): {}",
                    unknown.join(", ")
                );
            }
            let userns = sysx::open_at(
                proc_dir.as_raw_fd(),
                &proc_path(pid, "ns/user"),
                libc::O_RDONLY,
            )?;
            let mntns = sysx::open_at(
                proc_dir.as_raw_fd(),
                &proc_path(pid, "ns/mnt"),
                libc::O_RDONLY,
            )?;
            // Why no supplementary groups: the VM's root groups would follow
            // us into the container's namespace (as unmapped ids with access).
            nix::unistd::setgroups(&[]).map_err(to_io)?;
            crate::sys::setns(userns.as_fd(), libc::CLONE_NEWUSER)?;
            // Root of the container (its VM range start), with every capability
            // there and none in the VM.
            nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(to_io)?;
            nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(to_io)?;
            crate::sys::setns(mntns.as_fd(), libc::CLONE_NEWNS)?;
            let cur = sysx::ns_inode(mntns.as_fd())?;
            let uino = sysx::ns_inode(userns.as_fd())?;
            Ok((proc_dir, fd_dir, known, cur, uino))
        })();
        match r {
            Ok((proc_dir, fd_dir, known, cur_mntns, userns_ino)) => Ok(Worker {
                id: c.id.clone(),
                range_start: c.uid_range.start,
                ctl,
                listeners: vec![(c.pid, Listener::new(listener))],
                proc_dir,
                fd_dir,
                known,
                cur_mntns,
                cur_root: None,
                userns_ino,
                ns_cache: HashMap::new(),
                audit_buf: Vec::new(),
                budget: AuditBudget::new(),
                tid_dirs: HashMap::new(),
                refuse_all: None,
            }),
            Err(e) => Err((ctl, e)),
        }
    }

    fn serve(&mut self) {
        loop {
            if self.listeners.is_empty() {
                self.flush_audit();
                tracing::debug!(container = %self.id, "no listener left; worker exits");
                return;
            }
            let mut pfds: Vec<libc::pollfd> = self
                .listeners
                .iter()
                .map(|(_, l)| libc::pollfd {
                    fd: l.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            pfds.push(libc::pollfd {
                fd: self.ctl.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            // Audit lines wait for a quiet moment (or a full batch): waking the
            // guard's main process on every call would cost a cross-CPU
            // wake-up each time, the most expensive part of a trapped call.
            let timeout = if self.audit_buf.is_empty() && !self.budget.pending() {
                -1
            } else {
                AUDIT_LINGER_MS
            };
            // SAFETY: a valid array of pollfd of the given length.
            let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if r == 0 {
                self.flush_audit();
                continue;
            }
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return;
            }
            let ctl_ev = pfds[pfds.len() - 1].revents;
            let mut gone = Vec::new();
            for (i, p) in pfds[..pfds.len() - 1].iter().enumerate() {
                if p.revents & libc::POLLIN != 0 {
                    self.one(i);
                } else if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    gone.push(i);
                }
            }
            for i in gone.into_iter().rev() {
                self.listeners.remove(i);
            }
            if ctl_ev & libc::POLLIN != 0 {
                if !self.control() {
                    return;
                }
            } else if ctl_ev & (libc::POLLHUP | libc::POLLERR) != 0 {
                return;
            }
        }
    }

    /// A message from the main guard; false when it is gone.
    fn control(&mut self) -> bool {
        match self.ctl.recv::<ToWorker>() {
            Ok(Some((ToWorker::Listener { pid }, Some(fd)))) => {
                self.listeners.push((pid, Listener::new(fd)));
                true
            }
            Ok(Some(other)) => {
                tracing::debug!("worker: unexpected control message {other:?}");
                true
            }
            Ok(None) | Err(_) => false,
        }
    }

    fn one(&mut self, idx: usize) {
        let n = match self.listeners[idx].1.recv() {
            Ok(n) => n,
            // The caller was interrupted or died before we took the call.
            Err(_) => return,
        };
        let nr = if n.data.arch == AUDIT_ARCH_X86_64 {
            n.data.nr & !X32_SYSCALL_BIT
        } else {
            -1
        };
        let name = syscall_name(nr);
        let mut args = json!({});
        let mut caller = Caller {
            tid: n.pid as i32,
            dir: -1,
            id: n.id,
            root_mnt: None,
            pidfd: None,
        };
        let outcome = if nr < 0 {
            Outcome::Error(libc::ENOSYS, "not an x86_64 system call".into())
        } else {
            self.vet(&n, nr, &mut caller, &mut args)
        };
        let l = &self.listeners[idx].1;
        let (verdict, result, reason) = match outcome {
            Outcome::Deny(e, r) => {
                let _ = l.respond(n.id, 0, e);
                ("deny", Some(errno_name(e)), r)
            }
            Outcome::Error(e, r) => {
                let _ = l.respond(n.id, 0, e);
                ("error", Some(errno_name(e)), r)
            }
            Outcome::Done(Ok(v), r) => {
                let _ = l.respond(n.id, v, 0);
                ("allow", Some("ok".into()), r)
            }
            Outcome::Done(Err(e), r) => {
                let _ = l.respond(n.id, 0, e);
                ("allow", Some(errno_name(e)), r)
            }
            Outcome::Continue(r) => {
                let _ = l.respond_continue(n.id);
                ("allow", None, r)
            }
            Outcome::Fd(fd, cloexec, r) => match l.respond_fd(n.id, fd.as_fd(), cloexec) {
                Ok(_) => ("allow", Some("ok".into()), r),
                Err(e) => {
                    let _ = l.respond(n.id, 0, errno_of(&e));
                    ("allow", Some(errno_name(errno_of(&e))), r)
                }
            },
        };
        let ev = Event {
            ts: now_rfc3339(),
            container: &self.id,
            pid: caller.tid,
            syscall: name,
            args,
            verdict,
            result,
            reason,
        };
        if !self.budget.take(verdict) {
            return;
        }
        if let Some(summary) = self.budget.summary(&self.id, false) {
            self.audit_buf.push(summary);
        }
        if let Ok(line) = serde_json::to_string(&ev) {
            self.audit_buf.push(line);
            // Denials go out at once (they matter, and they are rare);
            // allowed calls are batched.
            if self.audit_buf.len() >= AUDIT_BATCH || verdict != "allow" {
                self.flush_audit();
            }
        }
    }

    fn flush_audit(&mut self) {
        if let Some(summary) = self.budget.summary(&self.id, true) {
            self.audit_buf.push(summary);
        }
        if self.audit_buf.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.audit_buf).join("\n");
        let _ = self.ctl.send(&FromWorker::Audit { line: lines }, None);
    }

    fn perform(&self, f: impl FnOnce() -> std::io::Result<()>, why: &str) -> Outcome {
        match f() {
            Ok(()) => Outcome::Done(Ok(0), why.into()),
            Err(e) => Outcome::Done(Err(errno_of(&e)), why.into()),
        }
    }
}
