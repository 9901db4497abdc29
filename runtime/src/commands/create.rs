//! `create`: build the container and leave its init waiting for `start`.
//!
//! Processes (P = this runtime, as the VM's root):
//! 1. H, a helper, joins any namespaces the bundle names by path, sets the
//!    rlimits, then unshares user+pid+net+ipc+uts+cgroup at once, so all of
//!    them are owned by the container's user namespace. P writes its id maps.
//!    H forks C, the container's init (pid 1 of the new pid namespace), and exits.
//! 2. M, a mount builder, is forked by P into the container's pid namespace
//!    and joins its other namespaces *as the VM's root*. It builds every mount
//!    in a private mount namespace, pivots, and only then enters the
//!    container's user namespace and unshares a new mount namespace: the
//!    kernel now locks all of those mounts (see `rootfs`). M hands that mount
//!    namespace to P and exits.
//! 3. C joins that mount namespace, takes the process's credentials, loads
//!    seccomp (its notify listener goes to hull-guard through P), reports Ready
//!    and waits on `start.sock` (bound by P, inherited, close-on-exec).
//!
//! P records the state and exits; C is reparented to the shim (a subreaper).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxSeccomp, Process, Spec};

use crate::cgroup::Cgroup;
use crate::cli::{CreateArgs, GuardMode};
use crate::config::RuntimeConfig;
use crate::error::{Context, Error, Result};
use crate::guard_proto::{
    ContainerIdentity, GuardClient, InitialMount, ProcessKind, Request, GUARD_WAIT,
    PROTOCOL_VERSION,
};
use crate::idrange::{Allocator, IdRange, Owner};
use crate::state::{State, START_SOCK};
use crate::sync::{self, Msg};
use crate::{console, hardening, hooks, logging, namespaces, process, rootfs, spec, sys};

/// Undo a half-made container if create fails at any point.
struct Cleanup {
    sdir: PathBuf,
    alloc: Allocator,
    owner: Owner,
    cgroup: Option<Cgroup>,
    child: Option<Pid>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.signal_all(libc::SIGKILL);
            let _ = cg.remove();
        }
        let _ = std::fs::remove_dir_all(&self.sdir);
        let _ = self.alloc.release(&self.owner);
    }
}

/// Waits for a child (the mount builder) when dropped, on every return of create.
struct Reap(Pid);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = nix::sys::wait::waitpid(self.0, None);
    }
}

pub struct Created {
    pub pid: i32,
    pub state: State,
}

fn unexpected(who: &str, m: Option<(Msg, Option<OwnedFd>)>) -> Error {
    match m {
        Some((Msg::Error(e), _)) => Error::Other(e),
        Some((m, _)) => Error::Other(format!("{who}: unexpected {m:?}")),
        None => Error::Other(format!("{who} exited during setup")),
    }
}

