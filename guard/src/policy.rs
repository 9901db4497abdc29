//! Pure vetting rules: which filesystems, which kinds of mount(2) call, which
//! flag changes. No I/O here; the worker feeds it resolved objects.

use super::mountinfo::Flags;

pub const MS_RDONLY: u64 = 1;
pub const MS_NOSUID: u64 = 2;
pub const MS_NODEV: u64 = 4;
pub const MS_NOEXEC: u64 = 8;
pub const MS_SYNCHRONOUS: u64 = 16;
pub const MS_REMOUNT: u64 = 32;
pub const MS_MANDLOCK: u64 = 64;
pub const MS_DIRSYNC: u64 = 128;
pub const MS_NOSYMFOLLOW: u64 = 256;
pub const MS_NOATIME: u64 = 1024;
pub const MS_NODIRATIME: u64 = 2048;
pub const MS_BIND: u64 = 4096;
pub const MS_MOVE: u64 = 8192;
pub const MS_REC: u64 = 16384;
pub const MS_UNBINDABLE: u64 = 1 << 17;
pub const MS_PRIVATE: u64 = 1 << 18;
pub const MS_SLAVE: u64 = 1 << 19;
pub const MS_SHARED: u64 = 1 << 20;
pub const MS_STRICTATIME: u64 = 1 << 24;
pub const MS_LAZYTIME: u64 = 1 << 25;
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xc0ed_0000;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// Filesystem types a container may create (documented in docs/security.md).
/// Each is either a memory filesystem, a view of the container's own
/// namespaces, or (overlay, fuse) built only from what the container can
/// already reach.
pub const ALLOWED_FS: &[&str] = &[
    "tmpfs", "overlay", "proc", "sysfs", "cgroup2", "mqueue", "devpts", "fuse",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// Created as asked, in the caller's namespaces.
    Plain,
    /// Layers are resolved and checked first.
    Overlay,
    /// Built by the guard with the container's masks.
    Proc,
    Sysfs,
}

pub fn filesystem(fstype: &str) -> Result<FsKind, String> {
    match fstype {
        "proc" => Ok(FsKind::Proc),
        "sysfs" => Ok(FsKind::Sysfs),
        "overlay" => Ok(FsKind::Overlay),
        "cgroup" => Err(
            "cgroup v1 hierarchies are refused (release_agent, CVE-2022-0492); use cgroup2".into(),
        ),
        t if ALLOWED_FS.contains(&t) => Ok(FsKind::Plain),
        t => Err(format!(
            "filesystem type {t:?} is not in hull's allow-list ({})",
            ALLOWED_FS.join(", ")
        )),
    }
}

/// What a mount(2) call does, in the kernel's own order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOp {
    /// MS_REMOUNT|MS_BIND: this mount's flags only.
    BindRemount,
    /// MS_REMOUNT: the superblock (and the mount's flags).
    Remount,
    Bind {
        recursive: bool,
    },
    Propagation,
    Move,
    New,
}

pub fn strip_magic(flags: u64) -> u64 {
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags & !MS_MGC_MSK
    } else {
        flags
    }
}

pub fn classify(flags: u64) -> MountOp {
    let f = strip_magic(flags);
    if f & MS_REMOUNT != 0 && f & MS_BIND != 0 {
        MountOp::BindRemount
    } else if f & MS_REMOUNT != 0 {
        MountOp::Remount
    } else if f & MS_BIND != 0 {
        MountOp::Bind {
            recursive: f & MS_REC != 0,
        }
    } else if f & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE) != 0 {
        MountOp::Propagation
    } else if f & MS_MOVE != 0 {
        MountOp::Move
    } else {
        MountOp::New
    }
}

pub fn flags_of_ms(f: u64) -> Flags {
    Flags {
        rdonly: f & MS_RDONLY != 0,
        nosuid: f & MS_NOSUID != 0,
        nodev: f & MS_NODEV != 0,
        noexec: f & MS_NOEXEC != 0,
    }
}

