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
//! the fds (never on the strings again). Nothing is ever answered with
//! CONTINUE.

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

const PATH_MAX: usize = 4096;

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

const AUDIT_BATCH: usize = 64;

/// One container may not flood the shared, bounded audit log (and rotate
/// the other containers' records away): past a budget, lines are counted
/// and summarised once per second instead of written.
struct AuditBudget {
    tokens: f64,
    last: std::time::Instant,
    suppressed_allow: u64,
    suppressed_other: u64,
    last_summary: std::time::Instant,
}

const AUDIT_RATE: f64 = 100.0;
const AUDIT_BURST: f64 = 10_000.0;

impl AuditBudget {
    fn new() -> Self {
        let now = std::time::Instant::now();
        AuditBudget {
            tokens: AUDIT_BURST,
            last: now,
            suppressed_allow: 0,
            suppressed_other: 0,
            last_summary: now,
        }
    }

    /// May this line be written?
    fn take(&mut self, verdict: &str) -> bool {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * AUDIT_RATE).min(AUDIT_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        if verdict == "allow" {
            self.suppressed_allow += 1;
        } else {
            self.suppressed_other += 1;
        }
        false
    }

    fn pending(&self) -> bool {
        self.suppressed_allow + self.suppressed_other > 0
    }

    /// A line saying how much was left out, at most once a second (or now,
    /// when `force`d: the worker is going quiet or away).
    fn summary(&mut self, container: &str, force: bool) -> Option<String> {
        let n = self.suppressed_allow + self.suppressed_other;
        if n == 0 || (!force && self.last_summary.elapsed() < std::time::Duration::from_secs(1)) {
            return None;
        }
        self.last_summary = std::time::Instant::now();
        let line = json!({"ts": now_rfc3339(), "event": "suppressed", "container": container,
                          "allow": self.suppressed_allow, "deny_or_error": self.suppressed_other})
        .to_string();
        self.suppressed_allow = 0;
        self.suppressed_other = 0;
        Some(line)
    }
}
const AUDIT_LINGER_MS: i32 = 50;

fn proc_path(tid: i32, what: &str) -> String {
    format!("{tid}/{what}")
}

