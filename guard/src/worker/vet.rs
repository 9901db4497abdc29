//! The steps every trapped call goes through before its own vetting: copy
//! the arguments once, check the caller's capability and user namespace,
//! enter its mount namespace and root, check the notification is still
//! live; then hand the call to its family's file.

use super::*;

impl Worker {
    pub(super) fn vet(
        &mut self,
        n: &Notif,
        nr: i32,
        c: &mut Caller,
        args: &mut serde_json::Value,
    ) -> Outcome {
        let a = n.data.args;
        let tid = c.tid;
        // 1. Copy the arguments once.
        let read = (|| -> std::io::Result<Vec<Option<Vec<u8>>>> {
            Ok(match nr {
                NR_MOUNT => {
                    let data = match policy::classify(a[3]) {
                        MountOp::New | MountOp::Remount => a[4],
                        _ => 0,
                    };
                    read_cstrs(
                        tid,
                        &[
                            (a[0], PATH_MAX),
                            (a[1], PATH_MAX),
                            (a[2], 256),
                            (data, PATH_MAX),
                        ],
                    )?
                }
                NR_UMOUNT2 => read_cstrs(tid, &[(a[0], PATH_MAX)])?,
                NR_FSOPEN => vec![read_cstr(tid, a[0], 256)?],
                NR_FSCONFIG => {
                    let key = read_cstr(tid, a[2], 256)?;
                    let val = match a[1] as u32 {
                        sysx::FSCONFIG_SET_STRING
                        | sysx::FSCONFIG_SET_PATH
                        | sysx::FSCONFIG_SET_PATH_EMPTY => read_cstr(tid, a[3], PATH_MAX)?,
                        sysx::FSCONFIG_SET_BINARY if a[4] as usize <= 1 << 20 && a[3] != 0 => {
                            Some(read_bytes(tid, a[3], a[4] as usize)?)
                        }
                        _ => None,
                    };
                    vec![key, val]
                }
                NR_MOVE_MOUNT => vec![
                    read_cstr(tid, a[1], PATH_MAX)?,
                    read_cstr(tid, a[3], PATH_MAX)?,
                ],
                NR_OPEN_TREE | NR_FSPICK => vec![read_cstr(tid, a[1], PATH_MAX)?],
                NR_MOUNT_SETATTR => {
                    let size = (a[4] as usize).min(4096);
                    let attr = if size >= 32 && a[3] != 0 {
                        Some(read_bytes(tid, a[3], 32)?)
                    } else {
                        None
                    };
                    vec![read_cstr(tid, a[1], PATH_MAX)?, attr]
                }
                _ => vec![],
            })
        })();
        let s = match read {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Error(errno_of(&e), format!("cannot read the arguments: {e}"))
            }
        };
        if let Some(why) = &self.refuse_all {
            *args = describe(nr, &a, &s);
            return deny(why.clone());
        }
        // 2. The caller must hold CAP_SYS_ADMIN in the container's user namespace.
        let caps = match sysx::effective_caps(tid) {
            Ok(c) => c,
            Err(e) => return Outcome::Error(libc::EPERM, format!("capget: {e}")),
        };
        let userns = |dir: RawFd| {
            nix::sys::stat::fstatat(Some(dir), "ns/user", nix::fcntl::AtFlags::empty())
                .map(|st| st.st_ino)
        };
        let ino = match self.tid_dir(tid, false).map(|d| (d, userns(d))) {
            Ok((d, Ok(ino))) => Ok((d, ino)),
            // A cached directory of a task that has gone: look again.
            _ => self
                .tid_dir(tid, true)
                .and_then(|d| userns(d).map(|i| (d, i)).map_err(std::io::Error::from)),
        };
        let in_userns = match ino {
            Ok((d, ino)) => {
                c.dir = d;
                ino == self.userns_ino
            }
            Err(e) => return Outcome::Error(errno_of(&e), format!("/proc/{tid}: {e}")),
        };
        // 3. Enter its mount namespace, root and cwd; then check the call is
        // still the same live thread's before trusting anything we read.
        if let Err(e) = self.enter(c) {
            return Outcome::Error(
                errno_of(&e),
                format!("cannot enter the caller's namespace: {e}"),
            );
        }
        if !self.valid(c) {
            return Outcome::Error(libc::ESRCH, "the caller went away".into());
        }
        *args = describe(nr, &a, &s);
        if !in_userns {
            if let Err(why) = self.nested_ok(c) {
                return deny(why);
            }
        }
        if caps & (1 << sysx::CAP_SYS_ADMIN) == 0 {
            return deny("the caller lacks CAP_SYS_ADMIN");
        }
        let r = match nr {
            NR_MOUNT => self.mount(c, &s, a[3]),
            NR_UMOUNT2 => self.umount(c, s[0].as_deref().unwrap_or_default(), a[1] as i32),
            NR_FSOPEN => self.fsopen(c, s[0].as_deref().unwrap_or_default(), a[1] as u32),
            NR_FSCONFIG => self.fsconfig(c, a[0] as i32, a[1] as u32, &s[0], &s[1], a[4] as i32),
            NR_FSMOUNT => self.fsmount(c, a[0] as i32),
            NR_MOVE_MOUNT => self.move_mount(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as i32,
                s[1].as_deref().unwrap_or_default(),
                a[4] as u32,
            ),
            NR_OPEN_TREE => self.open_tree(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as u32,
            ),
            NR_MOUNT_SETATTR => self.mount_setattr(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as u32,
                s[1].as_deref(),
            ),
            NR_FSPICK => self.fspick(
                c,
                a[0] as i32,
                s[0].as_deref().unwrap_or_default(),
                a[2] as u32,
            ),
            _ => Outcome::Error(libc::ENOSYS, "not a mount-family call".into()),
        };
        r
    }
}

