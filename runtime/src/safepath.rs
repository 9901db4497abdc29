//! Paths inside the container's rootfs, resolved so that nothing the image (or
//! a hostile bundle) contains can point the runtime outside it: openat2 with
//! RESOLVE_IN_ROOT (symlinks resolve as if the rootfs were `/`) and
//! RESOLVE_NO_MAGICLINKS (no /proc/self/fd tricks). Mount targets are then used
//! by fd, never by path again, so a rename race cannot redirect a mount.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Context, Error, Result};
use crate::sys;

const RESOLVE: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// A destination as a clean relative path. `..` anywhere is refused: a bundle
/// has no honest reason for it.
pub fn clean_dest(dest: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(dest).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(Error::Refused(format!(
                    "mount destination {dest:?} contains '..'"
                )));
            }
            Component::Prefix(_) => return Err(Error::Bundle(format!("bad destination {dest:?}"))),
        }
    }
    Ok(out)
}

/// O_PATH fd of `rel` inside `root`.
pub fn open_in_root(root: BorrowedFd<'_>, rel: &Path) -> std::io::Result<OwnedFd> {
    let p = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    sys::openat2(root.as_raw_fd(), p, libc::O_PATH, 0, RESOLVE)
}

/// Refuse relative symlinks on the way to `rel` that climb above the rootfs:
/// RESOLVE_IN_ROOT would confine them anyway, but such a link only exists to
/// escape, so the bundle gets a clear error instead of a surprising mount.
fn check_symlinks(root: BorrowedFd<'_>, rel: &Path, dest: &str) -> Result<()> {
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        prefix.push(c);
        let fd = match sys::openat2(
            root.as_raw_fd(),
            &prefix,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            RESOLVE,
        ) {
            Ok(fd) => fd,
            Err(_) => return Ok(()),
        };
        let st =
            nix::sys::stat::fstat(fd.as_raw_fd()).ctx(|| format!("stat {}", prefix.display()))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            continue;
        }
        let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
            .ctx(|| format!("readlink {}", prefix.display()))?;
        let target = PathBuf::from(target);
        if target.is_relative() {
            let mut depth: i64 = prefix.components().count() as i64 - 1;
            for tc in target.components() {
                match tc {
                    Component::ParentDir => depth -= 1,
                    Component::Normal(_) => depth += 1,
                    _ => {}
                }
                if depth < 0 {
                    return Err(Error::Refused(format!(
                        "mount destination {dest:?} goes through symlink /{} -> {} which escapes the rootfs",
                        prefix.display(),
                        target.display()
                    )));
                }
            }
        }
        // The rest of the path is resolved by the kernel, confined to the rootfs.
        return Ok(());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dir,
    File,
}

/// Set the fs ids for the duration of a closure. Why: creating a mount target
/// through an idmapped rootfs as the VM's root fails (uid 0 has no mapping in
/// the mount's idmap); as the container's root (the range start) it is stored
/// as 0 on disk, which is what the image expects.
pub fn as_fsids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: setfsuid/setfsgid take plain integers; they return the previous ids.
    let old_u = unsafe { libc::setfsuid(uid) };
    // SAFETY: as above.
    let old_g = unsafe { libc::setfsgid(gid) };
    let r = f();
    // SAFETY: restore the previous ids.
    unsafe {
        libc::setfsgid(old_g as u32);
        libc::setfsuid(old_u as u32);
    }
    r
}

/// Resolve `dest` in `root`, creating missing components (directories, and the
/// last one as `kind`), and return an O_PATH fd to it.
pub fn ensure(root: BorrowedFd<'_>, dest: &str, kind: Kind, ids: (u32, u32)) -> Result<OwnedFd> {
    let rel = clean_dest(dest)?;
    check_symlinks(root, &rel, dest)?;
    ensure_rel(root, rel, kind, ids, dest, 0)
}