/// mount_setattr's attributes for the per-mount bits of legacy flags.
pub fn attrs_of_ms(f: u64) -> u64 {
    let mut a = 0;
    for (m, at) in [
        (MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MS_NODEV, MOUNT_ATTR_NODEV),
        (MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MS_NOATIME, MOUNT_ATTR_NOATIME),
        (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
        (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if f & m != 0 {
            a |= at;
        }
    }
    a
}

/// The flags a mount would have after mount_setattr(set, clr) from `now`.
pub fn apply_attrs(now: Flags, set: u64, clr: u64) -> Flags {
    let bit = |cur: bool, m: u64| (cur && clr & m == 0) || set & m != 0;
    Flags {
        rdonly: bit(now.rdonly, MOUNT_ATTR_RDONLY),
        nosuid: bit(now.nosuid, MOUNT_ATTR_NOSUID),
        nodev: bit(now.nodev, MOUNT_ATTR_NODEV),
        noexec: bit(now.noexec, MOUNT_ATTR_NOEXEC),
    }
}

/// Split a legacy option string at commas not escaped by a backslash.
pub fn split_options(data: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in data.chars() {
        if esc {
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            cur.push(c);
            esc = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out.retain(|s| !s.is_empty());
    out
}

/// overlayfs options whose values are paths (':'-separated lists for lowerdir).
pub fn overlay_path_key(key: &str) -> bool {
    matches!(
        key,
        "lowerdir" | "upperdir" | "workdir" | "lowerdir+" | "datadir+"
    )
}

/// Split an overlay lowerdir value at ':' not escaped by a backslash, and unescape.
pub fn split_layers(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in v.chars() {
        if esc {
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == ':' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_calls_are_classified_like_the_kernel_does() {
        assert_eq!(
            classify(MS_REMOUNT | MS_BIND | MS_RDONLY),
            MountOp::BindRemount
        );
        assert_eq!(classify(MS_REMOUNT | MS_RDONLY), MountOp::Remount);
        assert_eq!(
            classify(MS_BIND | MS_REC),
            MountOp::Bind { recursive: true }
        );
        assert_eq!(classify(MS_PRIVATE | MS_REC), MountOp::Propagation);
        assert_eq!(classify(MS_MOVE), MountOp::Move);
        assert_eq!(classify(0xc0ed_0000 | MS_NOSUID), MountOp::New);
    }

    #[test]
    fn filesystems_outside_the_list_and_cgroup_v1_are_refused() {
        assert_eq!(filesystem("tmpfs"), Ok(FsKind::Plain));
        assert_eq!(filesystem("proc"), Ok(FsKind::Proc));
        assert!(filesystem("cgroup").unwrap_err().contains("CVE-2022-0492"));
        assert!(filesystem("ext4").unwrap_err().contains("allow-list"));
        assert!(filesystem("securityfs").is_err());
        assert!(filesystem("binfmt_misc").is_err());
    }

    #[test]
    fn attrs_model_set_and_clear() {
        let ro = Flags {
            rdonly: true,
            ..Default::default()
        };
        assert!(!apply_attrs(ro, 0, MOUNT_ATTR_RDONLY).rdonly);
        assert!(apply_attrs(ro, MOUNT_ATTR_NOSUID, 0).nosuid);
        assert_eq!(
            attrs_of_ms(MS_RDONLY | MS_NOEXEC),
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC
        );
    }

    #[test]
    fn option_strings_split_on_unescaped_separators() {
        assert_eq!(
            split_options("size=1m,mode=755"),
            vec!["size=1m", "mode=755"]
        );
        assert_eq!(split_options("lowerdir=/a\\,b,upperdir=/u").len(), 2);
        assert_eq!(split_layers("/a:/b\\:c"), vec!["/a", "/b:c"]);
    }
}
