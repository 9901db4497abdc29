//! The last steps of a container process (init or exec'd), in the order the
//! kernel's rules impose: seccomp before the capabilities it needs are gone,
//! bounding set before the uid change, and every fd close-on-exec at the end.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libseccomp::ScmpFilterContext;
use oci_spec::runtime::Process;

use crate::capabilities::{self, Wanted};
use crate::cli::GuardMode;
use crate::error::{Context, Error, Result};
use crate::{seccomp, sys};

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Bundle(format!("NUL byte in {s:?}")))
}

/// Resource limits, set while still the VM's root (raising a hard limit needs
/// privileges the container never has).
pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().clone().unwrap_or_default() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let res = match name.as_str() {
            "RLIMIT_CPU" => libc::RLIMIT_CPU,
            "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
            "RLIMIT_DATA" => libc::RLIMIT_DATA,
            "RLIMIT_STACK" => libc::RLIMIT_STACK,
            "RLIMIT_CORE" => libc::RLIMIT_CORE,
            "RLIMIT_RSS" => libc::RLIMIT_RSS,
            "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
            "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
            "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
            "RLIMIT_AS" => libc::RLIMIT_AS,
            "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
            "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
            "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
            "RLIMIT_NICE" => libc::RLIMIT_NICE,
            "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
            "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
            other => return Err(Error::Bundle(format!("unknown rlimit {other}"))),
        };
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("set {name} to {}/{}", r.soft(), r.hard()));
        }
    }
    Ok(())
}

pub fn set_oom_score_adj(p: &Process) -> Result<()> {
    if let Some(v) = p.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", v.to_string())
            .ctx(|| format!("set oom_score_adj {v}"))?;
    }
    Ok(())
}

/// chdir to the process's cwd, resolved inside the container's root and never
/// through a magic link (CVE-2024-21626: a cwd of /proc/self/fd/N would reach
/// whatever the runtime had open).
pub fn enter_cwd(p: &Process) -> Result<()> {
    let cwd = p.cwd();
    let rel = cwd.strip_prefix("/").unwrap_or(cwd);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let fd = sys::openat2(
        libc::AT_FDCWD,
        &Path::new("/").join(rel),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
    .ctx(|| format!("cwd {}", cwd.display()))?;
    nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&fd))
        .ctx(|| format!("chdir {}", cwd.display()))
}

/// Find the program like execvp would, inside the container (after pivot_root),
/// so that a missing binary fails `create`, as with runc.
pub fn find_executable(p: &Process) -> Result<CString> {
    let args = p.args().clone().unwrap_or_default();
    let prog = args
        .first()
        .ok_or_else(|| Error::Bundle("process.args is empty".into()))?;
    if prog.contains('/') {
        return cstring(prog);
    }
    let path = p
        .env()
        .clone()
        .unwrap_or_default()
        .iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_owned))
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = PathBuf::from(dir).join(prog);
        let c = cstring(&cand.to_string_lossy())?;
        // SAFETY: valid C string.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && !cand.is_dir() {
            return CString::new(cand.as_os_str().as_bytes())
                .map_err(|_| Error::Bundle("bad path".into()));
        }
    }
    Err(Error::Other(format!(
        "exec: {prog:?}: executable file not found in $PATH"
    )))
}

/// Credentials, capabilities, no_new_privs and seccomp. Returns the seccomp
/// notify listener, if any (it must go to hull-guard and be closed here).
pub fn secure(
    p: &Process,
    filter: &ScmpFilterContext,
    guard: GuardMode,
) -> Result<Option<OwnedFd>> {
    let nnp = p.no_new_privileges().unwrap_or(false);
    let mut wanted = Wanted::from_spec(p.capabilities().as_ref());
    wanted.intersect_available();
    let mut listener = None;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN (in our own
    // user namespace), which the process may be about to lose: load it first.
    if !nnp {
        listener = seccomp::load(filter, guard)?;
    }
    capabilities::drop_bounding(&wanted)?;
    let user = p.user();
    let gids: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(nix::unistd::Gid::from_raw)
        .collect();
    nix::unistd::setgroups(&gids).ctx(|| "setgroups")?;
    let gid = nix::unistd::Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setresgid {}", user.gid()))?;
    sys::set_keepcaps(true).ctx(|| "keepcaps")?;
    let uid = nix::unistd::Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setresuid {}", user.uid()))?;
    sys::set_keepcaps(false).ctx(|| "keepcaps")?;
    capabilities::apply_sets(&wanted)?;
    if let Some(m) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    }
    if nnp {
        sys::set_no_new_privs().ctx(|| "no_new_privs")?;
        listener = seccomp::load(filter, guard)?;
    }
    Ok(listener)
}

/// Replace this process with the container's program. Every fd from 3 up
/// (besides preserved ones) is close-on-exec by now.
pub fn exec(prog: &CString, p: &Process, preserve_fds: u32) -> Result<()> {
    sys::cloexec_from(3 + preserve_fds).ctx(|| "close_range")?;
    let args: Vec<CString> = p
        .args()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_>>()?;
    let env: Vec<CString> = p
        .env()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_>>()?;
    let e = nix::unistd::execve(prog, &args, &env).err();
    Err(Error::Other(format!(
        "exec {:?}: {}",
        prog,
        e.map(|e| e.desc()).unwrap_or("failed")
    )))
}