/// Lexically join a symlink target (read inside the rootfs) onto `base`,
/// clamping `..` at the rootfs's top, as the kernel does under RESOLVE_IN_ROOT.
fn in_root_join(base: &Path, target: &Path) -> PathBuf {
    let mut out = if target.is_absolute() {
        PathBuf::new()
    } else {
        base.to_path_buf()
    };
    for c in target.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn ensure_rel(
    root: BorrowedFd<'_>,
    rel: PathBuf,
    kind: Kind,
    ids: (u32, u32),
    dest: &str,
    depth: u32,
) -> Result<OwnedFd> {
    if depth > 40 {
        return Err(Error::Refused(format!(
            "mount destination {dest:?}: too many levels of symlinks"
        )));
    }
    if let Ok(fd) = open_in_root(root, &rel) {
        return Ok(fd);
    }
    let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
    let mut cur = PathBuf::new();
    for (i, name) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let next = cur.join(name);
        if open_in_root(root, &next).is_err() {
            // A dangling symlink on the way: create what it points to, inside the rootfs.
            if let Ok(l) = sys::openat2(
                root.as_raw_fd(),
                &next,
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                RESOLVE,
            ) {
                let st = nix::sys::stat::fstat(l.as_raw_fd())
                    .ctx(|| format!("stat /{}", next.display()))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                    let target = nix::fcntl::readlinkat(Some(l.as_raw_fd()), "")
                        .ctx(|| format!("readlink /{}", next.display()))?;
                    let mut redirected = in_root_join(&cur, Path::new(&target));
                    for rest in &comps[i + 1..] {
                        redirected.push(rest);
                    }
                    return ensure_rel(root, redirected, kind, ids, dest, depth + 1);
                }
            }

            let parent = open_in_root(root, &cur)
                .ctx(|| format!("open /{} in the rootfs", cur.display()))?;
            let cname = CString::new(name.as_bytes())
                .map_err(|_| Error::Bundle(format!("bad path {dest:?}")))?;
            let r = as_fsids(ids.0, ids.1, || {
                if last && kind == Kind::File {
                    create_empty(parent.as_fd(), &cname, false)
                } else {
                    // SAFETY: valid dirfd and C string.
                    match unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o755) } {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                }
            });
            if let Err(e) = r {
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e).ctx(|| format!("create /{} in the rootfs", next.display()));
                }
            }
        }
        cur = next;
    }
    open_in_root(root, &rel).ctx(|| format!("open {dest} in the rootfs"))
}

/// How often a file mount over a name in a shared `/dev` is tried again when
/// another container unlinks the name between our open and our mount.
const COVER_TRIES: usize = 8;

/// Mounts the detached file mount `tree` over `name` in `dir`, never following
/// a symlink there: whatever holds the name (a link, a file, a node) is covered
/// as it is, and a missing name becomes an empty file owned by `ids`. Why not
/// resolve it: in a volume over `/dev` the name is the volume's, and a link
/// there (CVE-2025-31133's shape) must not redirect the mount.
pub fn cover(
    tree: BorrowedFd<'_>,
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    ids: (u32, u32),
    what: &str,
) -> Result<()> {
    let mut last = None;
    for _ in 0..COVER_TRIES {
        let step = placeholder(dir, name, ids).and_then(|t| sys::move_mount_fd(tree, t.as_fd()));
        match step {
            Ok(()) => return Ok(()),
            // Unlinked or created between two steps: a container sharing the
            // directory is changing it; look again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EEXIST)) => {
                last = Some(e)
            }
            Err(e) => return Err(e).ctx(|| format!("mount onto {what}")),
        }
    }
    Err(Error::Refused(format!(
        "mount onto {what}: the name kept changing under the runtime ({}); \
         is another container rewriting a shared /dev volume?",
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

/// O_PATH fd of `name` in `dir` without following it, created empty (owned
/// by `ids`) if missing.
pub fn placeholder(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    ids: (u32, u32),
) -> std::io::Result<OwnedFd> {
    // O_PATH|O_NOFOLLOW hands back a link itself; no link is resolved on the
    // way, and nothing outside `dir` is reached.
    let open = || {
        sys::openat2(
            dir.as_raw_fd(),
            Path::new(std::ffi::OsStr::from_bytes(name.to_bytes())),
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
        )
    };
    match open() {
        Ok(fd) if is_dir(fd.as_fd()) => Err(std::io::Error::from_raw_os_error(libc::EISDIR)),
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let r = as_fsids(ids.0, ids.1, || create_empty(dir, name, true));
            r.and_then(|()| open())
        }
        Err(e) => Err(e),
    }
}

/// Creates `name` in `dir` as an empty 0644 file, never through a link there;
/// `exclusive` also fails when the name exists.
fn create_empty(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    exclusive: bool,
) -> std::io::Result<()> {
    let excl = if exclusive { libc::O_EXCL } else { 0 };
    // SAFETY: valid dirfd and C string; the fd is closed right away.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_CREAT | excl | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o644,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: we own fd.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Is the object behind an O_PATH fd a directory?
pub fn is_dir(fd: BorrowedFd<'_>) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_destinations_are_refused() {
        assert!(clean_dest("/a/../../etc").is_err());
        assert_eq!(clean_dest("/a/./b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(clean_dest("/").unwrap(), PathBuf::new());
    }
}
