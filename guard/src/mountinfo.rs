//! `/proc/PID/mountinfo`, parsed: how the guard learns which superblock and
//! which part of it a mount shows (its `root`), in the caller's namespace.

use std::collections::HashMap;

/// The per-mount flags the vetting cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub rdonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl Flags {
    /// What `other` would drop of ours (a loosening), by name.
    pub fn loosened_by(&self, other: &Flags) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.rdonly && !other.rdonly {
            v.push("ro");
        }
        if self.nosuid && !other.nosuid {
            v.push("nosuid");
        }
        if self.nodev && !other.nodev {
            v.push("nodev");
        }
        if self.noexec && !other.noexec {
            v.push("noexec");
        }
        v
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: u64,
    pub parent: u64,
    pub dev: u64,
    pub root: String,
    pub mountpoint: String,
    pub flags: Flags,
    pub fstype: String,
    pub source: String,
}

/// mountinfo's fields: the kernel escapes space, tab, newline and backslash as \ooo.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn makedev(major: u64, minor: u64) -> u64 {
    libc::makedev(major as u32, minor as u32)
}

pub fn parse_line(line: &str) -> Option<Entry> {
    let (head, tail) = line.split_once(" - ")?;
    let h: Vec<&str> = head.split(' ').collect();
    let t: Vec<&str> = tail.split(' ').collect();
    if h.len() < 6 || t.len() < 2 {
        return None;
    }
    let (maj, min) = h[2].split_once(':')?;
    let mut flags = Flags::default();
    for o in h[5].split(',') {
        match o {
            "ro" => flags.rdonly = true,
            "nosuid" => flags.nosuid = true,
            "nodev" => flags.nodev = true,
            "noexec" => flags.noexec = true,
            _ => {}
        }
    }
    Some(Entry {
        id: h[0].parse().ok()?,
        parent: h[1].parse().ok()?,
        dev: makedev(maj.parse().ok()?, min.parse().ok()?),
        root: unescape(h[3]),
        mountpoint: unescape(h[4]),
        flags,
        fstype: t[0].to_string(),
        source: unescape(t[1]),
    })
}

pub fn parse(s: &str) -> Vec<Entry> {
    s.lines().filter_map(parse_line).collect()
}

/// Mounts by id, for lookups by `statx(STATX_MNT_ID)`.
pub fn by_id(entries: Vec<Entry>) -> HashMap<u64, Entry> {
    entries.into_iter().map(|e| (e.id, e)).collect()
}

/// Is `path` equal to `base` or below it (as mount roots, `/`-separated)?
pub fn is_within(path: &str, base: &str) -> bool {
    base == "/"
        || path == base
        || (path.starts_with(base) && path.as_bytes().get(base.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lines_with_escapes_and_optional_fields() {
        let l = "36 35 98:0 /mnt\\0401 /mnt/par\\040ent ro,nosuid,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue";
        let e = parse_line(l).unwrap();
        assert_eq!(e.id, 36);
        assert_eq!(e.parent, 35);
        assert_eq!(e.dev, makedev(98, 0));
        assert_eq!(e.root, "/mnt 1");
        assert_eq!(e.mountpoint, "/mnt/par ent");
        assert!(e.flags.rdonly && e.flags.nosuid && !e.flags.nodev);
        assert_eq!(e.fstype, "ext3");
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn within_is_by_path_component() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
    }

    #[test]
    fn loosening_names_what_is_dropped() {
        let ro = Flags {
            rdonly: true,
            nosuid: true,
            ..Default::default()
        };
        let rw = Flags {
            nosuid: true,
            ..Default::default()
        };
        assert_eq!(ro.loosened_by(&rw), vec!["ro"]);
        assert!(rw.loosened_by(&ro).is_empty());
    }
}