fn to_io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// The worker's entry point (`hull-guard worker`, control socket on fd 3).
pub fn run(ctl_fd: OwnedFd) -> std::io::Result<()> {
    crate::sys::set_dumpable(false)?;
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

    /// Our /proc/<tid> directory (cached; `fresh` reopens it).
    fn tid_dir(&mut self, tid: i32, fresh: bool) -> std::io::Result<RawFd> {
        if fresh || !self.tid_dirs.contains_key(&tid) {
            if self.tid_dirs.len() > 256 {
                self.tid_dirs.clear();
            }
            let d = sysx::open_at(
                self.proc_dir.as_raw_fd(),
                &tid.to_string(),
                libc::O_PATH | libc::O_DIRECTORY,
            )?;
            self.tid_dirs.insert(tid, d);
        }
        self.tid_dirs
            .get(&tid)
            .map(|d| d.as_raw_fd())
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))
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

    fn valid(&self, c: &Caller) -> bool {
        self.listeners.iter().any(|(_, l)| l.id_valid(c.id))
    }

    /// Enter the caller's mount namespace and root. Both are remembered:
    /// a caller in the same namespace with the same root (same mount, same
    /// directory) costs two statx calls, not a setns and a chroot. The cwd is
    /// taken only when a relative path needs it (see `resolve`).
    fn enter(&mut self, c: &mut Caller) -> std::io::Result<()> {
        // SAFETY: c.dir is one of our cached /proc/<tid> fds, alive for the call.
        let pd = unsafe { BorrowedFd::borrow_raw(c.dir) };
        let ns = sysx::statx_at(pd, "ns/mnt")?;
        let mut moved = false;
        if ns.ino != self.cur_mntns {
            let mnt = sysx::open_at(c.dir, "ns/mnt", libc::O_RDONLY)?;
            crate::sys::setns(mnt.as_fd(), libc::CLONE_NEWNS)?;
            self.cur_mntns = ns.ino;
            self.cur_root = None;
            moved = true;
        }
        let r = sysx::statx_at(pd, "root")?;
        let key = (r.dev, r.ino, r.mnt_id);
        c.root_mnt = Some(r.mnt_id);
        if self.cur_root != Some(key) {
            let root = sysx::open_at(c.dir, "root", libc::O_PATH)?;
            sysx::fchdir(root.as_fd())?;
            sysx::chroot_dot()?;
            self.cur_root = Some(key);
            moved = true;
        }
        if moved {
            // Our cwd stays the VM's /proc/self/fd: every call is performed
            // through fd names there (see sysx::mount_by_fd).
            sysx::fchdir(self.fd_dir.as_fd())?;
        }
        Ok(())
    }

    /// Join one more of the caller's namespaces (cgroup, ipc, net) when the
    /// filesystem being created takes it from its creator.
    fn join(&mut self, c: &Caller, name: &'static str, flag: i32) -> std::io::Result<()> {
        let fd = sysx::open_at(c.dir, &format!("ns/{name}"), libc::O_RDONLY)?;
        let ino = sysx::ns_inode(fd.as_fd())?;
        if self.ns_cache.get(name) != Some(&ino) {
            crate::sys::setns(fd.as_fd(), flag)?;
            self.ns_cache.insert(name, ino);
        }
        Ok(())
    }

    /// A caller in a user namespace nested in the container's (`unshare -Urm`)
    /// is served only when the worker's credentials are not more than its
    /// own where it matters: it is the container's root (same uid, so the
    /// same file access while resolving paths), and its mount namespace is
    /// owned by its own user namespace (so the kernel would have let it mount
    /// there: a caller that unshared only its user namespace would not).
    fn nested_ok(&self, c: &Caller) -> Result<(), String> {
        const NS_GET_USERNS: u64 = 0xb701;
        let status = sysx::open_at(c.dir, "status", libc::O_RDONLY)
            .and_then(|f| std::io::read_to_string(std::fs::File::from(f)))
            .map_err(|e| format!("status: {e}"))?;
        let ids = |key: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|r| {
                    r.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        if ids("Uid:").get(1) != Some(&0) || ids("Uid:").get(3) != Some(&0) {
            return Err(
                "a nested user namespace's mount calls are served only for the container's root"
                    .into(),
            );
        }
        let mnt = sysx::open_at(c.dir, "ns/mnt", libc::O_RDONLY).map_err(|e| e.to_string())?;
        let user = sysx::open_at(c.dir, "ns/user", libc::O_RDONLY).map_err(|e| e.to_string())?;
        let owner = sysx::ns_ioctl(mnt.as_fd(), NS_GET_USERNS).map_err(|e| e.to_string())?;
        let same = sysx::ns_inode(owner.as_fd()).ok() == sysx::ns_inode(user.as_fd()).ok();
        if !same {
            return Err(
                "the caller's mount namespace is not owned by its user namespace (the kernel would refuse it)"
                    .into(),
            );
        }
        Ok(())
    }

    /// A duplicate of the caller's fd `fd` (through a pidfd taken once per call).
    fn getfd(&self, c: &mut Caller, fd: i32) -> std::io::Result<OwnedFd> {
        if c.pidfd.is_none() {
            let p = sysx::pidfd_open_thread(c.tid)?;
            // The thread we opened must still be the one that made the call.
            if !self.valid(c) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            c.pidfd = Some(p);
        }
        match &c.pidfd {
            Some(p) => sysx::pidfd_getfd(p.as_fd(), fd),
            None => Err(std::io::Error::from_raw_os_error(libc::ESRCH)),
        }
    }

    /// Resolve a path argument exactly as the kernel would for the caller
    /// (we are in its namespace, root and cwd), to an O_PATH fd.
    fn resolve(
        &self,
        c: &mut Caller,
        dirfd: i32,
        path: &[u8],
        follow: bool,
        empty_ok: bool,
    ) -> std::io::Result<OwnedFd> {
        if path.is_empty() {
            if empty_ok && dirfd != libc::AT_FDCWD {
                return self.getfd(c, dirfd);
            }
            return Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        }
        // The caller's own fds named through its /proc: "self" there would
        // be us, so take the caller's fd itself.
        for prefix in [&b"/proc/self/fd/"[..], &b"/proc/thread-self/fd/"[..]] {
            if let Some(rest) = path.strip_prefix(prefix) {
                let (num, tail) = match rest.iter().position(|b| *b == b'/') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, &b""[..]),
                };
                if let Some(n) = std::str::from_utf8(num)
                    .ok()
                    .and_then(|s| s.parse::<i32>().ok())
                {
                    let f = self.getfd(c, n)?;
                    if tail.is_empty() {
                        return Ok(f);
                    }
                    return sysx::open_path(f.as_raw_fd(), tail, follow);
                }
            }
        }
        let base = if path[0] == b'/' {
            None
        } else if dirfd == libc::AT_FDCWD {
            // Relative to the caller's cwd (our own cwd is the fd directory).
            let cwd = sysx::open_at(c.dir, "cwd", libc::O_PATH)?;
            if !self.valid(c) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Some(cwd)
        } else {
            Some(self.getfd(c, dirfd)?)
        };
        sysx::open_path(
            base.as_ref().map_or(libc::AT_FDCWD, |b| b.as_raw_fd()),
            path,
            follow,
        )
    }

    fn mountinfo(&self, c: &Caller) -> std::io::Result<Vec<Entry>> {
        let f = sysx::open_at(c.dir, "mountinfo", libc::O_RDONLY)?;
        let s = std::io::read_to_string(std::fs::File::from(f))?;
        Ok(mountinfo::parse(&s))
    }

    fn entry(&self, c: &Caller, mnt_id: u64) -> std::io::Result<Option<Entry>> {
        Ok(self.mountinfo(c)?.into_iter().find(|e| e.id == mnt_id))
    }

    fn root_mnt(&self, c: &Caller) -> Option<u64> {
        c.root_mnt
    }

    /// May something be mounted at (or on top of) `t` (`fd` is on it)? Not
    /// on the container's own /proc or /sys or their masks and read-only
    /// paths; on a proc or sysfs the guard built, yes, masks included (an
    /// inner runtime masks its proc again, which hides and never reveals).
    /// Decided on the mount's unique id and root object: the caller's
    /// mountinfo leaves out every mount outside its root, and a fresh sysfs
    /// shares the superblock of the container's /sys.
    fn target_ok(&self, fd: BorrowedFd<'_>, t: &Stat) -> Result<(), String> {
        let suspect = self.known.no_mount_devs.contains(&t.dev)
            || (t.mount_root && !self.known.is_own(t.dev));
        if !suspect {
            return Ok(());
        }
        let m = mount_ref(fd, t)?;
        if m.unique.is_some_and(|u| self.known.fresh.contains(&u)) {
            return Ok(());
        }
        if self.known.no_mount_devs.contains(&t.dev) {
            return Err("mounting over /proc, /sys or a masked path is refused".into());
        }
        if let Some(name) = self.known.protected_name(&m) {
            return Err(format!(
                "mounting over the masked or read-only path {name} is refused"
            ));
        }
        Ok(())
    }

    fn vet(&mut self, n: &Notif, nr: i32, c: &mut Caller, args: &mut serde_json::Value) -> Outcome {
        let a = n.data.args;
        let tid = c.tid;
        // 1. Copy the arguments once.
        let read = (|| -> std::io::Result<Vec<Option<Vec<u8>>>> {
            Ok(match nr {
                NR_MOUNT => {
                    let data = match policy::classify(a[3]) {
                        MountOp::New | MountOp::Remount => a[4],
                        _ => 0,
                    };
                    read_cstrs(
                        tid,
                        &[
                            (a[0], PATH_MAX),
                            (a[1], PATH_MAX),
                            (a[2], 256),
                            (data, PATH_MAX),
                        ],
                    )?
                }
                NR_UMOUNT2 => read_cstrs(tid, &[(a[0], PATH_MAX)])?,
                NR_FSOPEN => vec![read_cstr(tid, a[0], 256)?],
                NR_FSCONFIG => {
                    let key = read_cstr(tid, a[2], 256)?;
                    let val = match a[1] as u32 {
                        sysx::FSCONFIG_SET_STRING
                        | sysx::FSCONFIG_SET_PATH
                        | sysx::FSCONFIG_SET_PATH_EMPTY => read_cstr(tid, a[3], PATH_MAX)?,
                        sysx::FSCONFIG_SET_BINARY if a[4] as usize <= 1 << 20 && a[3] != 0 => {
                            Some(read_bytes(tid, a[3], a[4] as usize)?)
                        }
                        _ => None,
                    };
                    vec![key, val]
                }
                NR_MOVE_MOUNT => vec![
                    read_cstr(tid, a[1], PATH_MAX)?,
                    read_cstr(tid, a[3], PATH_MAX)?,
                ],
                NR_OPEN_TREE | NR_FSPICK => vec![read_cstr(tid, a[1], PATH_MAX)?],
                NR_MOUNT_SETATTR => {
                    let size = (a[4] as usize).min(4096);
                    let attr = if size >= 32 && a[3] != 0 {
                        Some(read_bytes(tid, a[3], 32)?)
                    } else {
                        None
                    };
                    vec![read_cstr(tid, a[1], PATH_MAX)?, attr]
                }
                _ => vec![],
            })
        })();
        let s = match read {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Error(errno_of(&e), format!("cannot read the arguments: {e}"))
            }
        };
        if let Some(why) = &self.refuse_all {
            *args = describe(nr, &a, &s);
            return deny(why.clone());
        }
        // 2. The caller must hold CAP_SYS_ADMIN in the container's user namespace.
        let caps = match sysx::effective_caps(tid) {
            Ok(c) => c,
            Err(e) => return Outcome::Error(libc::EPERM, format!("capget: {e}")),
        };
        let userns = |dir: RawFd| {
            nix::sys::stat::fstatat(Some(dir), "ns/user", nix::fcntl::AtFlags::empty())
                .map(|st| st.st_ino)
        };
        let ino = match self.tid_dir(tid, false).map(|d| (d, userns(d))) {
            Ok((d, Ok(ino))) => Ok((d, ino)),
            // A cached directory of a task that has gone: look again.
            _ => self
                .tid_dir(tid, true)
                .and_then(|d| userns(d).map(|i| (d, i)).map_err(std::io::Error::from)),
        };
        let in_userns = match ino {
            Ok((d, ino)) => {
                c.dir = d;
                ino == self.userns_ino
            }
            Err(e) => return Outcome::Error(errno_of(&e), format!("/proc/{tid}: {e}")),
        };
        // 3. Enter its mount namespace, root and cwd; then check the call is
        // still the same live thread's before trusting anything we read.
        if let Err(e) = self.enter(c) {
            return Outcome::Error(
                errno_of(&e),
                format!("cannot enter the caller's namespace: {e}"),
            );
        }
        if !self.valid(c) {
            return Outcome::Error(libc::ESRCH, "the caller went away".into());
        }
        *args = describe(nr, &a, &s);
        if !in_userns {
            if let Err(why) = self.nested_ok(c) {
                return deny(why);
            }
        }
        if caps & (1 << sysx::CAP_SYS_ADMIN) == 0 {
            return deny("the caller lacks CAP_SYS_ADMIN");
        }
        let r = match nr {
            NR_MOUNT => self.mount(c, &s, a[3]),
            NR_UMOUNT2 => self.umount(c, s[0].as_deref().unwrap_or_default(), a[1] as i32),
            NR_FSOPEN => self.fsopen(c, s[0].as_deref().unwrap_or_default(), a[1] as u32),
            NR_FSCONFIG => self.fsconfig(c, a[0] as i32, a[1] as u32, &s[0], &s[1], a[4] as i32),
            NR_FSMOUNT => self.fsmount(c, a[0] as i32),
            NR_MOVE_MOUNT => self.move_mount(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as i32,
                s[1].as_deref().unwrap_or_default(),
                a[4] as u32,
            ),
            NR_OPEN_TREE => self.open_tree(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as u32,
            ),
            NR_MOUNT_SETATTR => self.mount_setattr(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as u32,
                s[1].as_deref(),
            ),
            NR_FSPICK => self.fspick(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as u32,
            ),
            _ => Outcome::Error(libc::ENOSYS, "not a mount-family call".into()),
        };
        r
    }

    fn mount(&mut self, c: &mut Caller, s: &[Option<Vec<u8>>], flags: u64) -> Outcome {
        let flags = policy::strip_magic(flags);
        let target = match &s[1] {
            Some(t) => t.clone(),
            None => return Outcome::Done(Err(libc::EFAULT), "no target".into()),
        };
        let tfd = match self.resolve(c, libc::AT_FDCWD, &target, true, false) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "target does not resolve".into()),
        };
        let t = match sysx::statx_fd(tfd.as_fd()) {
            Ok(t) => t,
            Err(e) => return Outcome::Error(errno_of(&e), format!("statx target: {e}")),
        };
        match policy::classify(flags) {
            MountOp::BindRemount => {
                let e = match self.entry_for(c, &t) {
                    Ok(e) => e,
                    Err(e) => return Outcome::Error(errno_of(&e), format!("mountinfo: {e}")),
                };
                let m = if e.is_none() {
                    // Its own superblock (fast path): nothing protected there.
                    MountRef {
                        unique: None,
                        dev: t.dev,
                        root_ino: None,
                    }
                } else {
                    match mount_ref(tfd.as_fd(), &t) {
                        Ok(m) => m,
                        Err(why) => return Outcome::Error(libc::EPERM, why),
                    }
                };
                if let Some(why) =
                    self.known
                        .flag_change(&m, e.as_ref(), policy::flags_of_ms(flags))
                {
                    return deny(why);
                }
                self.perform(
                    || sysx::mount_by_fd(None, tfd.as_raw_fd(), None, flags, None),
                    "remount of this mount's flags",
                )
            }
            MountOp::Remount => {
                if !self.known.created.contains(&t.dev) || self.known.initial_devs.contains(&t.dev)
                {
                    return deny("remount of a filesystem the container did not create (initial mounts keep their options)");
                }
                let data = s[3].as_ref().map(|d| {
                    translate_ids(&String::from_utf8_lossy(d), self.range_start).into_bytes()
                });
                self.perform(
                    || sysx::mount_by_fd(None, tfd.as_raw_fd(), None, flags, data.as_deref()),
                    "remount of a filesystem the container created",
                )
            }
            MountOp::Propagation => self.perform(
                || sysx::mount_by_fd(None, tfd.as_raw_fd(), None, flags, None),
                "propagation change",
            ),
            op @ (MountOp::Bind { .. } | MountOp::Move) => {
                let is_move = matches!(op, MountOp::Move);
                let src = match &s[0] {
                    Some(p) => p.clone(),
                    None => return Outcome::Done(Err(libc::EFAULT), "no source".into()),
                };
                let sfd = match self.resolve(c, libc::AT_FDCWD, &src, true, false) {
                    Ok(f) => f,
                    Err(e) => {
                        return Outcome::Done(Err(errno_of(&e)), "source does not resolve".into())
                    }
                };
                if is_move {
                    if let Err(why) = self.movable(sfd.as_fd()) {
                        return deny(why);
                    }
                }
                if let Err(why) = self.target_ok(tfd.as_fd(), &t) {
                    return deny(why);
                }
                let sname = sfd.as_raw_fd().to_string();
                self.perform(
                    || {
                        sysx::mount_by_fd(
                            Some(sname.as_bytes()),
                            tfd.as_raw_fd(),
                            None,
                            flags,
                            None,
                        )
                    },
                    if is_move {
                        "move of a mount the container may move"
                    } else {
                        "bind mount within the container"
                    },
                )
            }
            MountOp::New => self.new_mount(c, s, flags, tfd, &t),
        }
    }

    /// mountinfo entry for a target, or None on the fast path (a superblock
    /// the container created needs no lookup).
    fn entry_for(&self, c: &Caller, t: &Stat) -> std::io::Result<Option<Entry>> {
        if self.known.is_own(t.dev) {
            return Ok(None);
        }
        self.entry(c, t.mnt_id)
    }

    /// May the mount behind `fd` be moved (MS_MOVE / move_mount)? Returns
    /// its superblock when it is detached (from fsmount or an open_tree clone).
    fn movable(&self, fd: BorrowedFd<'_>) -> Result<Option<u64>, String> {
        let st = sysx::statx_fd(fd).map_err(|e| format!("statx: {e}"))?;
        if self.known.is_own(st.dev) {
            return Ok(None);
        }
        let m = mount_ref(fd, &st)?;
        let unique = m.unique.unwrap_or_default();
        // Detached (fsmount, open_tree clone): free to attach. Asked of the
        // kernel: the caller's mountinfo omits mounts outside its root.
        if !sysx::attached_here(unique).map_err(|e| format!("statmount: {e}"))? {
            return Ok(Some(st.dev));
        }
        if let Some(name) = self.known.protected_name(&m) {
            return Err(format!(
                "{name} is a masked or read-only path; it stays where it is"
            ));
        }
        if let Some(name) = self.known.initial_ids.get(&unique) {
            return Err(format!("the initial mount {name} stays where it is"));
        }
        Ok(None)
    }

    fn perform(&self, f: impl FnOnce() -> std::io::Result<()>, why: &str) -> Outcome {
        match f() {
            Ok(()) => Outcome::Done(Ok(0), why.into()),
            Err(e) => Outcome::Done(Err(errno_of(&e)), why.into()),
        }
    }

    fn check_source_not_block(&self, c: &mut Caller, src: &[u8]) -> Result<(), String> {
        if !src.starts_with(b"/") {
            return Ok(());
        }
        if let Ok(f) = self.resolve(c, libc::AT_FDCWD, src, true, false) {
            if let Ok(st) = sysx::statx_fd(f.as_fd()) {
                if st.mode & libc::S_IFMT == libc::S_IFBLK {
                    return Err("block devices are never mounted in containers".into());
                }
            }
        }
        Ok(())
    }

    fn new_mount(
        &mut self,
        c: &mut Caller,
        s: &[Option<Vec<u8>>],
        flags: u64,
        tfd: OwnedFd,
        t: &Stat,
    ) -> Outcome {
        let fstype = match &s[2] {
            Some(t) => String::from_utf8_lossy(t).into_owned(),
            None => return Outcome::Done(Err(libc::EINVAL), "no filesystem type".into()),
        };
        if let Some(src) = &s[0] {
            if let Err(why) = self.check_source_not_block(c, src) {
                return deny(why);
            }
        }
        let kind = match policy::filesystem(&fstype) {
            Ok(k) => k,
            Err(why) => return deny(why),
        };
        // A fresh (masked) proc or sysfs may cover the container's own /proc
        // or /sys (`unshare -pm --mount-proc`): that hides, never reveals.
        let covers_special = matches!(kind, FsKind::Proc | FsKind::Sysfs)
            && t.mount_root
            && self.known.special_roots.contains(&(t.dev, t.ino));
        if !covers_special {
            if let Err(why) = self.target_ok(tfd.as_fd(), t) {
                return deny(why);
            }
        }
        let data = s[3]
            .as_ref()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default();
        let mut opts = policy::split_options(&data);
        match kind {
            FsKind::Proc | FsKind::Sysfs => self.fresh(c, &fstype, opts, flags, tfd),
            FsKind::Overlay => {
                let mut keep = Vec::new();
                for o in opts.iter_mut() {
                    let Some((k, v)) = o.split_once('=') else {
                        continue;
                    };
                    if !policy::overlay_path_key(k) {
                        continue;
                    }
                    let mut names = Vec::new();
                    for layer in policy::split_layers(v) {
                        match self.layer(c, layer.as_bytes()) {
                            Ok(f) => {
                                names.push(f.as_raw_fd().to_string());
                                keep.push(f);
                            }
                            Err(o) => return o,
                        }
                    }
                    *o = format!("{k}={}", names.join(":"));
                }
                self.create(c, &fstype, s[0].as_deref(), &opts, flags, tfd, keep)
            }
            FsKind::Plain => {
                if fstype == "fuse" {
                    let mut keep = Vec::new();
                    for o in opts.iter_mut() {
                        if let Some(v) = o.strip_prefix("fd=") {
                            let Ok(n) = v.parse::<i32>() else {
                                return Outcome::Done(Err(libc::EINVAL), "bad fuse fd".into());
                            };
                            match self.getfd(c, n) {
                                Ok(f) => {
                                    *o = format!("fd={}", f.as_raw_fd());
                                    keep.push(f);
                                }
                                Err(e) => {
                                    return Outcome::Done(Err(errno_of(&e)), "fuse fd".into())
                                }
                            }
                        }
                    }
                    return self.create(c, &fstype, s[0].as_deref(), &opts, flags, tfd, keep);
                }
                self.create(c, &fstype, s[0].as_deref(), &opts, flags, tfd, vec![])
            }
        }
    }

    /// Resolve and check one overlay layer; the fd stands for it from here on.
    fn layer(&self, c: &mut Caller, p: &[u8]) -> Result<OwnedFd, Outcome> {
        let f = self
            .resolve(c, libc::AT_FDCWD, p, true, false)
            .map_err(|e| {
                Outcome::Done(Err(errno_of(&e)), "overlay layer does not resolve".into())
            })?;
        let ty = sysx::fstatfs_type(f.as_fd()).unwrap_or(0);
        let st = sysx::statx_fd(f.as_fd())
            .map_err(|e| Outcome::Error(errno_of(&e), "statx layer".into()))?;
        if ty == sysx::PROC_SUPER_MAGIC
            || ty == sysx::SYSFS_MAGIC
            || self.known.no_mount_devs.contains(&st.dev)
        {
            return Err(deny(
                "an overlay layer on /proc, /sys or a masked path would unmask it",
            ));
        }
        Ok(f)
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        c: &Caller,
        fstype: &str,
        source: Option<&[u8]>,
        opts: &[String],
        flags: u64,
        tfd: OwnedFd,
        // The fds the option strings name (/proc/self/fd/N): alive until created.
        _keep: Vec<OwnedFd>,
    ) -> Outcome {
        match fstype {
            "cgroup2" => {
                if let Err(e) = self.join(c, "cgroup", libc::CLONE_NEWCGROUP) {
                    return Outcome::Error(errno_of(&e), format!("join cgroup ns: {e}"));
                }
            }
            "mqueue" => {
                if let Err(e) = self.join(c, "ipc", libc::CLONE_NEWIPC) {
                    return Outcome::Error(errno_of(&e), format!("join ipc ns: {e}"));
                }
            }
            _ => {}
        }
        let r = (|| -> std::io::Result<u64> {
            let fs = sysx::fsopen(fstype.as_bytes())?;
            let set = |k: &str, v: Option<&[u8]>| -> std::io::Result<()> {
                let key = sysx::cstring(k.as_bytes())?;
                match v {
                    Some(v) => {
                        let val = sysx::cstring(v)?;
                        sysx::fsconfig(
                            fs.as_fd(),
                            sysx::FSCONFIG_SET_STRING,
                            Some(&key),
                            sysx::FsValue::Str(&val),
                            0,
                        )
                    }
                    None => sysx::fsconfig(
                        fs.as_fd(),
                        sysx::FSCONFIG_SET_FLAG,
                        Some(&key),
                        sysx::FsValue::None,
                        0,
                    ),
                }
            };
            // "none" is what the kernel shows for a mount without a source.
            if let Some(src) = source.filter(|s| *s != b"none") {
                set("source", Some(src))?;
            }
            for o in opts {
                match o.split_once('=') {
                    Some((k, v)) => set(k, Some(v.as_bytes()))?,
                    None => set(o, None)?,
                }
            }
            for (m, name) in [
                (policy::MS_RDONLY, "ro"),
                (policy::MS_SYNCHRONOUS, "sync"),
                (policy::MS_DIRSYNC, "dirsync"),
                (policy::MS_LAZYTIME, "lazytime"),
            ] {
                if flags & m != 0 {
                    set(name, None)?;
                }
            }
            sysx::fsconfig(
                fs.as_fd(),
                sysx::FSCONFIG_CMD_CREATE,
                None,
                sysx::FsValue::None,
                0,
            )?;
            let m = sysx::fsmount(fs.as_fd(), 1, policy::attrs_of_ms(flags))?;
            let dev = sysx::statx_fd(m.as_fd())?.dev;
            sysx::move_mount_fds(m.as_fd(), tfd.as_fd(), 0)?;
            Ok(dev)
        })();
        match r {
            Ok(dev) => {
                self.known.created.insert(dev);
                Outcome::Done(
                    Ok(0),
                    format!("new {fstype} created by the guard as the container"),
                )
            }
            Err(e) => Outcome::Done(Err(errno_of(&e)), format!("new {fstype}")),
        }
    }

    /// A fresh proc or sysfs: built by the main guard with the container's
    /// masks, then attached here.
    fn fresh(
        &mut self,
        c: &Caller,
        kind: &str,
        options: Vec<String>,
        flags: u64,
        tfd: OwnedFd,
    ) -> Outcome {
        let req = FromWorker::Fresh {
            kind: kind.into(),
            tid: c.tid,
            options,
        };
        if let Err(e) = self.ctl.send(&req, None) {
            return Outcome::Error(libc::EIO, format!("ask the guard for a masked {kind}: {e}"));
        }
        let (reply, tree) = loop {
            match self.ctl.recv::<ToWorker>() {
                Ok(Some((
                    ToWorker::Fresh {
                        ok,
                        error,
                        submounts,
                    },
                    fd,
                ))) => break ((ok, error, submounts), fd),
                Ok(Some((ToWorker::Listener { pid }, Some(fd)))) => {
                    self.listeners.push((pid, Listener::new(fd)));
                }
                Ok(Some((m, _))) => tracing::debug!("worker: unexpected {m:?} while waiting"),
                Ok(None) | Err(_) => {
                    return Outcome::Error(libc::EIO, "the guard went away".into())
                }
            }
        };
        let (ok, error, submounts) = reply;
        let tree = match (ok, tree) {
            (true, Some(t)) => t,
            _ => {
                return Outcome::Error(
                    libc::EPERM,
                    format!(
                        "could not build a masked {kind}: {}",
                        error.unwrap_or_default()
                    ),
                )
            }
        };
        if !self.valid(c) {
            return Outcome::Error(libc::ESRCH, "the caller went away".into());
        }
        let mut attrs = policy::attrs_of_ms(flags);
        if kind == "sysfs" {
            attrs |= policy::MOUNT_ATTR_RDONLY;
        }
        // The masks and read-only binds are protected (never unmounted,
        // moved or loosened) by unique id and root object, learnt here
        // before the tree is attached; mounting onto any mount of the tree
        // is the container's business (see target_ok). Nothing identified,
        // nothing attached.
        let top = match sysx::statx_fd(tree.as_fd())
            .and_then(|st| Ok((st, sysx::mnt_id_unique(tree.as_fd())?)))
        {
            Ok(t) => t,
            Err(e) => return Outcome::Error(libc::EPERM, format!("fresh {kind}: {e}")),
        };
        let (top_st, top_unique) = top;
        self.known.created.insert(top_st.dev);
        self.known.fresh.insert(top_unique);
        for (rel, dev) in &submounts {
            let name = format!("{rel} of a fresh {kind}");
            match identify_beneath(&tree, rel) {
                Ok((st, unique)) => {
                    self.known.fresh.insert(unique);
                    self.known.protect(unique, st.dev, st.ino, &name);
                }
                // Covered by another mount, or on a dentry another
                // namespace sees (a per-namespace sysctl): every mount of
                // that superblock counts as this one.
                Err(_) => {
                    self.known.protected_devs.insert(*dev);
                    self.known.unidentified.insert(*dev, name);
                }
            }
        }
        let r = (|| -> std::io::Result<()> {
            if attrs != 0 {
                let a = sysx::MountAttr {
                    attr_set: attrs,
                    ..Default::default()
                };
                sysx::mount_setattr_fd(tree.as_fd(), 0, &a)?;
            }
            sysx::move_mount_fds(tree.as_fd(), tfd.as_fd(), 0)
        })();
        match r {
            Ok(()) => Outcome::Done(Ok(0), format!("fresh {kind} with the container's masks")),
            Err(e) => Outcome::Done(Err(errno_of(&e)), format!("attach fresh {kind}")),
        }
    }

    fn umount(&mut self, c: &mut Caller, target: &[u8], flags: i32) -> Outcome {
        const UMOUNT_NOFOLLOW: i32 = 8;
        let follow = flags & UMOUNT_NOFOLLOW == 0;
        // Resolve the parent directory and then the last component, so the
        // call can later name the mount as "<parent fd>/<name>" without
        // holding an fd on it (which would make it busy).
        let mut named: Option<(OwnedFd, Vec<u8>)> = None;
        let tfd = match split_last(target) {
            Some((dir, last)) => {
                let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
                let parent = match self.resolve(c, libc::AT_FDCWD, dir, true, false) {
                    Ok(p) => p,
                    Err(e) => {
                        return Outcome::Done(Err(errno_of(&e)), "target does not resolve".into())
                    }
                };
                let t = match sysx::open_path(parent.as_raw_fd(), last, false) {
                    Ok(t) => t,
                    Err(e) => {
                        return Outcome::Done(Err(errno_of(&e)), "target does not resolve".into())
                    }
                };
                let link = sysx::statx_fd(t.as_fd())
                    .map(|s| s.mode & libc::S_IFMT == libc::S_IFLNK)
                    .unwrap_or(false);
                if follow && link {
                    // A followed symlink puts the mount elsewhere: name it as below.
                    match sysx::open_path(parent.as_raw_fd(), last, true) {
                        Ok(t) => t,
                        Err(e) => {
                            return Outcome::Done(
                                Err(errno_of(&e)),
                                "target does not resolve".into(),
                            )
                        }
                    }
                } else {
                    named = Some((parent, last.to_vec()));
                    t
                }
            }
            None => match self.resolve(c, libc::AT_FDCWD, target, follow, false) {
                Ok(f) => f,
                Err(e) => {
                    return Outcome::Done(Err(errno_of(&e)), "target does not resolve".into())
                }
            },
        };
        let st = match sysx::statx_fd(tfd.as_fd()) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(errno_of(&e), format!("statx: {e}")),
        };
        // The kernel takes the topmost mount stacked on the final object; an
        // O_PATH open already did for a named last component, not for ".",
        // ".." or "/".
        let last = target.rsplit(|b| *b == b'/').find(|p| !p.is_empty());
        let dots = matches!(last, None | Some(b".") | Some(b".."));
        let fast = !dots && self.known.is_own(st.dev);
        let mut target_id = st.mnt_id;
        let mut entry = None;
        if !fast {
            let info = match self.mountinfo(c) {
                Ok(i) => i,
                Err(e) => return Outcome::Error(errno_of(&e), format!("mountinfo: {e}")),
            };
            if dots && st.mount_root {
                while let Some(top) = info.iter().find(|e| {
                    e.parent == target_id
                        && e.id != target_id
                        && info
                            .iter()
                            .any(|p| p.id == target_id && p.mountpoint == e.mountpoint)
                }) {
                    target_id = top.id;
                }
            }
            entry = info.into_iter().find(|e| e.id == target_id);
        }
        if !st.mount_root {
            // Not a mount: the kernel says EINVAL (nothing to vet).
            return self.perform(
                || sysx::umount_by_fd(tfd.as_raw_fd(), flags),
                "not a mount point",
            );
        }
        if Some(target_id) == self.root_mnt(c) {
            return deny("umount of the container's root (/) is refused");
        }
        if !fast {
            // By the mount's objects, not by the caller's mountinfo (which
            // omits every mount outside its root).
            let m = if target_id == st.mnt_id {
                match mount_ref(tfd.as_fd(), &st) {
                    Ok(m) => m,
                    Err(why) => return Outcome::Error(libc::EPERM, why),
                }
            } else {
                // Stacked on what we hold, known from mountinfo only.
                MountRef {
                    unique: None,
                    dev: entry.as_ref().map_or(st.dev, |e| e.dev),
                    root_ino: None,
                }
            };
            if let Some(name) = self.known.protected_name(&m) {
                return deny(format!(
                    "umount of {name} (/proc, /sys or a masked or read-only path) is refused"
                ));
            }
        }
        let why = "umount of a mount the container may remove";
        if let Some((parent, name)) = named {
            drop(tfd);
            let mut path = parent.as_raw_fd().to_string().into_bytes();
            path.push(b'/');
            path.extend_from_slice(&name);
            return self.perform(|| sysx::umount_path(&path, flags | UMOUNT_NOFOLLOW), why);
        }
        if target_id != st.mnt_id {
            // The target is stacked on what we hold: our fd does not pin it.
            return self.perform(|| sysx::umount_by_fd(tfd.as_raw_fd(), flags), why);
        }
        // Our fd would pin the target (EBUSY): name it through its parent
        // directory instead. The mountpoint's name cannot change under us in
        // this namespace (the kernel refuses to rename a local mountpoint),
        // and UMOUNT_NOFOLLOW keeps the last step from following a symlink.
        let name = match readlink_fd(self.fd_dir.as_fd(), tfd.as_raw_fd()) {
            Some(p) => p,
            None => return self.perform(|| sysx::umount_by_fd(tfd.as_raw_fd(), flags), why),
        };
        let base = match name.rsplit(|b| *b == b'/').next() {
            Some(b) if !b.is_empty() => b.to_vec(),
            _ => return self.perform(|| sysx::umount_by_fd(tfd.as_raw_fd(), flags), why),
        };
        let parent = match sysx::open_path(tfd.as_raw_fd(), b"..", false) {
            Ok(p) => p,
            Err(e) => return Outcome::Error(errno_of(&e), format!("parent: {e}")),
        };
        drop(tfd);
        let mut path = parent.as_raw_fd().to_string().into_bytes();
        path.push(b'/');
        path.extend_from_slice(&base);
        self.perform(|| sysx::umount_path(&path, flags | UMOUNT_NOFOLLOW), why)
    }

    fn fsopen(&mut self, c: &Caller, fstype: &[u8], flags: u32) -> Outcome {
        let t = String::from_utf8_lossy(fstype).into_owned();
        match policy::filesystem(&t) {
            Ok(FsKind::Proc) | Ok(FsKind::Sysfs) => {
                return deny("fresh proc and sysfs are built masked through mount(2) only")
            }
            Ok(_) => {}
            Err(why) => return deny(why),
        }
        let ns = match t.as_str() {
            "cgroup2" => self.join(c, "cgroup", libc::CLONE_NEWCGROUP),
            "mqueue" => self.join(c, "ipc", libc::CLONE_NEWIPC),
            _ => Ok(()),
        };
        if let Err(e) = ns {
            return Outcome::Error(errno_of(&e), format!("join namespace: {e}"));
        }
        match sysx::fsopen(fstype) {
            Ok(fd) => Outcome::Fd(fd, flags & 1 != 0, format!("fsopen of {t} (allow-listed)")),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "fsopen".into()),
        }
    }

    fn fsconfig(
        &mut self,
        c: &mut Caller,
        fd: i32,
        cmd: u32,
        key: &Option<Vec<u8>>,
        val: &Option<Vec<u8>>,
        aux: i32,
    ) -> Outcome {
        let ctx = match self.getfd(c, fd) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "not an fd of the caller".into()),
        };
        let k = key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        let ckey = match key.as_deref().map(sysx::cstring).transpose() {
            Ok(k) => k,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "key".into()),
        };
        let mut keep: Vec<OwnedFd> = Vec::new();
        let r: std::io::Result<()> = match cmd {
            sysx::FSCONFIG_SET_FLAG
            | sysx::FSCONFIG_CMD_CREATE
            | sysx::FSCONFIG_CMD_CREATE_EXCL
            | sysx::FSCONFIG_CMD_RECONFIGURE => {
                sysx::fsconfig(ctx.as_fd(), cmd, ckey.as_ref(), sysx::FsValue::None, 0)
            }
            sysx::FSCONFIG_SET_STRING => {
                let v = val.clone().unwrap_or_default();
                let mut value = v.clone();
                let kk = k.clone().unwrap_or_default();
                if policy::overlay_path_key(&kk) {
                    let mut names = Vec::new();
                    for layer in policy::split_layers(&String::from_utf8_lossy(&v)) {
                        match self.layer(c, layer.as_bytes()) {
                            Ok(f) => {
                                names.push(f.as_raw_fd().to_string());
                                keep.push(f);
                            }
                            Err(o) => return o,
                        }
                    }
                    value = names.join(":").into_bytes();
                } else if kk == "source" {
                    if let Err(why) = self.check_source_not_block(c, &v) {
                        return deny(why);
                    }
                } else if kk == "fd" {
                    let n = String::from_utf8_lossy(&v).parse::<i32>().unwrap_or(-1);
                    match self.getfd(c, n) {
                        Ok(f) => {
                            value = f.as_raw_fd().to_string().into_bytes();
                            keep.push(f);
                        }
                        Err(e) => return Outcome::Done(Err(errno_of(&e)), "fd".into()),
                    }
                }
                match sysx::cstring(&value) {
                    Ok(cv) => {
                        sysx::fsconfig(ctx.as_fd(), cmd, ckey.as_ref(), sysx::FsValue::Str(&cv), 0)
                    }
                    Err(e) => Err(e),
                }
            }
            sysx::FSCONFIG_SET_BINARY => {
                let v = val.clone().unwrap_or_default();
                sysx::fsconfig(ctx.as_fd(), cmd, ckey.as_ref(), sysx::FsValue::Bytes(&v), 0)
            }
            sysx::FSCONFIG_SET_PATH | sysx::FSCONFIG_SET_PATH_EMPTY | sysx::FSCONFIG_SET_FD => {
                let obj = if cmd == sysx::FSCONFIG_SET_FD {
                    self.getfd(c, aux)
                } else {
                    let p = val.clone().unwrap_or_default();
                    self.resolve(c, aux, &p, true, cmd == sysx::FSCONFIG_SET_PATH_EMPTY)
                };
                let obj = match obj {
                    Ok(o) => o,
                    Err(e) => {
                        return Outcome::Done(
                            Err(errno_of(&e)),
                            "path or fd does not resolve".into(),
                        )
                    }
                };
                let ty = sysx::fstatfs_type(obj.as_fd()).unwrap_or(0);
                let st = sysx::statx_fd(obj.as_fd()).ok();
                if ty == sysx::PROC_SUPER_MAGIC
                    || ty == sysx::SYSFS_MAGIC
                    || st
                        .as_ref()
                        .is_some_and(|s| self.known.no_mount_devs.contains(&s.dev))
                {
                    return deny(
                        "a filesystem built from /proc, /sys or a masked path would unmask it",
                    );
                }
                if st
                    .as_ref()
                    .is_some_and(|s| s.mode & libc::S_IFMT == libc::S_IFBLK)
                {
                    return deny("block devices are never mounted in containers");
                }
                let empty = std::ffi::CString::default();
                if cmd == sysx::FSCONFIG_SET_FD {
                    sysx::fsconfig(
                        ctx.as_fd(),
                        cmd,
                        ckey.as_ref(),
                        sysx::FsValue::None,
                        obj.as_raw_fd(),
                    )
                } else {
                    sysx::fsconfig(
                        ctx.as_fd(),
                        sysx::FSCONFIG_SET_PATH_EMPTY,
                        ckey.as_ref(),
                        sysx::FsValue::Str(&empty),
                        obj.as_raw_fd(),
                    )
                }
            }
            _ => Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        };
        drop(keep);
        match r {
            Ok(()) => Outcome::Done(Ok(0), "fsconfig on a context the guard created".into()),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "fsconfig".into()),
        }
    }

    /// fsmount(2) returns an O_PATH mount fd, which SECCOMP_IOCTL_NOTIF_ADDFD
    /// cannot install (the kernel's fget() skips O_PATH files), so the caller
    /// makes the call itself. That is no TOCTOU hole: fsmount has no pointer
    /// argument to rewrite, and every filesystem context in a container was
    /// made by the guard (fsopen and fspick are performed here), so whatever
    /// fd number the caller names, the superblock is one the guard vetted.
    fn fsmount(&mut self, c: &mut Caller, fd: i32) -> Outcome {
        if let Err(e) = self.getfd(c, fd) {
            return Outcome::Done(Err(errno_of(&e)), "not an fd of the caller".into());
        }
        Outcome::Continue("fsmount of a context the guard created (no pointer argument)".into())
    }

    fn move_mount(
        &mut self,
        c: &mut Caller,
        fdir: i32,
        fpath: &[u8],
        tdir: i32,
        tpath: &[u8],
        flags: u32,
    ) -> Outcome {
        const F_SYMLINKS: u32 = 1;
        const F_EMPTY: u32 = 4;
        const T_SYMLINKS: u32 = 0x10;
        const T_EMPTY: u32 = 0x40;
        let from = match self.resolve(
            c,
            fdir,
            fpath,
            flags & F_SYMLINKS != 0,
            flags & F_EMPTY != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "source does not resolve".into()),
        };
        let to = match self.resolve(
            c,
            tdir,
            tpath,
            flags & T_SYMLINKS != 0,
            flags & T_EMPTY != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "target does not resolve".into()),
        };
        let detached = match self.movable(from.as_fd()) {
            Ok(d) => d,
            Err(why) => return deny(why),
        };
        let t = match sysx::statx_fd(to.as_fd()) {
            Ok(t) => t,
            Err(e) => return Outcome::Error(errno_of(&e), "statx".into()),
        };
        if let Err(why) = self.target_ok(to.as_fd(), &t) {
            return deny(why);
        }
        match sysx::move_mount_fds(from.as_fd(), to.as_fd(), flags & sysx::MOVE_MOUNT_BENEATH) {
            Ok(()) => {
                // A detached mount of a superblock neither initial nor a
                // mask is the caller's own fsmount (the guard did not see it
                // created: fsmount runs as the caller).
                if let Some(dev) = detached {
                    if !self.known.initial_devs.contains(&dev)
                        && !self.known.no_mount_devs.contains(&dev)
                    {
                        self.known.created.insert(dev);
                    }
                }
                Outcome::Done(Ok(0), "move_mount within the container".into())
            }
            Err(e) => Outcome::Done(Err(errno_of(&e)), "move_mount".into()),
        }
    }

    /// open_tree(2) also returns an O_PATH fd ADDFD cannot install, so the
    /// caller makes the call itself after the guard looked at what it names.
    /// The guard has no open_tree rule stricter than the kernel's: a clone
    /// keeps every lock (read-only stays locked read-only, masks stay locked
    /// children, a non-recursive clone over locked children is refused), and
    /// what the clone is used for next (mount_setattr, move_mount) is vetted.
    /// So a path rewritten after the check gains nothing.
    fn open_tree(&mut self, c: &mut Caller, dir: i32, path: &[u8], flags: u32) -> Outcome {
        const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
        const AT_EMPTY_PATH: u32 = 0x1000;
        let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
        if let Err(e) = self.resolve(c, dir, path, follow, flags & AT_EMPTY_PATH != 0) {
            return Outcome::Done(Err(errno_of(&e)), "path does not resolve".into());
        }
        Outcome::Continue(
            "open_tree (a clone keeps the kernel's locks; its uses are vetted)".into(),
        )
    }

    fn mount_setattr(
        &mut self,
        c: &mut Caller,
        dir: i32,
        path: &[u8],
        flags: u32,
        attr: Option<&[u8]>,
    ) -> Outcome {
        const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
        const AT_EMPTY_PATH: u32 = 0x1000;
        let Some(raw) = attr else {
            return Outcome::Done(Err(libc::EINVAL), "no mount_attr".into());
        };
        let word =
            |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let mut at = sysx::MountAttr {
            attr_set: word(0),
            attr_clr: word(1),
            propagation: word(2),
            userns_fd: word(3),
        };
        let f = match self.resolve(
            c,
            dir,
            path,
            flags & AT_SYMLINK_NOFOLLOW == 0,
            flags & AT_EMPTY_PATH != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "path does not resolve".into()),
        };
        let st = match sysx::statx_fd(f.as_fd()) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(errno_of(&e), "statx".into()),
        };
        let flag_bits = policy::MOUNT_ATTR_RDONLY
            | policy::MOUNT_ATTR_NOSUID
            | policy::MOUNT_ATTR_NODEV
            | policy::MOUNT_ATTR_NOEXEC;
        if (at.attr_set | at.attr_clr) & flag_bits != 0 {
            let info = match self.mountinfo(c) {
                Ok(i) => i,
                Err(e) => return Outcome::Error(errno_of(&e), format!("mountinfo: {e}")),
            };
            let mut ids = vec![st.mnt_id];
            if flags & sysx::AT_RECURSIVE != 0 {
                let mut i = 0;
                while i < ids.len() {
                    let p = ids[i];
                    ids.extend(
                        info.iter()
                            .filter(|e| e.parent == p && e.id != p)
                            .map(|e| e.id),
                    );
                    i += 1;
                }
            }
            let target = match mount_ref(f.as_fd(), &st) {
                Ok(m) => m,
                Err(why) => return Outcome::Error(libc::EPERM, why),
            };
            for id in ids {
                let e = info.iter().find(|e| e.id == id);
                // The submounts of a recursive change are known from
                // mountinfo only (no fd on them).
                let (m, now) = match e {
                    Some(e) if id != st.mnt_id => (
                        MountRef {
                            unique: None,
                            dev: e.dev,
                            root_ino: None,
                        },
                        e.flags,
                    ),
                    Some(e) => (target, e.flags),
                    None => (target, flags_now(f.as_fd())),
                };
                let new = policy::apply_attrs(now, at.attr_set, at.attr_clr);
                if let Some(why) = self.known.flag_change(&m, e, new) {
                    return deny(why);
                }
            }
        }
        let _ns;
        if at.attr_set & policy::MOUNT_ATTR_IDMAP != 0 {
            match self.getfd(c, at.userns_fd as i32) {
                Ok(u) => {
                    at.userns_fd = u.as_raw_fd() as u64;
                    _ns = Some(u);
                }
                Err(e) => return Outcome::Done(Err(errno_of(&e)), "userns fd".into()),
            }
        }
        match sysx::mount_setattr_fd(f.as_fd(), flags & sysx::AT_RECURSIVE, &at) {
            Ok(()) => Outcome::Done(Ok(0), "mount_setattr allowed".into()),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "mount_setattr".into()),
        }
    }

    fn fspick(&mut self, c: &mut Caller, dir: i32, path: &[u8], flags: u32) -> Outcome {
        const FSPICK_SYMLINK_NOFOLLOW: u32 = 2;
        const FSPICK_EMPTY_PATH: u32 = 8;
        let f = match self.resolve(
            c,
            dir,
            path,
            flags & FSPICK_SYMLINK_NOFOLLOW == 0,
            flags & FSPICK_EMPTY_PATH != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "path does not resolve".into()),
        };
        let st = match sysx::statx_fd(f.as_fd()) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(errno_of(&e), "statx".into()),
        };
        if !self.known.is_own(st.dev) || self.known.no_mount_devs.contains(&st.dev) {
            return deny("reconfiguring a filesystem the container did not create is refused");
        }
        match sysx::fspick_fd(f.as_fd(), flags & 4) {
            Ok(p) => Outcome::Fd(
                p,
                flags & 1 != 0,
                "fspick of a filesystem the container created".into(),
            ),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "fspick".into()),
        }
    }
}

