//! What the guard knows about one container's mounts: the initial ones (made
//! by the runtime and locked by the kernel), the ones the guard protects
//! (masks, read-only paths, /proc, /sys), and the superblocks the container
//! created through the guard.

use std::collections::{HashMap, HashSet};

use super::mountinfo::{is_within, Entry, Flags};
use hull_guard_proto::{InitialMount, MountRole};

/// A mount as the guard names it: by the kernel's objects, never by a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountRef {
    /// Its unique mount id (never recycled), when the guard holds an fd on it.
    pub unique: Option<u64>,
    /// Its superblock.
    pub dev: u64,
    /// The inode of its root directory, when the guard holds an fd on that
    /// root: a bind or a copy (`unshare -m`) of a mount shows the same root
    /// object under another id.
    pub root_ino: Option<u64>,
}

/// What identifies one mount of the caller's namespace, learnt through an fd
/// on its root: (unique id, inode of its root directory).
pub type Ident = (u64, u64);

#[derive(Debug, Default)]
pub struct Knowledge {
    pub initial: Vec<Entry>,
    pub initial_devs: HashSet<u64>,
    /// The initial mounts the guard could reach, by unique id, with their
    /// path then (for the audit).
    pub initial_ids: HashMap<u64, String>,
    /// Superblocks nothing may be mounted onto: the container's /proc and
    /// /sys, and every mask.
    pub no_mount_devs: HashSet<u64>,
    /// Mounts never unmounted, moved or loosened (/proc, /sys, masks,
    /// read-only paths, those of fresh proc too), by unique id, with the
    /// path they had when the guard learnt of them (for the audit).
    pub protected: HashMap<u64, String>,
    /// The same mounts by root object (superblock, root inode), which their
    /// binds and copies share.
    pub protected_roots: HashMap<(u64, u64), String>,
    /// Root objects of the container's /proc and /sys (a fresh, masked proc
    /// or sysfs may cover them: that hides, never reveals).
    pub special_roots: HashSet<(u64, u64)>,
    /// Superblocks the container created through the guard (fresh proc and
    /// sysfs included: their masks are protected by id).
    pub created: HashSet<u64>,
    /// Superblocks with at least one protected mount.
    pub protected_devs: HashSet<u64>,
    /// Superblocks of protected mounts the guard could not reach to
    /// identify (covered by another mount, as the runtime's emulated
    /// /proc/sys files are by the read-only /proc/sys): every mount of
    /// them counts as protected.
    pub unidentified: HashMap<u64, String>,
    /// Unique ids of the mounts of the proc/sysfs trees the guard built and
    /// attached (top and masks): mounting on them is the container's own
    /// business. By id, not superblock: a fresh sysfs shares its superblock
    /// with the container's /sys.
    pub fresh: HashSet<u64>,
}

/// Why a flag change is refused, or `None` when it may go ahead.
pub type Refusal = Option<String>;

impl Knowledge {
    /// What the guard knows from the container's first process: its
    /// mountinfo `entries`, the mounts the runtime `declared` and the
    /// identity of each entry the guard could reach (`idents`, by mountinfo
    /// id). Also returns the protected mounts it could not identify (they
    /// are protected by superblock).
    pub fn from_initial(
        entries: Vec<Entry>,
        declared: &[InitialMount],
        idents: &HashMap<u64, Ident>,
    ) -> (Self, Vec<String>) {
        let mut k = Knowledge::default();
        let mut unknown = Vec::new();
        // The one place paths are compared: the runtime declares its masks
        // by destination, and before the container runs anything the
        // mountinfo of its first process says which mount that is. From
        // here on the guard knows them by id and root object.
        let guarded: Vec<&str> = declared
            .iter()
            .filter(|m| {
                matches!(
                    m.role,
                    MountRole::Masked | MountRole::ReadonlyPath | MountRole::Emulated
                )
            })
            .map(|m| m.destination.as_str())
            .collect();
        for e in &entries {
            k.initial_devs.insert(e.dev);
            let ident = idents.get(&e.id).copied();
            if let Some((unique, _)) = ident {
                k.initial_ids.insert(unique, e.mountpoint.clone());
            }
            let special = (e.mountpoint == "/proc" && e.fstype == "proc")
                || (e.mountpoint == "/sys" && e.fstype == "sysfs");
            let masked = guarded.contains(&e.mountpoint.as_str());
            if special || masked {
                match ident {
                    Some((unique, ino)) => {
                        k.protect(unique, e.dev, ino, &e.mountpoint);
                        if special {
                            k.special_roots.insert((e.dev, ino));
                        }
                    }
                    None => {
                        k.protected_devs.insert(e.dev);
                        k.unidentified.insert(e.dev, e.mountpoint.clone());
                        unknown.push(format!("{} (mount {})", e.mountpoint, e.id));
                    }
                }
            }
            if special || (masked && e.fstype == "tmpfs") {
                k.no_mount_devs.insert(e.dev);
            }
            if masked && e.root == "/null" {
                k.no_mount_devs.insert(e.dev);
            }
        }
        k.initial = entries;
        (k, unknown)
    }

