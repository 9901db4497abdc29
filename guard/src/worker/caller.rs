//! Reaching the caller's objects: its /proc directory, its mount
//! namespace, root and cwd (entered), its fds (through a pidfd), its paths
//! resolved exactly as the kernel would resolve them for it, its mountinfo.

use super::*;

impl Worker {
    /// Our /proc/<tid> directory (cached; `fresh` reopens it).
    pub(super) fn tid_dir(&mut self, tid: i32, fresh: bool) -> std::io::Result<RawFd> {
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

    pub(super) fn valid(&self, c: &Caller) -> bool {
        self.listeners.iter().any(|(_, l)| l.id_valid(c.id))
    }

    /// Enter the caller's mount namespace and root. Both are remembered:
    /// a caller in the same namespace with the same root (same mount, same
    /// directory) costs two statx calls, not a setns and a chroot. The cwd is
    /// taken only when a relative path needs it (see `resolve`).
    pub(super) fn enter(&mut self, c: &mut Caller) -> std::io::Result<()> {
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
    pub(super) fn join(
        &mut self,
        c: &Caller,
        name: &'static str,
        flag: i32,
    ) -> std::io::Result<()> {
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
    pub(super) fn nested_ok(&self, c: &Caller) -> Result<(), String> {
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
    pub(super) fn getfd(&self, c: &mut Caller, fd: i32) -> std::io::Result<OwnedFd> {
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
    pub(super) fn resolve(
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

    pub(super) fn mountinfo(&self, c: &Caller) -> std::io::Result<Vec<Entry>> {
        let f = sysx::open_at(c.dir, "mountinfo", libc::O_RDONLY)?;
        let s = std::io::read_to_string(std::fs::File::from(f))?;
        Ok(mountinfo::parse(&s))
    }

    pub(super) fn entry(&self, c: &Caller, mnt_id: u64) -> std::io::Result<Option<Entry>> {
        Ok(self.mountinfo(c)?.into_iter().find(|e| e.id == mnt_id))
    }

    /// mountinfo entry for a target, or None on the fast path (a superblock
    /// the container created needs no lookup).
    pub(super) fn entry_for(&self, c: &Caller, t: &Stat) -> std::io::Result<Option<Entry>> {
        if self.known.is_own(t.dev) {
            return Ok(None);
        }
        self.entry(c, t.mnt_id)
    }

    pub(super) fn root_mnt(&self, c: &Caller) -> Option<u64> {
        c.root_mnt
    }
}
