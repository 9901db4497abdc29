//! The new mount API's filesystem-context calls: fsopen(2) (allow-listed
//! types, performed by the guard), fsconfig(2) (on contexts the guard
//! created; paths and fds resolved and checked), fsmount(2) (runs as the
//! caller: no pointer argument) and fspick(2) (only superblocks the
//! container created).

use super::*;

impl Worker {
    pub(super) fn fsopen(&mut self, c: &Caller, fstype: &[u8], flags: u32) -> Outcome {
        let t = String::from_utf8_lossy(fstype).into_owned();
        match policy::filesystem(&t) {
            Ok(FsKind::Proc) | Ok(FsKind::Sysfs) => {
                return deny("fresh proc and sysfs are built masked through mount(2) only")
            }
            Ok(_) => {}
            Err(why) => return deny(why),
        }
        let ns = match t.as_str() {
            "cgroup2" => self.join(c, "cgroup", libc::CLONE_NEWCGROUP),
            "mqueue" => self.join(c, "ipc", libc::CLONE_NEWIPC),
            _ => Ok(()),
        };
        if let Err(e) = ns {
            return Outcome::Error(errno_of(&e), format!("join namespace: {e}"));
        }
        match sysx::fsopen(fstype) {
            Ok(fd) => Outcome::Fd(fd, flags & 1 != 0, format!("fsopen of {t} (allow-listed)")),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "fsopen".into()),
        }
    }

    pub(super) fn fsconfig(
        &mut self,
        c: &mut Caller,
        fd: i32,
        cmd: u32,
        key: &Option<Vec<u8>>,
        val: &Option<Vec<u8>>,
        aux: i32,
    ) -> Outcome {
        let ctx = match self.getfd(c, fd) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "not an fd of the caller".into()),
        };
        let k = key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        let ckey = match key.as_deref().map(sysx::cstring).transpose() {
            Ok(k) => k,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "key".into()),
        };
        let mut keep: Vec<OwnedFd> = Vec::new();
        let r: std::io::Result<()> = match cmd {
            sysx::FSCONFIG_SET_FLAG
            | sysx::FSCONFIG_CMD_CREATE
            | sysx::FSCONFIG_CMD_CREATE_EXCL
            | sysx::FSCONFIG_CMD_RECONFIGURE => {
                sysx::fsconfig(ctx.as_fd(), cmd, ckey.as_ref(), sysx::FsValue::None, 0)
            }
            sysx::FSCONFIG_SET_STRING => {
                let v = val.clone().unwrap_or_default();
                let mut value = v.clone();
                let kk = k.clone().unwrap_or_default();
                if policy::overlay_path_key(&kk) {
                    let mut names = Vec::new();
                    for layer in policy::split_layers(&String::from_utf8_lossy(&v)) {
                        match self.layer(c, layer.as_bytes()) {
                            Ok(f) => {
                                names.push(f.as_raw_fd().to_string());
                                keep.push(f);
                            }
                            Err(o) => return o,
                        }
                    }
                    value = names.join(":").into_bytes();
                } else if kk == "source" {
                    if let Err(why) = self.check_source_not_block(c, &v) {
                        return deny(why);
                    }
                } else if kk == "fd" {
                    let n = String::from_utf8_lossy(&v).parse::<i32>().unwrap_or(-1);
                    match self.getfd(c, n) {
                        Ok(f) => {
                            value = f.as_raw_fd().to_string().into_bytes();
                            keep.push(f);
                        }
                        Err(e) => return Outcome::Done(Err(errno_of(&e)), "fd".into()),
                    }
                }
                match sysx::cstring(&value) {
                    Ok(cv) => {
                        sysx::fsconfig(ctx.as_fd(), cmd, ckey.as_ref(), sysx::FsValue::Str(&cv), 0)
                    }
                    Err(e) => Err(e),
                }
            }
            sysx::FSCONFIG_SET_BINARY => {
                let v = val.clone().unwrap_or_default();
                sysx::fsconfig(ctx.as_fd(), cmd, ckey.as_ref(), sysx::FsValue::Bytes(&v), 0)
            }
            sysx::FSCONFIG_SET_PATH | sysx::FSCONFIG_SET_PATH_EMPTY | sysx::FSCONFIG_SET_FD => {
                let obj = if cmd == sysx::FSCONFIG_SET_FD {
                    self.getfd(c, aux)
                } else {
                    let p = val.clone().unwrap_or_default();
                    self.resolve(c, aux, &p, true, cmd == sysx::FSCONFIG_SET_PATH_EMPTY)
                };
                let obj = match obj {
                    Ok(o) => o,
                    Err(e) => {
                        return Outcome::Done(
                            Err(errno_of(&e)),
                            "path or fd does not resolve".into(),
                        )
                    }
                };
                let ty = sysx::fstatfs_type(obj.as_fd()).unwrap_or(0);
                let st = sysx::statx_fd(obj.as_fd()).ok();
                if ty == sysx::PROC_SUPER_MAGIC
                    || ty == sysx::SYSFS_MAGIC
                    || st
                        .as_ref()
                        .is_some_and(|s| self.known.no_mount_devs.contains(&s.dev))
                {
                    return deny(
                        "a filesystem built from /proc, /sys or a masked path would unmask it",
                    );
                }
                if st
                    .as_ref()
                    .is_some_and(|s| s.mode & libc::S_IFMT == libc::S_IFBLK)
                {
                    return deny("block devices are never mounted in containers");
                }
                let empty = std::ffi::CString::default();
                if cmd == sysx::FSCONFIG_SET_FD {
                    sysx::fsconfig(
                        ctx.as_fd(),
                        cmd,
                        ckey.as_ref(),
                        sysx::FsValue::None,
                        obj.as_raw_fd(),
                    )
                } else {
                    sysx::fsconfig(
                        ctx.as_fd(),
                        sysx::FSCONFIG_SET_PATH_EMPTY,
                        ckey.as_ref(),
                        sysx::FsValue::Str(&empty),
                        obj.as_raw_fd(),
                    )
                }
            }
            _ => Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        };
        drop(keep);
        match r {
            Ok(()) => Outcome::Done(Ok(0), "fsconfig on a context the guard created".into()),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "fsconfig".into()),
        }
    }

    /// fsmount(2) returns an O_PATH mount fd, which SECCOMP_IOCTL_NOTIF_ADDFD
    /// cannot install (the kernel's fget() skips O_PATH files), so the caller
    /// makes the call itself. That is no TOCTOU hole: fsmount has no pointer
    /// argument to rewrite, and every filesystem context in a container was
    /// made by the guard (fsopen and fspick are performed here), so whatever
    /// fd number the caller names, the superblock is one the guard vetted.
    pub(super) fn fsmount(&mut self, c: &mut Caller, fd: i32) -> Outcome {
        if let Err(e) = self.getfd(c, fd) {
            return Outcome::Done(Err(errno_of(&e)), "not an fd of the caller".into());
        }
        Outcome::Continue("fsmount of a context the guard created (no pointer argument)".into())
    }

    pub(super) fn fspick(&mut self, c: &mut Caller, dir: i32, path: &[u8], flags: u32) -> Outcome {
        const FSPICK_SYMLINK_NOFOLLOW: u32 = 2;
        const FSPICK_EMPTY_PATH: u32 = 8;
        let f = match self.resolve(
            c,
            dir,
            path,
            flags & FSPICK_SYMLINK_NOFOLLOW == 0,
            flags & FSPICK_EMPTY_PATH != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "path does not resolve".into()),
        };
        let st = match sysx::statx_fd(f.as_fd()) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(errno_of(&e), "statx".into()),
        };
        if !self.known.is_own(st.dev) || self.known.no_mount_devs.contains(&st.dev) {
            return deny("reconfiguring a filesystem the container did not create is refused");
        }
        match sysx::fspick_fd(f.as_fd(), flags & 4) {
            Ok(p) => Outcome::Fd(
                p,
                flags & 1 != 0,
                "fspick of a filesystem the container created".into(),
            ),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "fspick".into()),
        }
    }
}
