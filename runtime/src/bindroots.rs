//! Where a bind or volume source may come from, checked by the runtime at
//! every create.
//!
//! Why here and not only in hull-gate: the gate judges a source when the
//! container is created (`docker create`/`run`), but the runtime opens it at
//! `docker start`, and dockerd's own restarts (restart policies, `docker
//! restart`) never pass the gate. A path component swapped for a symlink in
//! between (another container owns the volume it sits in) would otherwise
//! hand the VM's /run, or any VM path, to the container.
//!
//! So the runtime refuses any source that does not resolve, **without
//! following a single symlink** (RESOLVE_NO_SYMLINKS), to a path under one of
//! the mount roots the gate enforces (hull-policy's `DEFAULT_MOUNT_ROOTS`:
//! the host shares and named volumes), or under the places dockerd itself
//! binds from (the container's resolv.conf/hostname/hosts/shm, BuildKit's
//! executor files) and hull's per-container gate sockets. The fd that was
//! checked is the one bound: nothing can be swapped between check and mount.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path};

use crate::error::{Error, Result};
use crate::sys::{self, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS};

/// Sources dockerd itself puts in config.json (never chosen by a user: the
/// gate refuses these paths in a bind), or hull's own. `*` is exactly one
/// path component.
pub const ENGINE_ROOTS: &[&str] = &[
    // resolv.conf, hostname, hosts, mounts/shm (also another container's,
    // for `--ipc container:X`).
    "/var/lib/docker/containers/*",
    // BuildKit's executor (RUN steps): hosts, resolv.conf; its cache and
    // `--mount=type=bind,from=` mounts are layers of the layer store; its
    // secrets and SSH sockets are in dockerd's TMPDIR.
    "/var/lib/docker/buildkit",
    "/var/lib/docker/overlay2",
    "/var/lib/docker/tmp",
    // hull-gate's per-container Docker sockets.
    "/run/hull/sockets/*",
];

/// `docker run --init`: dockerd binds its init binary, found in its PATH
/// (in Debian a symlink to tini). Accepted only at these exact paths and
/// only when the file lies on a read-only filesystem (the VM's root).
pub const DOCKER_INIT: &[&str] = &[
    "/usr/sbin/docker-init",
    "/usr/bin/docker-init",
    "/usr/libexec/docker/docker-init",
    "/usr/local/bin/docker-init",
];

/// The roots in force: the user roots (as the gate has them) and the
/// engine's own.
#[derive(Debug, Clone)]
pub struct BindRoots {
    roots: Vec<String>,
}

impl BindRoots {
    /// `user`: the gate's mount roots (empty: hull-policy's defaults).
    pub fn new(user: &[String]) -> BindRoots {
        let mut roots: Vec<String> = if user.is_empty() {
            hull_policy::effective::DEFAULT_MOUNT_ROOTS
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            user.to_vec()
        };
        roots.extend(ENGINE_ROOTS.iter().map(|s| s.to_string()));
        BindRoots { roots }
    }

    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    fn under_root(&self, path: &Path) -> bool {
        let comps: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        self.roots.iter().any(|r| {
            let rc: Vec<&str> = r.split('/').filter(|c| !c.is_empty()).collect();
            !rc.is_empty()
                && rc.len() <= comps.len()
                && rc
                    .iter()
                    .zip(&comps)
                    .all(|(p, c)| *p == "*" || std::ffi::OsStr::new(p) == *c)
        })
    }

    fn refuse(&self, src: &Path, dest: &str, why: &str) -> Error {
        Error::Refused(format!(
            "hull-runtime: refusing bind source {} for {dest}: {why}; a bind or volume source must resolve without symlinks to a path under {}",
            src.display(),
            self.roots.join(", ")
        ))
    }

    /// Open `src` (O_PATH) for a bind at `dest`, or refuse it.
    pub fn open(&self, src: &Path, dest: &str) -> Result<OwnedFd> {
        let raw = src.as_os_str().as_encoded_bytes();
        let lexical_ok = src.is_absolute()
            && src
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            && !raw.windows(3).any(|w| w == b"/./")
            && !raw.ends_with(b"/.");
        if !lexical_ok {
            return Err(self.refuse(src, dest, "it is not a clean absolute path"));
        }
        if let Some(p) = src.to_str().filter(|p| DOCKER_INIT.contains(p)) {
            return open_docker_init(Path::new(p)).map_err(|why| self.refuse(src, dest, &why));
        }
        if !self.under_root(src) {
            return Err(self.refuse(src, dest, "it is outside the mount roots"));
        }
        sys::openat2(
            libc::AT_FDCWD,
            src,
            libc::O_PATH,
            0,
            RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::ELOOP) => "a component of it is a symlink".to_string(),
                _ => format!("cannot open it: {e}"),
            };
            self.refuse(src, dest, &why)
        })
    }
}

fn open_docker_init(p: &Path) -> std::result::Result<OwnedFd, String> {
    let fd = sys::openat2(libc::AT_FDCWD, p, libc::O_PATH, 0, RESOLVE_NO_MAGICLINKS)
        .map_err(|e| format!("cannot open it: {e}"))?;
    // SAFETY: an all-zero statvfs is a valid out-buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and out-buffer.
    if unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(format!("statvfs: {}", std::io::Error::last_os_error()));
    }
    if st.f_flag & libc::ST_RDONLY == 0 {
        return Err("the init binary is not on a read-only filesystem".into());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_match_by_component() {
        let r = BindRoots::new(&[]);
        for ok in [
            "/mnt/host/x",
            "/var/lib/docker/volumes/v/_data",
            "/var/lib/docker/volumes/v/_data/x/y",
            "/var/lib/docker/containers/abc/hosts",
            "/run/hull/sockets/tok/docker.sock",
        ] {
            assert!(r.under_root(Path::new(ok)), "{ok}");
        }
        for bad in [
            "/run",
            "/mnt/hostile",
            "/var/lib/docker/volumes/v",
            "/var/lib/docker/volumes/v/_database",
            "/run/hull/sockets",
            "/var/lib/docker/containers",
        ] {
            assert!(!r.under_root(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn symlinked_component_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("real/link")).unwrap();
        let r = BindRoots::new(&[base.display().to_string()]);
        assert!(r.open(&base.join("real"), "/h").is_ok());
        let e = r.open(&base.join("real/link"), "/h").unwrap_err();
        assert!(
            e.to_string().contains("a component of it is a symlink"),
            "{e}"
        );
        assert!(e.to_string().contains("real/link"), "{e}");
        let e = r.open(&base.join("real/../real"), "/h").unwrap_err();
        assert!(e.to_string().contains("not a clean absolute path"), "{e}");
        let e = r.open(Path::new("/etc"), "/h").unwrap_err();
        assert!(e.to_string().contains("outside the mount roots"), "{e}");
    }
}
