//! The guard's main process: the root-only socket, one worker per container,
//! the audit log, the id-range service, and the builders of fresh proc/sysfs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;

use super::audit::{now_rfc3339, AuditLog};
use super::control::{self, Control, FromWorker, ToWorker};
use super::procfs;
use hull_guard_proto::idrange::Allocator;
use hull_guard_proto::{
    ContainerIdentity, MountRole, ProcessKind, Request, Response, PROTOCOL_VERSION,
};

#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub audit_log: PathBuf,
    pub audit_max_bytes: u64,
    pub idranges_dir: PathBuf,
    pub idranges_max: usize,
    /// Where the procfs/sysfs emulation (FUSE) is mounted; None: off.
    pub procfs: Option<PathBuf>,
}

struct WorkerHandle {
    ctl: Arc<Control>,
    pid: i32,
    container: ContainerIdentity,
}

struct Shared {
    cfg: Config,
    exe: PathBuf,
    workers: Mutex<HashMap<String, WorkerHandle>>,
    audit: Mutex<AuditLog>,
    procfs: Option<procfs::Client>,
    /// A worker started ahead of need: starting one (fork + exec) is the
    /// biggest part of a registration under emulation, so a create finds
    /// one waiting and the next is started in the background.
    spare: Mutex<Option<(Child, Control)>>,
}

impl Shared {
    fn audit(&self, v: serde_json::Value) {
        if let Ok(mut a) = self.audit.lock() {
            a.write_line(&v.to_string());
        }
    }
}

fn ensure_dir(p: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

pub fn serve(cfg: Config) -> anyhow::Result<()> {
    ensure_dir(&cfg.state_dir, 0o700)?;
    if let Some(d) = cfg.socket.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)?;
    }
    let audit = AuditLog::open(&cfg.audit_log, cfg.audit_max_bytes)?;
    let alloc = Allocator::new(&cfg.idranges_dir, cfg.idranges_max);
    match alloc.reconcile_now() {
        Ok(n) => tracing::info!(
            dropped = n,
            "id ranges reconciled with the containers that exist"
        ),
        Err(e) => tracing::warn!("id ranges: {e}"),
    }
    let exe = std::fs::read_link("/proc/self/exe")?;
    // Without the emulation, containers read the VM's uptime and knobs (their
    // writes still never reach the kernel: those files are the VM root's).
    // Mount vetting matters more than that: run on, loudly.
    let procfs = match &cfg.procfs {
        Some(p) => match procfs::Client::ensure(&exe, p, &cfg.state_dir.join("procfs.sock")) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("procfs emulation unavailable ({e:#}); running without it");
                None
            }
        },
        None => None,
    };
    let shared = Arc::new(Shared {
        exe,
        cfg: cfg.clone(),
        workers: Mutex::new(HashMap::new()),
        audit: Mutex::new(audit),
        procfs,
        spare: Mutex::new(None),
    });
    refill_spare(&shared);
    if let Ok(m) = std::fs::symlink_metadata(&cfg.socket) {
        if m.file_type().is_socket() {
            std::fs::remove_file(&cfg.socket)?;
        } else {
            anyhow::bail!("{} exists and is not a socket", cfg.socket.display());
        }
    }
    // Why umask: the socket must never be connectable by anyone but root,
    // not even between bind and chmod.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&cfg.socket);
    nix::sys::stat::umask(old);
    let listener = listener?;
    std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %cfg.socket.display(), "hull-guard ready");
    shared.audit(json!({"ts": now_rfc3339(), "event": "start", "pid": std::process::id()}));
    // One thread per connection: the runtime connects early in `create`
    // (to fail closed before any work) and sends its request later.
    for conn in listener.incoming() {
        match conn {
            Ok(c) => {
                let sh = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || {
                        if let Err(e) = handle(&sh, c) {
                            tracing::warn!("request: {e}");
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("thread: {e}");
                }
            }
            Err(e) => tracing::warn!("accept: {e}"),
        }
    }
    Ok(())
}

