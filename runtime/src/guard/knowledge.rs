//! What the guard knows about one container's mounts: the initial ones (made
//! by the runtime and locked by the kernel), the ones the guard protects
//! (masks, read-only paths, /proc, /sys), and the superblocks the container
//! created through the guard.

use std::collections::HashSet;

use super::mountinfo::{is_within, Entry, Flags};
use crate::guard_proto::{InitialMount, MountRole};

#[derive(Debug, Default)]
pub struct Knowledge {
    pub initial: Vec<Entry>,
    pub initial_devs: HashSet<u64>,
    /// Superblocks nothing may be mounted onto: the container's /proc and
    /// /sys, and every mask.
    pub no_mount_devs: HashSet<u64>,
    /// (dev, root) pairs never unmounted, moved or changed.
    pub protected: HashSet<(u64, String)>,
    /// Superblocks the container created through the guard (fresh proc and
    /// sysfs included: their masks are protected by (dev, root)).
    pub created: HashSet<u64>,
    /// Superblocks with at least one protected (dev, root).
    pub protected_devs: HashSet<u64>,
    /// proc/sysfs superblocks the guard built for the container.
    pub fresh_devs: HashSet<u64>,
}

/// Why a flag change is refused, or `None` when it may go ahead.
pub type Refusal = Option<String>;

impl Knowledge {
    pub fn from_initial(entries: Vec<Entry>, declared: &[InitialMount]) -> Self {
        let mut k = Knowledge::default();
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
            let special = (e.mountpoint == "/proc" && e.fstype == "proc")
                || (e.mountpoint == "/sys" && e.fstype == "sysfs");
            let masked = guarded.contains(&e.mountpoint.as_str());
            if special || masked {
                k.protect(e.dev, e.root.clone());
            }
            if special || (masked && e.fstype == "tmpfs") {
                k.no_mount_devs.insert(e.dev);
            }
            if masked && e.root == "/null" {
                k.no_mount_devs.insert(e.dev);
            }
        }
        k.initial = entries;
        k
    }

    pub fn protect(&mut self, dev: u64, root: String) {
        self.protected_devs.insert(dev);
        self.protected.insert((dev, root));
    }

    /// A superblock the container made and nothing of which is protected:
    /// the fast path, no mountinfo lookup needed.
    pub fn is_own(&self, dev: u64) -> bool {
        self.created.contains(&dev)
            && !self.initial_devs.contains(&dev)
            && !self.protected_devs.contains(&dev)
    }

    pub fn is_protected(&self, e: &Entry) -> bool {
        self.protected.contains(&(e.dev, e.root.clone()))
    }

    /// The initial mount a mount showing (dev, root) derives from (the
    /// closest one by root), if any.
    pub fn initial_of(&self, dev: u64, root: &str) -> Option<&Entry> {
        self.initial
            .iter()
            .filter(|i| i.dev == dev && is_within(root, &i.root))
            .max_by_key(|i| i.root.len())
    }

    /// May a mount (known by mountinfo `e`, or detached: `None` with `dev`)
    /// go from its flags to `new`?
    pub fn flag_change(&self, dev: u64, e: Option<&Entry>, new: Flags) -> Refusal {
        if let Some(e) = e {
            if self.is_protected(e) {
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
    use crate::guard::mountinfo::parse;

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
        Knowledge::from_initial(parse(INFO), &decl)
    }

    #[test]
    fn initial_read_only_mounts_stay_read_only_through_binds() {
        let k = k();
        let vol = crate::guard::mountinfo::makedev(8, 1);
        let rw = Flags::default();
        let same = parse("200 100 8:1 /vol /mnt ro,nosuid - ext4 /dev/vda rw").remove(0);
        assert!(k
            .flag_change(vol, Some(&same), rw)
            .unwrap()
            .contains("fixed"));
        let sub = parse("201 100 8:1 /vol/sub /mnt ro,nosuid - ext4 /dev/vda rw").remove(0);
        assert!(k
            .flag_change(vol, Some(&sub), rw)
            .unwrap()
            .contains("drop ro"));
        let tighter = Flags {
            rdonly: true,
            nosuid: true,
            noexec: true,
            ..Default::default()
        };
        assert!(k.flag_change(vol, Some(&sub), tighter).is_none());
        assert!(k.flag_change(vol, None, rw).is_some());
    }

    #[test]
    fn masks_and_proc_are_protected_and_created_mounts_are_free() {
        let mut k = k();
        let keys = parse("300 101 0:52 / /proc/keys ro - tmpfs tmpfs ro").remove(0);
        assert!(k.is_protected(&keys));
        assert!(k
            .no_mount_devs
            .contains(&crate::guard::mountinfo::makedev(0, 51)));
        assert!(k
            .no_mount_devs
            .contains(&crate::guard::mountinfo::makedev(0, 52)));
        let own = crate::guard::mountinfo::makedev(0, 99);
        assert!(k.flag_change(own, None, Flags::default()).is_some());
        k.created.insert(own);
        assert!(k.flag_change(own, None, Flags::default()).is_none());
    }
}