pub fn create(cfg: &RuntimeConfig, a: &CreateArgs) -> Result<Created> {
    spec::check_id(&a.id)?;
    if a.no_pivot {
        tracing::warn!("--no-pivot ignored: hull always uses pivot_root");
    }
    let bundle = spec::load(&a.bundle)?;
    let plan = namespaces::plan(&bundle.spec)?;
    let process = bundle
        .spec
        .process()
        .clone()
        .ok_or_else(|| Error::Bundle("config.json has no process".into()))?;
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    // Fail closed before doing any work if the guard is required but absent.
    let mut guard = match cfg.guard {
        GuardMode::Required => Some(GuardClient::connect_waiting(&cfg.guard_socket, GUARD_WAIT)?),
        _ => None,
    };
    let terminal = process.terminal().unwrap_or(false);
    let console = match (terminal, &a.console_socket) {
        (true, Some(p)) => Some(console::connect(p)?),
        (true, None) => {
            return Err(Error::Bundle(
                "process.terminal is set but no --console-socket was given".into(),
            ))
        }
        (false, _) => None,
    };

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.root)
        .ctx(|| format!("create {}", cfg.root.display()))?;
    let sdir = cfg.state_dir(&a.id);
    match std::fs::DirBuilder::new().mode(0o700).create(&sdir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(a.id.clone()))
        }
        Err(e) => return Err(e).ctx(|| format!("create {}", sdir.display())),
    }
    let owner = Owner {
        id: a.id.clone(),
        state_dir: sdir.clone(),
    };
    let mut cleanup = Cleanup {
        sdir: sdir.clone(),
        alloc: Allocator::new(&cfg.idranges_dir, cfg.idranges_max),
        owner: owner.clone(),
        cgroup: None,
        child: None,
        armed: true,
    };
    tracing::debug!(stage = "allocated ids", "create");
    let ids = match cfg.guard {
        // Through hull-guard (the same allocator and file, served by it).
        GuardMode::Required => {
            let r = GuardClient::connect_waiting(&cfg.guard_socket, GUARD_WAIT)?.call(
                &Request::AllocateRange {
                    version: PROTOCOL_VERSION,
                    owner: owner.clone(),
                },
                None,
            )?;
            r.range
                .ok_or_else(|| Error::Guard("hull-guard allocated no id range".into()))?
        }
        _ => cleanup.alloc.allocate(&owner)?,
    };
    // The build without the user-namespace wall (`cargo xtask vm-test
    // --weaken userns`, never shipped): the container's ids are the VM's
    // own, so its root is the VM's root for every file and every container
    // shares one range.
    let ids = if cfg!(feature = "weaken-userns") {
        IdRange {
            start: 0,
            len: 65536,
        }
    } else {
        ids
    };
    let privileged = hardening::is_privileged(&bundle.spec);

    // A copy of the config: exec and delete must not depend on the bundle staying put.
    std::fs::write(sdir.join("config.json"), &bundle.raw).ctx(|| "save config.json")?;

    tracing::debug!(stage = "cgroup", "create");
    let cgroup = Cgroup::locate(linux.cgroups_path().as_deref(), &a.id)?;
    let Some(cg) = &cgroup else {
        // Without a cgroup there is no device program: fail closed.
        return Err(Error::Refused(format!(
            "container {}: no cgroup v2 hierarchy, so hull cannot attach its device cgroup program; refusing to create it",
            a.id
        )));
    };
    cg.create()?;
    cleanup.cgroup = Some(cg.clone());
    if let Some(r) = linux.resources() {
        cg.apply(r)?;
    }
    // Before any process of the container exists (H is born in the cgroup).
    // The nodev-off build (`--weaken nodev`, never shipped) has no program.
    if !cfg!(feature = "weaken-nodev") {
        crate::devcg::confine(&cg.path, wants_fuse(&linux))?;
    }
    cg.delegate(ids.start, ids.start)?;
    let mut joins = Vec::new();
    for (flag, path) in &plan.join {
        let fd: OwnedFd = std::fs::File::open(path)
            .ctx(|| format!("open {}", path.display()))?
            .into();
        joins.push((*flag, fd));
    }
    // The start socket: bound here by path relative to the state dir (short,
    // whatever the root's length); the init inherits the listening fd.
    let start = {
        let cwd = std::env::current_dir().ok();
        nix::unistd::chdir(&sdir).ctx(|| "chdir state dir")?;
        let l = UnixListener::bind(START_SOCK).ctx(|| "bind start socket");
        let _ = std::fs::set_permissions(START_SOCK, std::fs::Permissions::from_mode(0o600));
        if let Some(c) = cwd {
            let _ = nix::unistd::chdir(&c);
        }
        l?
    };

    tracing::debug!(stage = "helper", "create");
    // 1. Helper H, and through it the init C.
    let (p_h, h_end) = sync::pair()?;
    let (p_c, c_end) = sync::pair()?;
    let h = match fork_helper(cgroup.as_ref())? {
        ForkResult::Child => {
            drop(p_h);
            drop(p_c);
            let code = match helper_main(
                &h_end,
                c_end,
                &joins,
                plan.create,
                &process,
                &start,
                cfg.guard,
                a.preserve_fds,
                &bundle.spec,
                console.as_ref(),
            ) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = h_end.send(&Msg::Error(e.to_string()));
                    1
                }
            };
            // SAFETY: end the forked child without unwinding into the parent's state.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(h_end);
    drop(c_end);
    cleanup.child = Some(h);
    tracing::debug!(stage = "h: cgroup joined", "create");
    p_h.send(&Msg::Continue)?;
    match p_h.recv()? {
        Some((Msg::NamespacesReady, _)) => {}
        m => return Err(unexpected("namespace helper", m)),
    }
    tracing::debug!(stage = "h: unshared", "create");
    let hp = h.as_raw();
    std::fs::write(
        format!("/proc/{hp}/uid_map"),
        format!("0 {} {}\n", ids.start, ids.len),
    )
    .ctx(|| "write uid_map")?;
    std::fs::write(
        format!("/proc/{hp}/gid_map"),
        format!("0 {} {}\n", ids.start, ids.len),
    )
    .ctx(|| "write gid_map")?;
    p_h.send(&Msg::Continue)?;
    let pid = match p_h.recv()? {
        Some((Msg::Pid(p), _)) => p,
        m => return Err(unexpected("namespace helper", m)),
    };
    tracing::debug!(stage = "h: init pid received", "create");
    let _ = nix::sys::wait::waitpid(h, None);
    cleanup.child = Some(Pid::from_raw(pid));

    tracing::debug!(stage = "init forked", "create");
    let userns = namespaces::open_ns(pid, "user")?;
    let pidns = namespaces::open_ns(pid, "pid")?;
    let mut others = Vec::new();
    for (flag, name) in namespaces::JOINABLE {
        others.push((*flag, namespaces::open_ns(pid, name)?));
    }
    let mut st = State {
        id: a.id.clone(),
        pid,
        pid_start: sys::pid_start_time(pid).unwrap_or(0),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: logging::rfc3339_now(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        cgroup: cgroup.clone(),
        ids,
        privileged,
    };
    if let Some(hk) = bundle.spec.hooks() {
        let creating = st.hook_json("creating");
        hooks::run(
            "prestart",
            hk.prestart().as_deref().unwrap_or_default(),
            &creating,
        )?;
        hooks::run(
            "createRuntime",
            hk.create_runtime().as_deref().unwrap_or_default(),
            &creating,
        )?;
    }

    tracing::debug!(stage = "mounts", "create");
    // 2. Mount builder M.
    let (p_m, m_end) = sync::pair()?;
    let mplan = MountPlan {
        spec: &bundle.spec,
        process: &process,
        bundle_dir: &bundle.dir,
        rootfs: &bundle.rootfs,
        sdir: &sdir,
        ids,
        userns: &userns,
        others: &others,
        privileged,
        bind_roots: &cfg.bind_roots,
    };
    let m = match namespaces::fork_into_pidns(Some(&pidns))? {
        ForkResult::Child => {
            drop(p_m);
            drop(p_c);
            let code = match mount_main(&mplan, &m_end) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = m_end.send(&Msg::Error(e.to_string()));
                    1
                }
            };
            // SAFETY: end the forked child without unwinding.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    tracing::debug!(stage = "mount builder forked", "create");
    drop(m_end);
    let r = (|| -> Result<(Vec<InitialMount>, OwnedFd)> {
        // While M builds /proc and /dev: the guard's emulated /proc files,
        // each a FUSE round trip to hull-guard, off M's serial path. M takes
        // them just before it binds them (`rootfs::emulate`).
        let emulated = match cfg.guard {
            GuardMode::Required => rootfs::clone_emulated(&cfg.guard_procfs, ids.start)?,
            _ => Vec::new(),
        };
        tracing::debug!(stage = "procfs emulation cloned", "create");
        if let Err(e) = send_emulated(emulated, &p_m) {
            // M died first (its end is closed, so this read cannot wait): its
            // own reason says more than a broken pipe.
            if matches!(&e, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EPIPE))
            {
                if let Ok(Some((Msg::Error(m), _))) = p_m.recv() {
                    return Err(Error::Other(m));
                }
            }
            return Err(e);
        }
        let mounts = match p_m.recv()? {
            Some((Msg::Ready { mounts, .. }, _)) => mounts,
            m => return Err(unexpected("mount builder", m)),
        };
        tracing::debug!(stage = "mount builder ready", "create");
        let mntns = namespaces::open_ns(m.as_raw(), "mnt")?;
        p_m.send(&Msg::Continue)?;
        Ok((mounts, mntns))
    })();
    if r.is_err() {
        let _ = nix::sys::signal::kill(m, nix::sys::signal::Signal::SIGKILL);
    }
    // M only exits once it has the Continue (or is killed): its exit (an
    // address space to tear down) overlaps the init's work below, and it is
    // reaped before create returns, so it is gone before `start` lets any of
    // the container's code run, as it always was.
    let m_exit = Reap(m);
    let (mounts, mntns) = r?;

    tracing::debug!(stage = "init finish", "create");
    // 3. The init takes the mount namespace and finishes.
    p_c.send_fd(&Msg::Continue, Some(mntns.as_raw_fd()))?;
    drop(mntns);
    let listener = match p_c.recv()? {
        Some((Msg::Ready { .. }, fd)) => fd,
        m => return Err(unexpected("container init", m)),
    };
    tracing::debug!(stage = "init ready", "create");
    drop(m_exit);
    tracing::debug!(stage = "mount builder reaped", "create");
    if let Some(g) = guard.as_mut() {
        // Without a listener (the profile lets no mount-family call through)
        // the guard still learns of the container: its procfs emulation
        // (/proc/uptime, the knobs) needs it.
        if listener.is_none() {
            tracing::debug!(
                "no mount-family call can reach hull-guard; registering without a listener"
            );
        }
        register(
            g,
            listener.as_ref(),
            &st,
            &sdir,
            ProcessKind::Init,
            pid,
            mounts,
        )?;
        tracing::debug!(stage = "registered with hull-guard", "create");
    }
    drop(listener);
    if let Some(hk) = bundle.spec.hooks() {
        hooks::run(
            "createContainer",
            hk.create_container().as_deref().unwrap_or_default(),
            &st.hook_json("created"),
        )?;
    }
    tracing::debug!(stage = "state", "create");
    st.pid_start = sys::pid_start_time(pid)
        .ok_or_else(|| Error::Other("container init died during create".into()))?;
    st.save(&cfg.root)?;
    if let Some(p) = &a.pid_file {
        super::write_pid_file(p, pid)?;
    }
    cleanup.armed = false;
    Ok(Created { pid, state: st })
}

