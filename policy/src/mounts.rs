//! Bind-mount rules: which VM paths a container may bind.
//!
//! The gate resolves every bind source in the VM first (symlinks, `..`,
//! and, for a path that does not exist yet, its nearest existing ancestor
//! with the rest appended — the engine creates missing `-v` sources as
//! root). Only the resolved, absolute, clean path is judged here; anything
//! else is refused rather than guessed at.

use crate::refusal::Refusal;

/// What a resolved bind source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindClass {
    /// Under a mount root: allowed.
    Allowed,
    /// The engine's socket: allowed only by the socket-mount decision
    /// ([`crate::images::socket_mount_decision`]).
    DockerSocket,
}

/// ECI's message for a VM path outside the mount roots.
pub fn restricted_mount(path: &str) -> Refusal {
    Refusal::forbidden(format!(
        "can't mount {} because it's configured as a restricted host mount",
        crate::json::escape_for_message(path)
    ))
}

fn is_clean_absolute(p: &str) -> bool {
    p.starts_with('/')
        && (p == "/"
            || (!p.ends_with('/')
                && p[1..]
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")))
        && !p.chars().any(|c| c.is_control())
}

/// Whether `path` is a root or lies below one. A root component `*` matches
/// exactly one path component (so `/var/lib/docker/volumes/*/_data` covers
/// volume data but not the volume store's `metadata.db`).
fn under_root(path: &str, root: &str) -> bool {
    let pc: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rc: Vec<&str> = root.split('/').filter(|s| !s.is_empty()).collect();
    // An empty root would be "/", the whole VM: never treat it as a root.
    !rc.is_empty()
        && root.starts_with('/')
        && pc.len() >= rc.len()
        && rc.iter().zip(&pc).all(|(r, p)| *r == "*" || r == p)
}

/// The mount rule: `resolved` (absolute, clean, symlinks resolved in the
/// VM) must be one of `roots` or lie below one. The refusal reads exactly
/// `can't mount <path> because it's configured as a restricted host mount`.
pub fn check_bind<S: AsRef<str>>(resolved: &str, roots: &[S]) -> Result<(), Refusal> {
    if !is_clean_absolute(resolved) {
        return Err(restricted_mount(resolved));
    }
    if roots.iter().any(|r| under_root(resolved, r.as_ref())) {
        Ok(())
    } else {
        Err(restricted_mount(resolved))
    }
}

/// [`check_bind`] with the engine socket told apart: a source equal to one
/// of `socket_paths` (the engine's socket and every path that resolves to
/// it, as the gate knows them) is [`BindClass::DockerSocket`], not a
/// restricted mount.
pub fn classify_bind<S: AsRef<str>, T: AsRef<str>>(
    resolved: &str,
    roots: &[S],
    socket_paths: &[T],
) -> Result<BindClass, Refusal> {
    if socket_paths.iter().any(|s| s.as_ref() == resolved) {
        return Ok(BindClass::DockerSocket);
    }
    check_bind(resolved, roots).map(|()| BindClass::Allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effective::DEFAULT_MOUNT_ROOTS;

    #[test]
    fn default_roots() {
        for ok in [
            "/mnt/host",
            "/mnt/host/home/me/src",
            "/var/lib/docker/volumes/data1/_data",
            "/var/lib/docker/volumes/data1/_data/sub/dir",
        ] {
            assert!(check_bind(ok, DEFAULT_MOUNT_ROOTS).is_ok(), "{ok}");
        }
        for bad in [
            "/",
            "/etc",
            "/etc/docker/daemon.json",
            "/mnt",
            "/mnt/hostile",
            "/var/lib/docker",
            "/var/lib/docker/volumes",
            "/var/lib/docker/volumes/metadata.db",
            "/var/lib/docker/volumes/x",
            "/run/hull/settings.json",
            "/var/run/docker.sock",
        ] {
            let e = check_bind(bad, DEFAULT_MOUNT_ROOTS).unwrap_err();
            assert_eq!(e.status.code(), 403);
            assert_eq!(
                e.message,
                format!("can't mount {bad} because it's configured as a restricted host mount")
            );
        }
    }

    #[test]
    fn unresolved_paths_refused() {
        for p in [
            "/mnt/host/../etc",
            "/mnt/host/./x",
            "/mnt/host//x",
            "/mnt/host/",
            "mnt/host",
            "",
            "/mnt/host/a\nb",
        ] {
            assert!(check_bind(p, DEFAULT_MOUNT_ROOTS).is_err(), "{p:?}");
        }
    }

    #[test]
    fn empty_or_relative_roots_never_match() {
        assert!(check_bind("/etc", &["/"]).is_err());
        assert!(check_bind("/etc", &["", "etc"]).is_err());
        assert!(check_bind("/etc", &[] as &[&str]).is_err());
    }

    #[test]
    fn socket_is_its_own_class() {
        let socks = ["/var/run/docker.sock", "/run/docker.sock"];
        assert_eq!(
            classify_bind("/run/docker.sock", DEFAULT_MOUNT_ROOTS, &socks),
            Ok(BindClass::DockerSocket)
        );
        assert_eq!(
            classify_bind("/mnt/host/x", DEFAULT_MOUNT_ROOTS, &socks),
            Ok(BindClass::Allowed)
        );
        assert!(classify_bind("/run", DEFAULT_MOUNT_ROOTS, &socks).is_err());
    }
}