fn read_request(c: &UnixStream) -> std::io::Result<(Request, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let m = recvmsg::<()>(
        c.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fd = None;
    if let Ok(cm) = m.cmsgs() {
        for x in cm {
            if let ControlMessageOwned::ScmRights(fds) = x {
                for f in fds {
                    // SAFETY: the kernel installed this fd for us just now.
                    let o = unsafe { OwnedFd::from_raw_fd(f) };
                    if fd.is_none() {
                        fd = Some(o);
                    }
                }
            }
        }
    }
    let n = m.bytes;
    let mut line = buf[..n].to_vec();
    if !line.contains(&b'\n') && n > 0 {
        let mut r = BufReader::new(c);
        let mut rest = Vec::new();
        r.read_until(b'\n', &mut rest)?;
        line.extend(rest);
    }
    let req = serde_json::from_slice(trim(&line))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((req, fd))
}

fn trim(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && b[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    &b[..e]
}

fn handle(shared: &Arc<Shared>, c: UnixStream) -> anyhow::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(600)))?;
    let cred = nix::sys::socket::getsockopt(&c, nix::sys::socket::sockopt::PeerCredentials)?;
    let resp = if cred.uid() != 0 {
        Response {
            ok: false,
            error: Some("hull-guard serves root only".into()),
            range: None,
        }
    } else {
        match read_request(&c) {
            Ok((req, fd)) => dispatch(shared, req, fd),
            Err(e) => Response {
                ok: false,
                error: Some(format!("bad request: {e}")),
                range: None,
            },
        }
    };
    let mut line = serde_json::to_vec(&resp)?;
    line.push(b'\n');
    (&c).write_all(&line)?;
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> Response {
    Response {
        ok: false,
        error: Some(e.to_string()),
        range: None,
    }
}

fn ok() -> Response {
    Response {
        ok: true,
        error: None,
        range: None,
    }
}

fn version_ok(v: u32) -> Result<(), Response> {
    if v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(fail(format!(
            "protocol version {v} (hull-guard speaks {PROTOCOL_VERSION})"
        )))
    }
}

fn dispatch(shared: &Arc<Shared>, req: Request, fd: Option<OwnedFd>) -> Response {
    match req {
        Request::Register { version, container } => {
            if let Err(r) = version_ok(version) {
                return r;
            }
            let Some(fd) = fd else {
                if container.kind == ProcessKind::Init {
                    record(shared, &container);
                }
                return ok();
            };
            if !is_listener(&fd) {
                return fail("the fd sent is not a seccomp notify listener");
            }
            match register(shared, container.clone(), fd) {
                Ok(()) => {
                    shared.audit(
                        json!({"ts": now_rfc3339(), "event": "register", "container": container.id,
                                        "pid": container.pid, "kind": container.kind}),
                    );
                    ok()
                }
                Err(e) => {
                    shared.audit(json!({"ts": now_rfc3339(), "event": "register-failed", "container": container.id,
                                        "error": e.to_string()}));
                    fail(e)
                }
            }
        }
        Request::Unregister { version, id, .. } => {
            if let Err(r) = version_ok(version) {
                return r;
            }
            let w = shared.workers.lock().ok().and_then(|mut m| m.remove(&id));
            if let Some(w) = w {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(w.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if let Some(p) = &shared.procfs {
                let _ = p.send(&procfs::Msg::Remove { id: id.clone() });
            }
            let _ = std::fs::remove_file(identity_path(shared, &id));
            shared.audit(json!({"ts": now_rfc3339(), "event": "unregister", "container": id}));
            ok()
        }
        Request::AllocateRange { version, owner } => {
            if let Err(r) = version_ok(version) {
                return r;
            }
            match Allocator::new(&shared.cfg.idranges_dir, shared.cfg.idranges_max).allocate(&owner)
            {
                Ok(r) => Response {
                    ok: true,
                    error: None,
                    range: Some(r),
                },
                Err(e) => fail(e),
            }
        }
        Request::ReleaseRange { version, owner } => {
            if let Err(r) = version_ok(version) {
                return r;
            }
            match Allocator::new(&shared.cfg.idranges_dir, shared.cfg.idranges_max).release(&owner)
            {
                Ok(()) => ok(),
                Err(e) => fail(e),
            }
        }
    }
}

fn is_listener(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|l| l.to_string_lossy().contains("seccomp notify"))
        .unwrap_or(false)
}

/// Where the identity of each registered container is kept, so that a
/// restarted guard vetting an exec'd process of an older container still
/// knows its masks (exec registrations carry no mount list).
fn identity_path(shared: &Shared, id: &str) -> PathBuf {
    shared
        .cfg
        .state_dir
        .join("containers")
        .join(format!("{id}.json"))
}

/// Tell the procfs server about a new container (its own /proc/uptime, knobs).
fn record(shared: &Shared, c: &ContainerIdentity) {
    if let Some(p) = &shared.procfs {
        let m = procfs::Msg::Add {
            id: c.id.clone(),
            range: c.uid_range,
            init_pid: c.pid,
            privileged: c.privileged,
        };
        if let Err(e) = p.send(&m) {
            tracing::warn!("procfs server: {e}; the container reads the VM's values");
        }
    }
}

/// Save an init's identity for later registrations of its container (a
/// restarted guard serving an exec'd process). Written whole or not at all
/// (temporary file, then rename), so a crash never leaves half an identity.
fn save_identity(path: &Path, c: &ContainerIdentity) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("identity path {} has no parent", path.display()))?;
    ensure_dir(dir, 0o700).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let j = serde_json::to_vec(c)?;
    std::fs::write(&tmp, j).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot rename {} into place: {e}", tmp.display()))
}

