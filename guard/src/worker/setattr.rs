//! mount_setattr(2): flag changes vetted mount by mount (recursively
//! through the caller's mountinfo), id-mapping with the caller's userns fd.

use super::*;

impl Worker {
    pub(super) fn mount_setattr(
        &mut self,
        c: &mut Caller,
        dir: i32,
        path: &[u8],
        flags: u32,
        attr: Option<&[u8]>,
    ) -> Outcome {
        const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
        const AT_EMPTY_PATH: u32 = 0x1000;
        let Some(raw) = attr else {
            return Outcome::Done(Err(libc::EINVAL), "no mount_attr".into());
        };
        let word =
            |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let mut at = sysx::MountAttr {
            attr_set: word(0),
            attr_clr: word(1),
            propagation: word(2),
            userns_fd: word(3),
        };
        let f = match self.resolve(
            c,
            dir,
            path,
            flags & AT_SYMLINK_NOFOLLOW == 0,
            flags & AT_EMPTY_PATH != 0,
        ) {
            Ok(f) => f,
            Err(e) => return Outcome::Done(Err(errno_of(&e)), "path does not resolve".into()),
        };
        let st = match sysx::statx_fd(f.as_fd()) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(errno_of(&e), "statx".into()),
        };
        let flag_bits = policy::MOUNT_ATTR_RDONLY
            | policy::MOUNT_ATTR_NOSUID
            | policy::MOUNT_ATTR_NODEV
            | policy::MOUNT_ATTR_NOEXEC;
        if (at.attr_set | at.attr_clr) & flag_bits != 0 {
            let info = match self.mountinfo(c) {
                Ok(i) => i,
                Err(e) => return Outcome::Error(errno_of(&e), format!("mountinfo: {e}")),
            };
            let mut ids = vec![st.mnt_id];
            if flags & sysx::AT_RECURSIVE != 0 {
                let mut i = 0;
                while i < ids.len() {
                    let p = ids[i];
                    ids.extend(
                        info.iter()
                            .filter(|e| e.parent == p && e.id != p)
                            .map(|e| e.id),
                    );
                    i += 1;
                }
            }
            let target = match mount_ref(f.as_fd(), &st) {
                Ok(m) => m,
                Err(why) => return Outcome::Error(libc::EPERM, why),
            };
            for id in ids {
                let e = info.iter().find(|e| e.id == id);
                // The submounts of a recursive change are known from
                // mountinfo only (no fd on them).
                let (m, now) = match e {
                    Some(e) if id != st.mnt_id => (
                        MountRef {
                            unique: None,
                            dev: e.dev,
                            root_ino: None,
                        },
                        e.flags,
                    ),
                    Some(e) => (target, e.flags),
                    None => (target, flags_now(f.as_fd())),
                };
                let new = policy::apply_attrs(now, at.attr_set, at.attr_clr);
                if let Some(why) = self.known.flag_change(&m, e, new) {
                    return deny(why);
                }
            }
        }
        let _ns;
        if at.attr_set & policy::MOUNT_ATTR_IDMAP != 0 {
            match self.getfd(c, at.userns_fd as i32) {
                Ok(u) => {
                    at.userns_fd = u.as_raw_fd() as u64;
                    _ns = Some(u);
                }
                Err(e) => return Outcome::Done(Err(errno_of(&e)), "userns fd".into()),
            }
        }
        match sysx::mount_setattr_fd(f.as_fd(), flags & sysx::AT_RECURSIVE, &at) {
            Ok(()) => Outcome::Done(Ok(0), "mount_setattr allowed".into()),
            Err(e) => Outcome::Done(Err(errno_of(&e)), "mount_setattr".into()),
        }
    }
}

pub(super) fn flags_now(fd: BorrowedFd<'_>) -> Flags {
    match nix::sys::statvfs::fstatvfs(fd) {
        Ok(s) => {
            use nix::sys::statvfs::FsFlags;
            let f = s.flags();
            Flags {
                rdonly: f.contains(FsFlags::ST_RDONLY),
                nosuid: f.contains(FsFlags::ST_NOSUID),
                nodev: f.contains(FsFlags::ST_NODEV),
                noexec: f.contains(FsFlags::ST_NOEXEC),
            }
        }
        Err(_) => Flags::default(),
    }
}