/// Fork H into the container's cgroup (born there: no migration cost), or
/// fork and move it when clone3 cannot (older kernels).
fn fork_helper(cgroup: Option<&Cgroup>) -> Result<ForkResult> {
    let Some(cg) = cgroup else {
        return namespaces::fork_into_pidns(None);
    };
    let dir = std::fs::File::open(&cg.path).ctx(|| format!("open {}", cg.path.display()))?;
    match sys::fork_into_cgroup(dir.as_fd()) {
        Ok(0) => Ok(ForkResult::Child),
        Ok(pid) => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid),
        }),
        Err(e) => {
            tracing::debug!("clone3(CLONE_INTO_CGROUP): {e}; falling back to fork + cgroup.procs");
            let r = namespaces::fork_into_pidns(None)?;
            if let ForkResult::Parent { child } = r {
                std::fs::write(cg.procs(), child.as_raw().to_string())
                    .ctx(|| format!("move helper into {}", cg.path.display()))?;
            }
            Ok(r)
        }
    }
}

pub fn register(
    g: &mut GuardClient,
    listener: Option<&OwnedFd>,
    st: &State,
    sdir: &Path,
    kind: ProcessKind,
    pid: i32,
    mounts: Vec<InitialMount>,
) -> Result<()> {
    let req = Request::Register {
        version: PROTOCOL_VERSION,
        container: ContainerIdentity {
            id: st.id.clone(),
            pid,
            kind,
            uid_range: st.ids,
            gid_range: st.ids,
            rootfs: st.rootfs.clone(),
            bundle: st.bundle.clone(),
            state_dir: sdir.to_path_buf(),
            privileged: st.privileged,
            mounts,
        },
    };
    g.call(&req, listener.map(|l| l.as_fd())).map(|_| ())
}

