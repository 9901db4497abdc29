//! Finding out how the bundle's rootfs is built (Docker's overlay2 hands us an
//! overlay already mounted), so hull can rebuild it on idmapped layers: the
//! kernel cannot idmap an overlay mount itself, but an overlay whose lower and
//! upper layers are idmapped mounts works, and costs no copy.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct OverlayLayers {
    pub lower: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// Other options (index=off, redirect_dir=...), passed on as they were.
    pub other: Vec<String>,
}

/// mountinfo's fields: the kernel escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
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

/// Split overlay's option list on unescaped separators.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if let Some(l) = out.last_mut() {
                l.push(c);
            }
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == sep {
            out.push(String::new());
        } else {
            if let Some(l) = out.last_mut() {
                l.push(c);
            }
        }
    }
    out
}

/// The overlay mounted at `mountpoint` (the top-most mount there), if any.
pub fn find(mountinfo: &str, mountpoint: &Path) -> Option<OverlayLayers> {
    let mp = mountpoint.to_string_lossy();
    let mut found = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = left.split(' ').collect();
        if f.len() < 5 || unescape(f[4]) != mp {
            continue;
        }
        let r: Vec<&str> = right.splitn(3, ' ').collect();
        found = if r.first() == Some(&"overlay") {
            r.get(2).map(|o| parse_options(&unescape(o), mountpoint))
        } else {
            None
        };
    }
    found
}

fn parse_options(opts: &str, mountpoint: &Path) -> OverlayLayers {
    // Docker mounts with relative layer paths when the absolute ones would not
    // fit in a page; they are relative to the overlay2 home, which is the
    // grandparent of `<home>/<id>/merged`.
    let base = mountpoint
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let abs = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    };
    let mut l = OverlayLayers {
        lower: vec![],
        upper: None,
        work: None,
        other: vec![],
    };
    for o in split_unescaped(opts, ',') {
        if let Some(v) = o.strip_prefix("lowerdir=") {
            l.lower = split_unescaped(v, ':')
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| abs(s))
                .collect();
        } else if let Some(v) = o.strip_prefix("upperdir=") {
            l.upper = Some(abs(v));
        } else if let Some(v) = o.strip_prefix("workdir=") {
            l.work = Some(abs(v));
        } else if o == "rw"
            || o == "ro"
            || o.is_empty()
            || o.starts_with("lowerdir+")
            || o.starts_with("datadir+")
        {
        } else {
            l.other.push(o);
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_overlay() {
        let mi = "100 50 0:60 / /var/lib/docker/overlay2/abc/merged rw,relatime shared:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X:/var/lib/docker/overlay2/l/Y,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work,index=off\n";
        let l = find(mi, Path::new("/var/lib/docker/overlay2/abc/merged")).unwrap();
        assert_eq!(
            l.lower,
            vec![
                PathBuf::from("/var/lib/docker/overlay2/l/X"),
                PathBuf::from("/var/lib/docker/overlay2/l/Y")
            ]
        );
        assert_eq!(
            l.upper.unwrap(),
            PathBuf::from("/var/lib/docker/overlay2/abc/diff")
        );
        assert_eq!(l.other, vec!["index=off".to_string()]);
    }

    #[test]
    fn relative_layers_resolve_against_overlay2_home() {
        let mi = "1 2 0:1 / /h/abc/merged rw - overlay overlay rw,lowerdir=l/A:l/B,upperdir=abc/diff,workdir=abc/work\n";
        let l = find(mi, Path::new("/h/abc/merged")).unwrap();
        assert_eq!(l.lower[1], PathBuf::from("/h/l/B"));
        assert_eq!(l.work.unwrap(), PathBuf::from("/h/abc/work"));
    }

    #[test]
    fn plain_directory_is_not_an_overlay() {
        let mi = "1 2 8:1 / / rw - ext4 /dev/vda rw\n";
        assert!(find(mi, Path::new("/srv/rootfs")).is_none());
    }
}