/// The arguments as the audit log shows them.
pub(super) fn describe(nr: i32, a: &[u64; 6], s: &[Option<Vec<u8>>]) -> serde_json::Value {
    match nr {
        NR_MOUNT => json!({"source": lossy(&s[0]), "target": lossy(&s[1]), "fstype": lossy(&s[2]),
                            "flags": format!("{:#x}", a[3]), "data": lossy(&s[3])}),
        NR_UMOUNT2 => json!({"target": lossy(&s[0]), "flags": a[1]}),
        NR_FSOPEN => json!({"fstype": lossy(&s[0]), "flags": a[1]}),
        NR_FSCONFIG => json!({"fd": a[0] as i32, "cmd": a[1], "key": lossy(&s[0]),
                              "value": if a[1] == 2 { serde_json::Value::Null } else { lossy(&s[1]) }, "aux": a[4] as i32}),
        NR_FSMOUNT => json!({"fd": a[0] as i32, "flags": a[1], "attrs": format!("{:#x}", a[2])}),
        NR_MOVE_MOUNT => {
            json!({"from_dfd": a[0] as i32, "from": lossy(&s[0]), "to_dfd": a[2] as i32,
                                "to": lossy(&s[1]), "flags": format!("{:#x}", a[4])})
        }
        NR_OPEN_TREE | NR_FSPICK => {
            json!({"dfd": a[0] as i32, "path": lossy(&s[0]), "flags": format!("{:#x}", a[2])})
        }
        NR_MOUNT_SETATTR => {
            let attr = s.get(1).and_then(|v| v.as_ref()).map(|raw| {
                let w = |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                json!({"set": format!("{:#x}", w(0)), "clr": format!("{:#x}", w(1)), "propagation": format!("{:#x}", w(2))})
            });
            json!({"dfd": a[0] as i32, "path": lossy(&s[0]), "flags": format!("{:#x}", a[2]), "attr": attr})
        }
        _ => json!({}),
    }
}