/// Namespaced sysctls only: anything else would change the VM's kernel.
fn sysctl_allowed(key: &str) -> bool {
    const PREFIXES: &[&str] = &["net.", "fs.mqueue."];
    const KEYS: &[&str] = &[
        "kernel.shmmax",
        "kernel.shmall",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.domainname",
        "kernel.hostname",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p)) || KEYS.contains(&key)
}

fn write_sysctls(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
        return Ok(());
    };
    for (k, v) in map {
        if !sysctl_allowed(&k) || k.contains("..") {
            return Err(Error::Refused(format!(
                "sysctl {k} is not namespaced; hull refuses it"
            )));
        }
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&path, &v).ctx(|| format!("sysctl {k}={v}"))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn helper_main(
    ch: &sync::Channel,
    c_end: sync::Channel,
    joins: &[(i32, OwnedFd)],
    create_flags: i32,
    process: &Process,
    start: &UnixListener,
    guard: GuardMode,
    preserve_fds: u32,
    spec: &Spec,
    console: Option<&UnixStream>,
) -> Result<()> {
    sys::set_pdeathsig(libc::SIGKILL).ctx(|| "pdeathsig")?;
    ch.expect_continue()?;
    // Joins first, as the VM's root: the new user namespace could not.
    for (flag, fd) in joins {
        sys::setns(fd.as_fd(), *flag).ctx(|| format!("join namespace {flag:#x}"))?;
    }
    // Limits the container could never raise itself; inherited by the init.
    process::set_rlimits(process)?;
    process::set_oom_score_adj(process)?;
    sys::unshare(libc::CLONE_NEWUSER | create_flags)
        .ctx(|| "unshare the container's namespaces")?;
    ch.send(&Msg::NamespacesReady)?;
    ch.expect_continue()?;
    // SAFETY: single-threaded; the child runs init_main and never returns here.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork the container's init")? {
        ForkResult::Child => {
            let err = match init_main(&c_end, process, start, guard, preserve_fds, spec, console) {
                Ok(()) => "init returned".to_string(),
                Err(e) => e.to_string(),
            };
            let _ = c_end.send(&Msg::Error(err.clone()));
            // After Ready, P is gone: say it where the user can see it.
            eprintln!("hull-runtime init: {err}");
            // SAFETY: end the forked child without unwinding.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => ch.send(&Msg::Pid(child.as_raw())),
    }
}