/// The identity (unique id, root inode) of each mountinfo entry reachable
/// at its mountpoint under `root` (the process's root directory the
/// entries were read for). A mount covered by another is not reachable and
/// gets none; the path is only a way to the object, which must then be the
/// root of the very mount the entry names.
fn identify(root: &OwnedFd, entries: &[Entry]) -> HashMap<u64, Ident> {
    let mut out = HashMap::new();
    for e in entries {
        let rel = e.mountpoint.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let Ok(fd) = crate::sys::openat2(
            root.as_raw_fd(),
            std::path::Path::new(rel),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            crate::sys::RESOLVE_IN_ROOT
                | crate::sys::RESOLVE_NO_SYMLINKS
                | crate::sys::RESOLVE_NO_MAGICLINKS,
        ) else {
            continue;
        };
        let Ok(st) = sysx::statx_fd(fd.as_fd()) else {
            continue;
        };
        if st.mnt_id != e.id || !st.mount_root {
            continue;
        }
        if let Ok(unique) = sysx::mnt_id_unique(fd.as_fd()) {
            out.insert(e.id, (unique, st.ino));
        }
    }
    out
}

/// statx and unique id of the mount at `rel` beneath the tree `top`, which
/// must be the root of a mount there.
fn identify_beneath(top: &OwnedFd, rel: &str) -> std::io::Result<(Stat, u64)> {
    let fd = crate::sys::openat2(
        top.as_raw_fd(),
        std::path::Path::new(rel.trim_start_matches('/')),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        crate::sys::RESOLVE_BENEATH
            | crate::sys::RESOLVE_NO_SYMLINKS
            | crate::sys::RESOLVE_NO_MAGICLINKS,
    )?;
    let st = sysx::statx_fd(fd.as_fd())?;
    if !st.mount_root {
        return Err(std::io::Error::other("not the root of a mount"));
    }
    Ok((st, sysx::mnt_id_unique(fd.as_fd())?))
}

