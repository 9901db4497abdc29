//! What a mount is, by the kernel's objects (unique mount id, root object,
//! superblock), and the checks several calls share: may something be
//! mounted there, may that mount move, is a source a block device, may a
//! directory be an overlay layer.

use super::*;

impl Worker {
    /// May something be mounted at (or on top of) `t` (`fd` is on it)? Not
    /// on the container's own /proc or /sys or their masks and read-only
    /// paths; on a proc or sysfs the guard built, yes, masks included (an
    /// inner runtime masks its proc again, which hides and never reveals).
    /// Decided on the mount's unique id and root object: the caller's
    /// mountinfo leaves out every mount outside its root, and a fresh sysfs
    /// shares the superblock of the container's /sys.
    pub(super) fn target_ok(&self, fd: BorrowedFd<'_>, t: &Stat) -> Result<(), String> {
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

    /// May the mount behind `fd` be moved (MS_MOVE / move_mount)? Returns
    /// its superblock when it is detached (from fsmount or an open_tree clone).
    pub(super) fn movable(&self, fd: BorrowedFd<'_>) -> Result<Option<u64>, String> {
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

    pub(super) fn check_source_not_block(&self, c: &mut Caller, src: &[u8]) -> Result<(), String> {
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

    /// Resolve and check one overlay layer; the fd stands for it from here on.
    pub(super) fn layer(&self, c: &mut Caller, p: &[u8]) -> Result<OwnedFd, Outcome> {
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
}

/// The identity (unique id, root inode) of each mountinfo entry reachable
/// at its mountpoint under `root` (the process's root directory the
/// entries were read for). A mount covered by another is not reachable and
/// gets none; the path is only a way to the object, which must then be the
/// root of the very mount the entry names.
pub(super) fn identify(root: &OwnedFd, entries: &[Entry]) -> HashMap<u64, Ident> {
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
pub(super) fn identify_beneath(top: &OwnedFd, rel: &str) -> std::io::Result<(Stat, u64)> {
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
pub(super) fn mount_ref(fd: BorrowedFd<'_>, st: &Stat) -> Result<MountRef, String> {
    let unique = sysx::mnt_id_unique(fd).map_err(|e| format!("unique mount id: {e}"))?;
    Ok(MountRef {
        unique: Some(unique),
        dev: st.dev,
        root_ino: st.mount_root.then_some(st.ino),
    })
}