/// Pass hull-guard's emulated /proc files (`rootfs::clone_emulated`) to the
/// mount builder, then `Continue`.
fn send_emulated(emulated: rootfs::Emulated, m: &sync::Channel) -> Result<()> {
    for (index, source, tree) in emulated {
        m.send_fd(&Msg::Emulated { index, source }, Some(tree.as_raw_fd()))?;
    }
    m.send(&Msg::Continue)
}

/// The mount builder's side of [`send_emulated`].
fn recv_emulated(ch: &sync::Channel) -> Result<rootfs::Emulated> {
    let mut out = Vec::new();
    loop {
        match ch.recv()? {
            Some((Msg::Emulated { index, source }, Some(fd))) => out.push((index, source, fd)),
            Some((Msg::Continue, _)) => return Ok(out),
            m => return Err(unexpected("runtime", m)),
        }
    }
}

struct MountPlan<'a> {
    spec: &'a Spec,
    process: &'a Process,
    bundle_dir: &'a Path,
    rootfs: &'a Path,
    sdir: &'a Path,
    ids: IdRange,
    userns: &'a OwnedFd,
    others: &'a [(i32, OwnedFd)],
    privileged: bool,
    bind_roots: &'a crate::bindroots::BindRoots,
}

fn mount_main(p: &MountPlan<'_>, ch: &sync::Channel) -> Result<()> {
    let stage = rootfs::stage;
    stage(format_args!("forked"));
    sys::set_pdeathsig(libc::SIGKILL).ctx(|| "pdeathsig")?;
    for (flag, fd) in p.others {
        sys::setns(fd.as_fd(), *flag).ctx(|| format!("setns {flag:#x}"))?;
    }
    stage(format_args!("namespaces joined"));
    sys::unshare(libc::CLONE_NEWNS).ctx(|| "unshare mount namespace")?;
    stage(format_args!("mount namespace unshared"));
    if let Some(h) = p.spec.hostname() {
        nix::unistd::sethostname(h).ctx(|| format!("sethostname {h}"))?;
    }
    if let Some(d) = p.spec.domainname() {
        std::fs::write("/proc/sys/kernel/domainname", d).ctx(|| "set domainname")?;
    }
    // Sysctls before /proc/sys turns read-only. They resolve in the
    // namespaces just joined (net, ipc, uts), never the VM's.
    write_sysctls(p.spec)?;
    stage(format_args!("hostname, sysctls"));
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let linux = p.spec.linux().clone().unwrap_or_default();
    let mut masked: Vec<String> = linux.masked_paths().clone().unwrap_or_default();
    let mut ro: Vec<String> = linux.readonly_paths().clone().unwrap_or_default();
    for m in hardening::FORCED_MASKED {
        if !masked.iter().any(|x| x == m) {
            masked.push(m.to_string());
        }
    }
    let mut forced_ro: Vec<&str> = hardening::FORCED_READONLY.to_vec();
    if !p.privileged {
        forced_ro.extend_from_slice(hardening::READONLY_UNLESS_PRIVILEGED);
    }
    for r in forced_ro {
        if !ro.iter().any(|x| x == r) {
            ro.push(r.to_string());
        }
    }
    let want_fuse = wants_fuse(&linux);
    let mounts = p.spec.mounts().clone().unwrap_or_default();
    let ctx = rootfs::Ctx {
        state_dir: p.sdir,
        bundle_dir: p.bundle_dir,
        rootfs: p.rootfs,
        readonly: p
            .spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        userns: p.userns.as_raw_fd(),
        ids: p.ids,
        mounts: &mounts,
        masked,
        readonly_paths: ro,
        privileged: p.privileged,
        want_fuse,
        terminal: p.process.terminal().unwrap_or(false),
        emulated: &|| recv_emulated(ch),
        bind_roots: p.bind_roots,
    };
    #[allow(unused_mut)]
    let mut built = rootfs::build(&ctx)?;
    rootfs::pivot(&built.root)?;
    drop(built.root);
    // Enter the container's user namespace, then a new mount namespace owned
    // by it: from here on every mount built above is locked.
    sys::setns(p.userns.as_fd(), libc::CLONE_NEWUSER)
        .ctx(|| "enter the container's user namespace")?;
    sys::unshare(libc::CLONE_NEWNS).ctx(|| "lock mounts (new mount namespace)")?;
    stage(format_args!("user namespace entered, mounts locked"));
    #[cfg(feature = "weaken-kernel-locks")]
    rootfs::masks_unlocked(&ctx, &mut built.mounts)?;
    ch.send(&Msg::Ready {
        has_listener: false,
        mounts: built.mounts,
    })?;
    ch.expect_continue()
}

