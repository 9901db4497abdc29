//! mount(2): bind remounts, superblock remounts, propagation, binds and
//! moves, and new filesystems (created by the guard as the container; a
//! fresh proc or sysfs built with the container's masks).

use super::*;

impl Worker {
    pub(super) fn mount(&mut self, c: &mut Caller, s: &[Option<Vec<u8>>], flags: u64) -> Outcome {
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

    pub(super) fn new_mount(
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

    #[allow(clippy::too_many_arguments)]
    pub(super) fn create(
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
    pub(super) fn fresh(
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
}

/// tmpfs shows its uid=/gid= in the VM's ids (the kernel prints them in the
/// initial user namespace), so a remount that restates /proc/mounts (busybox
/// does) would hand them back unparseable in the container's namespace:
/// map ids of the container's own range back to its view.
pub(super) fn translate_ids(data: &str, start: u32) -> String {
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

#[cfg(test)]
mod tests {
    use super::translate_ids;

    #[test]
    fn remount_ids_come_back_to_the_containers_view() {
        assert_eq!(
            translate_ids("size=1m,uid=100000,gid=100005", 100_000),
            "size=1m,uid=0,gid=5"
        );
        assert_eq!(translate_ids("uid=5", 100_000), "uid=5");
    }
}