/// The mount `fd` is on, by its objects (`st` is the fd's statx).
fn mount_ref(fd: BorrowedFd<'_>, st: &Stat) -> Result<MountRef, String> {
    let unique = sysx::mnt_id_unique(fd).map_err(|e| format!("unique mount id: {e}"))?;
    Ok(MountRef {
        unique: Some(unique),
        dev: st.dev,
        root_ino: st.mount_root.then_some(st.ino),
    })
}

/// tmpfs shows its uid=/gid= in the VM's ids (the kernel prints them in the
/// initial user namespace), so a remount that restates /proc/mounts (busybox
/// does) would hand them back unparseable in the container's namespace:
/// map ids of the container's own range back to its view.
fn translate_ids(data: &str, start: u32) -> String {
    policy::split_options(data)
        .into_iter()
        .map(|o| match o.split_once('=') {
            Some((k @ ("uid" | "gid"), v)) => match v.parse::<u32>() {
                Ok(n) if n >= start && n - start < hull_guard_proto::idrange::RANGE_LEN => {
                    format!("{k}={}", n - start)
                }
                _ => o,
            },
            _ => o,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// (directory part, last component) of a path whose last component is a
/// plain name; None for "/", ".", ".." endings and the caller's own
/// /proc/self paths (resolved through its fds instead).
fn split_last(p: &[u8]) -> Option<(&[u8], &[u8])> {
    if p.starts_with(b"/proc/self/") || p.starts_with(b"/proc/thread-self/") {
        return None;
    }
    let trimmed = {
        let mut e = p.len();
        while e > 1 && p[e - 1] == b'/' {
            e -= 1;
        }
        &p[..e]
    };
    let (dir, last) = match trimmed.iter().rposition(|b| *b == b'/') {
        Some(i) => (&trimmed[..i.max(1)], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    if last.is_empty() || last == b"." || last == b".." {
        return None;
    }
    // "/x" has "/" as its directory.
    let dir = if trimmed.first() == Some(&b'/') && dir.is_empty() {
        &b"/"[..]
    } else {
        dir
    };
    Some((dir, last))
}

/// The path of our fd `fd` as the kernel names it (relative to our root).
fn readlink_fd(fd_dir: BorrowedFd<'_>, fd: i32) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = nix::fcntl::readlinkat(Some(fd_dir.as_raw_fd()), fd.to_string().as_str()).ok()?;
    let b = p.as_bytes().to_vec();
    (b.starts_with(b"/") && !b.ends_with(b" (deleted)")).then_some(b)
}

fn flags_now(fd: BorrowedFd<'_>) -> Flags {
    match nix::sys::statvfs::fstatvfs(fd) {
        Ok(s) => {
            use nix::sys::statvfs::FsFlags;
            let f = s.flags();
            Flags {
                rdonly: f.contains(FsFlags::ST_RDONLY),
                nosuid: f.contains(FsFlags::ST_NOSUID),
                nodev: f.contains(FsFlags::ST_NODEV),
                noexec: f.contains(FsFlags::ST_NOEXEC),
            }
        }
        Err(_) => Flags::default(),
    }
}

/// The arguments as the audit log shows them.
fn describe(nr: i32, a: &[u64; 6], s: &[Option<Vec<u8>>]) -> serde_json::Value {
    match nr {
        NR_MOUNT => json!({"source": lossy(&s[0]), "target": lossy(&s[1]), "fstype": lossy(&s[2]),
                            "flags": format!("{:#x}", a[3]), "data": lossy(&s[3])}),
        NR_UMOUNT2 => json!({"target": lossy(&s[0]), "flags": a[1]}),
        NR_FSOPEN => json!({"fstype": lossy(&s[0]), "flags": a[1]}),
        NR_FSCONFIG => json!({"fd": a[0] as i32, "cmd": a[1], "key": lossy(&s[0]),
                              "value": if a[1] == 2 { serde_json::Value::Null } else { lossy(&s[1]) }, "aux": a[4] as i32}),
        NR_FSMOUNT => json!({"fd": a[0] as i32, "flags": a[1], "attrs": format!("{:#x}", a[2])}),
        NR_MOVE_MOUNT => {
            json!({"from_dfd": a[0] as i32, "from": lossy(&s[0]), "to_dfd": a[2] as i32,
                                "to": lossy(&s[1]), "flags": format!("{:#x}", a[4])})
        }
        NR_OPEN_TREE | NR_FSPICK => {
            json!({"dfd": a[0] as i32, "path": lossy(&s[0]), "flags": format!("{:#x}", a[2])})
        }
        NR_MOUNT_SETATTR => {
            let attr = s.get(1).and_then(|v| v.as_ref()).map(|raw| {
                let w = |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                json!({"set": format!("{:#x}", w(0)), "clr": format!("{:#x}", w(1)), "propagation": format!("{:#x}", w(2))})
            });
            json!({"dfd": a[0] as i32, "path": lossy(&s[0]), "flags": format!("{:#x}", a[2]), "attr": attr})
        }
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::{split_last, translate_ids, AuditBudget};

    #[test]
    fn a_flooding_container_is_summarised_not_written() {
        let mut b = AuditBudget::new();
        assert!((0..10_000).all(|_| b.take("allow")));
        let refused = (0..100).filter(|_| !b.take("deny")).count();
        assert!(refused >= 90, "{refused}");
        let s = b.summary("c1", true).unwrap();
        assert!(s.contains("\"suppressed\"") && s.contains("\"c1\""), "{s}");
        assert!(b.summary("c1", true).is_none());
    }

    #[test]
    fn remount_ids_come_back_to_the_containers_view() {
        assert_eq!(
            translate_ids("size=1m,uid=100000,gid=100005", 100_000),
            "size=1m,uid=0,gid=5"
        );
        assert_eq!(translate_ids("uid=5", 100_000), "uid=5");
    }

    #[test]
    fn last_components_split_like_the_kernel_walks() {
        assert_eq!(split_last(b"/tmp/m"), Some((&b"/tmp"[..], &b"m"[..])));
        assert_eq!(split_last(b"/m/"), Some((&b"/"[..], &b"m"[..])));
        assert_eq!(split_last(b"m"), Some((&b""[..], &b"m"[..])));
        assert_eq!(split_last(b"a/b"), Some((&b"a"[..], &b"b"[..])));
        assert_eq!(split_last(b"/"), None);
        assert_eq!(split_last(b"."), None);
        assert_eq!(split_last(b"/x/.."), None);
        assert_eq!(split_last(b"/proc/self/fd/7"), None);
    }
}
