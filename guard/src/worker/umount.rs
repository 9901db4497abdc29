//! umount2(2): never `/`, /proc, /sys, their masks and read-only paths;
//! the mount is named through its parent directory so the guard's own fd
//! does not pin it.

use super::*;

impl Worker {
    pub(super) fn umount(&mut self, c: &mut Caller, target: &[u8], flags: i32) -> Outcome {
        const UMOUNT_NOFOLLOW: i32 = 8;
        let follow = flags & UMOUNT_NOFOLLOW == 0;
        // Resolve the parent directory and then the last component, so the
        // call can later name the mount as "<parent fd>/<name>" without
        // holding an fd on it (which would make it busy).
        let mut named: Option<(OwnedFd, Vec<u8>)> = None;
        // The statx of the fd that becomes `tfd`, when already taken.
        let mut known_st: Option<Stat> = None;
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
                let t_st = sysx::statx_fd(t.as_fd()).ok();
                let link = t_st
                    .as_ref()
                    .is_some_and(|s| s.mode & libc::S_IFMT == libc::S_IFLNK);
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
                    known_st = t_st;
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
        let st = match known_st.map_or_else(|| sysx::statx_fd(tfd.as_fd()), Ok) {
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
}

/// (directory part, last component) of a path whose last component is a
/// plain name; None for "/", ".", ".." endings and the caller's own
/// /proc/self paths (resolved through its fds instead).
pub(super) fn split_last(p: &[u8]) -> Option<(&[u8], &[u8])> {
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
pub(super) fn readlink_fd(fd_dir: BorrowedFd<'_>, fd: i32) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = nix::fcntl::readlinkat(Some(fd_dir.as_raw_fd()), fd.to_string().as_str()).ok()?;
    let b = p.as_bytes().to_vec();
    (b.starts_with(b"/") && !b.ends_with(b" (deleted)")).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::split_last;

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