    pub fn protect(&mut self, unique: u64, dev: u64, root_ino: u64, name: &str) {
        self.protected_devs.insert(dev);
        self.protected.insert(unique, name.to_string());
        self.protected_roots
            .insert((dev, root_ino), name.to_string());
    }

    /// The name of the protected mount `m` is (or is a bind or copy of), if
    /// it is one. A mount known only from mountinfo (no fd on its root)
    /// counts as protected when its superblock has protected mounts.
    pub fn protected_name(&self, m: &MountRef) -> Option<String> {
        if let Some(name) = m.unique.and_then(|u| self.protected.get(&u)) {
            return Some(name.clone());
        }
        // The top of a fresh sysfs has the root object of /sys (one
        // superblock per network namespace); it is the container's own.
        if m.unique.is_some_and(|u| self.fresh.contains(&u)) {
            return None;
        }
        if let Some(name) = self.unidentified.get(&m.dev) {
            return Some(name.clone());
        }
        match m.root_ino {
            Some(ino) => self.protected_roots.get(&(m.dev, ino)).cloned(),
            None => self
                .protected_devs
                .contains(&m.dev)
                .then(|| "a mount of a filesystem with protected mounts".to_string()),
        }
    }

    /// A superblock the container made and nothing of which is protected:
    /// the fast path, no mountinfo lookup needed.
    pub fn is_own(&self, dev: u64) -> bool {
        self.created.contains(&dev)
            && !self.initial_devs.contains(&dev)
            && !self.protected_devs.contains(&dev)
    }

    /// The initial mount a mount showing (dev, root) derives from (the
    /// closest one by root), if any.
    pub fn initial_of(&self, dev: u64, root: &str) -> Option<&Entry> {
        self.initial
            .iter()
            .filter(|i| i.dev == dev && is_within(root, &i.root))
            .max_by_key(|i| i.root.len())
    }