/// The saved identity of container `id`, or why there is none usable.
fn load_identity(path: &Path, id: &str) -> Result<ContainerIdentity, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let prev: ContainerIdentity =
        serde_json::from_slice(&b).map_err(|e| format!("{} is corrupt: {e}", path.display()))?;
    if prev.id != id {
        return Err(format!(
            "{} names container {:?}, not {id:?}",
            path.display(),
            prev.id
        ));
    }
    Ok(prev)
}

fn register(shared: &Arc<Shared>, mut c: ContainerIdentity, fd: OwnedFd) -> anyhow::Result<()> {
    let saved = identity_path(shared, &c.id);
    // Why a worker may have to refuse everything: a later process of a
    // container (exec) registers without its mount list, and a new worker
    // takes the masks from the saved identity. Without it the guard would
    // not know what to protect: an empty set would let every mask go and
    // build fresh proc without masks. So all mount calls are refused.
    let mut refuse_all = None;
    if c.kind == ProcessKind::Init {
        save_identity(&saved, &c)?;
    } else if c.mounts.is_empty() {
        match load_identity(&saved, &c.id) {
            Ok(prev) => c.mounts = prev.mounts,
            Err(why) => {
                tracing::error!(container = %c.id, "saved identity unusable: {why}");
                refuse_all = Some(format!(
                    "the guard's saved identity of this container is missing or corrupt ({why}): its protected mounts are unknown, every mount call is refused"
                ));
            }
        }
    }
    let existing = shared
        .workers
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .get(&c.id)
        .map(|w| w.ctl.clone());
    if let Some(ctl) = existing {
        if ctl
            .send(&ToWorker::Listener { pid: c.pid }, Some(fd.as_raw_fd()))
            .is_ok()
        {
            return Ok(());
        }
        // The worker is gone; start a new one below.
        if let Ok(mut m) = shared.workers.lock() {
            m.remove(&c.id);
        }
    }
    let (child, mine) = take_worker(shared)?;
    let pid = child.id() as i32;
    mine.send(
        &ToWorker::Init {
            container: c.clone(),
            refuse_all,
        },
        Some(fd.as_raw_fd()),
    )?;
    drop(fd);
    // Wait for the worker to say it holds the listener in the container's
    // namespaces (fail closed otherwise: the runtime aborts the create).
    let mut pfd = libc::pollfd {
        fd: mine.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    let mut child = child;
    if r <= 0 {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("worker for {} did not start", c.id);
    }
    match mine.recv::<FromWorker>()? {
        Some((FromWorker::Ready, _)) => {}
        Some((FromWorker::Failed { error }, _)) => {
            let _ = child.wait();
            anyhow::bail!("worker for {}: {error}", c.id);
        }
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("worker for {} died at start", c.id);
        }
    }
    let ctl = Arc::new(mine);
    if c.kind == ProcessKind::Init {
        record(shared, &c);
    }
    shared
        .workers
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .insert(
            c.id.clone(),
            WorkerHandle {
                ctl: ctl.clone(),
                pid,
                container: c.clone(),
            },
        );
    let sh = shared.clone();
    let id = c.id.clone();
    std::thread::Builder::new()
        .name(format!("w-{id}"))
        .spawn(move || reader(sh, id, ctl, child, pid))?;
    Ok(())
}

/// Starts `hull-guard worker` with its control socket on fd 3; it waits
/// there for the container it will serve.
fn spawn_worker(shared: &Shared) -> std::io::Result<(Child, Control)> {
    let (mine, theirs) = control::pair()?;
    let theirs_fd = theirs.into_fd();
    let raw = theirs_fd.as_raw_fd();
    let mut cmd = Command::new(&shared.exe);
    cmd.arg("worker").stdin(Stdio::null());
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs_fd);
    Ok((child, mine))
}