/// Whether the bundle asks for /dev/fuse (the only device given on request).
fn wants_fuse(linux: &oci_spec::runtime::Linux) -> bool {
    linux
        .devices()
        .as_ref()
        .is_some_and(|d| d.iter().any(|d| d.path() == Path::new("/dev/fuse")))
}

fn init_main(
    ch: &sync::Channel,
    process: &Process,
    start: &UnixListener,
    guard: GuardMode,
    preserve_fds: u32,
    spec: &Spec,
    console: Option<&UnixStream>,
) -> Result<()> {
    // Compiled while the mount builder works (it is the same filter whenever
    // it is built: it depends on the bundle's profile and the guard mode only),
    // so its cost is off the serial path of create. A failure is reported
    // only once the runtime asks for this init again: exiting now would take
    // the container's namespaces away from the mount builder, and the
    // runtime would report that instead of the reason.
    let profile: Option<&LinuxSeccomp> = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let filter = crate::seccomp::build(profile, guard);
    tracing::debug!(stage = "c: seccomp compiled", "create");
    let mntns = match ch.recv()? {
        Some((Msg::Continue, Some(fd))) => fd,
        m => return Err(unexpected("runtime", m)),
    };
    let filter = filter?;
    sys::setns(mntns.as_fd(), libc::CLONE_NEWNS).ctx(|| "enter the container's mount namespace")?;
    drop(mntns);
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    nix::unistd::setresgid(0.into(), 0.into(), 0.into()).ctx(|| "setresgid 0")?;
    nix::unistd::setresuid(0.into(), 0.into(), 0.into()).ctx(|| "setresuid 0")?;
    if let Some(sock) = console {
        console::attach_tty(sock, true)?;
    }
    process::enter_cwd(process)?;
    let prog = process::find_executable(process)?;
    let listener = process::secure(process, &filter, guard)?;
    tracing::debug!(stage = "c: secured", "create");
    ch.send_fd(
        &Msg::Ready {
            has_listener: listener.is_some(),
            mounts: vec![],
        },
        listener.as_ref().map(|l| l.as_raw_fd()),
    )?;
    // Why: a container holding its own listener could answer its own mount
    // calls; only hull-guard may keep it.
    drop(listener);
    wait_for_start(start)?;
    process::exec(&prog, process, preserve_fds)
}

fn wait_for_start(l: &UnixListener) -> Result<()> {
    loop {
        let (mut s, _) = match l.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx(|| "wait for start"),
        };
        let mut b = [0u8; 1];
        if s.read(&mut b).ok() == Some(1) {
            let _ = s.write_all(b"1");
            return Ok(());
        }
    }
}