    /// May a mount (`m`; known by mountinfo `e`, or detached: `None`) go
    /// from its flags to `new`?
    pub fn flag_change(&self, m: &MountRef, e: Option<&Entry>, new: Flags) -> Refusal {
        let dev = m.dev;
        if let Some(e) = e {
            if self.protected_name(m).is_some() {
                let lost = e.flags.loosened_by(&new);
                if !lost.is_empty() {
                    return Some(format!(
                        "would drop {} of {}, a masked or read-only path",
                        lost.join(","),
                        e.mountpoint
                    ));
                }
                // Tightening a fresh proc's read-only path (an inner runtime
                // does) is fine; an initial one stays exactly as it is (below).
                if self
                    .initial_of(e.dev, &e.root)
                    .is_none_or(|i| i.root != e.root)
                {
                    return None;
                }
            }
        }
        if self.created.contains(&dev) && !self.initial_devs.contains(&dev) {
            return None;
        }
        match e {
            Some(e) => {
                if let Some(i) = self.initial_of(dev, &e.root) {
                    if i.root == e.root {
                        return Some(format!(
                            "flags of the initial mount {} are fixed (also through binds and copies of it)",
                            i.mountpoint
                        ));
                    }
                    let lost = i.flags.loosened_by(&new);
                    if !lost.is_empty() {
                        return Some(format!(
                            "would drop {} of the initial mount {} (through a bind of it)",
                            lost.join(","),
                            i.mountpoint
                        ));
                    }
                    return None;
                }
            }
            None => {
                // Detached: compare with every initial mount of that superblock.
                let mut any = false;
                for i in self.initial.iter().filter(|i| i.dev == dev) {
                    any = true;
                    let lost = i.flags.loosened_by(&new);
                    if !lost.is_empty() {
                        return Some(format!(
                            "would drop {} of the initial mount {} (through a detached copy)",
                            lost.join(","),
                            i.mountpoint
                        ));
                    }
                }
                if any {
                    return None;
                }
            }
        }
        if self.initial_devs.contains(&dev) {
            return None;
        }
        Some("not a mount the container made (its filesystem is neither initial nor created through the guard)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse;

    const INFO: &str = "\
100 90 0:50 / / rw,relatime - overlay overlay rw
101 100 0:51 / /proc rw,nosuid,nodev,noexec - proc proc rw
102 101 0:52 / /proc/keys ro,nosuid,nodev,noexec - tmpfs tmpfs ro
103 101 0:51 /sys /proc/sys ro,nosuid,nodev - proc proc rw
104 100 0:53 / /sys ro,nosuid,nodev,noexec - sysfs sysfs ro
105 100 8:1 /vol /ro ro,nosuid - ext4 /dev/vda rw
";

    fn k() -> Knowledge {
        let decl = vec![
            InitialMount {
                destination: "/proc/keys".into(),
                fstype: "mask".into(),
                source: String::new(),
                readonly: true,
                role: MountRole::Masked,
            },
            InitialMount {
                destination: "/proc/sys".into(),
                fstype: "bind".into(),
                source: "/proc/sys".into(),
                readonly: true,
                role: MountRole::ReadonlyPath,
            },
        ];
        // Every mount reachable: unique id = 1000 + mountinfo id, root inode = id.
        let idents = parse(INFO)
            .iter()
            .map(|e| (e.id, (1000 + e.id, e.id)))
            .collect();
        let (k, unknown) = Knowledge::from_initial(parse(INFO), &decl, &idents);
        assert!(unknown.is_empty());
        k
    }

    fn by_info(e: &Entry) -> MountRef {
        MountRef {
            unique: None,
            dev: e.dev,
            root_ino: None,
        }
    }

    #[test]
    fn initial_read_only_mounts_stay_read_only_through_binds() {
        let k = k();
        let vol = crate::mountinfo::makedev(8, 1);
        let rw = Flags::default();
        let same = parse("200 100 8:1 /vol /mnt ro,nosuid - ext4 /dev/vda rw").remove(0);
        assert!(k
            .flag_change(&by_info(&same), Some(&same), rw)
            .unwrap()
            .contains("fixed"));
        let sub = parse("201 100 8:1 /vol/sub /mnt ro,nosuid - ext4 /dev/vda rw").remove(0);
        assert!(k
            .flag_change(&by_info(&sub), Some(&sub), rw)
            .unwrap()
            .contains("drop ro"));
        let tighter = Flags {
            rdonly: true,
            nosuid: true,
            noexec: true,
            ..Default::default()
        };
        assert!(k.flag_change(&by_info(&sub), Some(&sub), tighter).is_none());
        let detached = MountRef {
            unique: Some(7),
            dev: vol,
            root_ino: Some(7),
        };
        assert!(k.flag_change(&detached, None, rw).is_some());
    }

    #[test]
    fn masks_and_proc_are_protected_by_id_and_root_and_created_mounts_are_free() {
        let mut k = k();
        let keys_dev = crate::mountinfo::makedev(0, 52);
        // The mask itself, by its unique id...
        let mask = MountRef {
            unique: Some(1102),
            dev: keys_dev,
            root_ino: Some(102),
        };
        assert_eq!(k.protected_name(&mask).as_deref(), Some("/proc/keys"));
        // ...a copy of it in another namespace (another id, same root)...
        let copy = MountRef {
            unique: Some(5000),
            ..mask
        };
        assert_eq!(k.protected_name(&copy).as_deref(), Some("/proc/keys"));
        // ...and, seen only in mountinfo, any mount of its superblock.
        assert!(k
            .protected_name(&MountRef {
                unique: None,
                dev: keys_dev,
                root_ino: None
            })
            .is_some());
        // A bind of a directory below a read-only path is not the path.
        let proc_dev = crate::mountinfo::makedev(0, 51);
        let below = MountRef {
            unique: Some(5001),
            dev: proc_dev,
            root_ino: Some(4242),
        };
        assert!(k.protected_name(&below).is_none());
        // The top of a fresh tree with /sys's root object is the container's.
        let sys_dev = crate::mountinfo::makedev(0, 53);
        let fresh_sys = MountRef {
            unique: Some(6000),
            dev: sys_dev,
            root_ino: Some(104),
        };
        assert_eq!(k.protected_name(&fresh_sys).as_deref(), Some("/sys"));
        k.fresh.insert(6000);
        assert!(k.protected_name(&fresh_sys).is_none());
        assert!(k.no_mount_devs.contains(&crate::mountinfo::makedev(0, 51)));
        assert!(k.no_mount_devs.contains(&crate::mountinfo::makedev(0, 52)));
        let own = MountRef {
            unique: Some(7000),
            dev: crate::mountinfo::makedev(0, 99),
            root_ino: Some(1),
        };
        assert!(k.flag_change(&own, None, Flags::default()).is_some());
        k.created.insert(own.dev);
        assert!(k.flag_change(&own, None, Flags::default()).is_none());
    }

    #[test]
    fn a_protected_mount_the_guard_cannot_identify_is_protected_by_superblock() {
        let (k, unknown) = Knowledge::from_initial(parse(INFO), &[], &HashMap::new());
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert!(unknown[0].contains("/proc"), "{unknown:?}");
        assert!(k.protected.is_empty());
        // Protected by superblock instead, whatever fd names them.
        let proc_mount = MountRef {
            unique: Some(9),
            dev: crate::mountinfo::makedev(0, 51),
            root_ino: Some(9),
        };
        assert_eq!(k.protected_name(&proc_mount).as_deref(), Some("/proc"));
    }
}