/// The spare worker if one is alive, else a new one; a new spare is then
/// started in the background.
fn take_worker(shared: &Arc<Shared>) -> std::io::Result<(Child, Control)> {
    let spare = shared.spare.lock().ok().and_then(|mut s| s.take());
    let worker = match spare {
        Some((mut child, ctl)) => {
            if matches!(child.try_wait(), Ok(None)) {
                (child, ctl)
            } else {
                let _ = child.wait();
                spawn_worker(shared)?
            }
        }
        None => spawn_worker(shared)?,
    };
    refill_spare(shared);
    Ok(worker)
}

fn refill_spare(shared: &Arc<Shared>) {
    let sh = shared.clone();
    let _ = std::thread::Builder::new()
        .name("spare-worker".into())
        .spawn(move || {
            let Ok(w) = spawn_worker(&sh) else {
                return;
            };
            let mut extra = Some(w);
            if let Ok(mut s) = sh.spare.lock() {
                if s.is_none() {
                    *s = extra.take();
                }
            }
            // Another create refilled first: this one is not needed (its
            // control socket closes, so it exits; reap it).
            if let Some((mut child, ctl)) = extra {
                drop(ctl);
                let _ = child.wait();
            }
        });
}

/// Everything a worker sends: audit lines and requests for fresh proc/sysfs.
fn reader(shared: Arc<Shared>, id: String, ctl: Arc<Control>, mut child: Child, pid: i32) {
    loop {
        match ctl.recv::<FromWorker>() {
            Ok(Some((FromWorker::Audit { line }, _))) => {
                if let Ok(mut a) = shared.audit.lock() {
                    a.write_line(&line);
                }
            }
            Ok(Some((FromWorker::Fresh { kind, tid, options }, _))) => {
                let (msg, fd) = fresh(&shared, &id, &kind, tid, &options);
                let _ = ctl.send(&msg, fd.as_ref().map(|f| f.as_raw_fd()));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    // Forget it before reaping: until then its pid cannot be reused, so an
    // Unregister that found the entry signals the worker, never a stranger.
    if let Ok(mut m) = shared.workers.lock() {
        if m.get(&id).is_some_and(|w| w.pid == pid) {
            m.remove(&id);
        }
    }
    let _ = child.wait();
    tracing::debug!(container = %id, "worker ended");
}

fn fresh(
    shared: &Arc<Shared>,
    id: &str,
    kind: &str,
    tid: i32,
    options: &[String],
) -> (ToWorker, Option<OwnedFd>) {
    let failed = |e: String| {
        (
            ToWorker::Fresh {
                ok: false,
                error: Some(e),
                submounts: vec![],
            },
            None,
        )
    };
    // Never build without the masks: a container the guard no longer
    // knows gets no fresh proc or sysfs at all.
    let mounts = match shared.workers.lock() {
        Ok(m) => match m.get(id) {
            Some(w) => w.container.mounts.clone(),
            None => {
                return failed(format!(
                    "container {id} is not registered: its masks are unknown"
                ))
            }
        },
        Err(_) => return failed("poisoned".into()),
    };
    let base = if kind == "proc" { "/proc/" } else { "/sys/" };
    let mut cmd = Command::new(&shared.exe);
    cmd.arg("freshfs")
        .arg("--kind")
        .arg(kind)
        .arg("--tid")
        .arg(tid.to_string())
        .arg("--scratch")
        .arg(shared.cfg.state_dir.join("scratch"));
    for m in &mounts {
        let Some(rel) = m.destination.strip_prefix(base) else {
            continue;
        };
        match m.role {
            MountRole::Masked => {
                cmd.arg("--mask").arg(rel);
            }
            MountRole::ReadonlyPath => {
                cmd.arg("--readonly").arg(rel);
            }
            MountRole::Emulated => {
                cmd.arg("--emulate").arg(format!("{rel}={}", m.source));
            }
            _ => {}
        }
    }
    if kind == "proc" {
        for o in options {
            if o.starts_with("hidepid=") || o.starts_with("subset=") {
                cmd.arg("--opt").arg(o);
            }
        }
    }
    let (mine, theirs) = match control::pair() {
        Ok(p) => p,
        Err(e) => return failed(e.to_string()),
    };
    let theirs_fd = theirs.into_fd();
    let raw = theirs_fd.as_raw_fd();
    cmd.stdin(Stdio::null());
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    drop(theirs_fd);
    // A builder stuck in a dying container must not stall the caller forever.
    let _ = mine.set_recv_timeout(Duration::from_secs(10));
    let r = mine.recv::<ToWorker>();
    if r.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    match r {
        Ok(Some((m, fd))) => (m, fd),
        Ok(None) => failed("the builder exited without an answer".into()),
        Err(e) => failed(e.to_string()),
    }
}
