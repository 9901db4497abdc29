//! Host directories shared into the VM (9p over virtio), mounted at
//! /mnt/host/<host path> so the gate can map `-v /home/me/x:/y` onto
//! `/mnt/host/home/me/x`. The host says which 9p tag is which path.

use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};

pub const FW_CFG: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/dev.hull/shares/raw";
pub const ROOT: &str = "/mnt/host";
const MAX_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub mounted: Vec<String>,
    pub errors: Vec<String>,
}

/// A share the VM accepts: a `hullshare<N>` tag and an absolute, normal path.
fn valid(s: &Share) -> Result<(), String> {
    let tag_ok = s
        .tag
        .strip_prefix("hullshare")
        .is_some_and(|n| !n.is_empty() && n.len() < 5 && n.bytes().all(|b| b.is_ascii_digit()));
    if !tag_ok {
        return Err(format!("bad share tag {:?}", s.tag));
    }
    let normal = s.path.is_absolute()
        && s.path
            .components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)))
        && s.path != Path::new("/");
    if !normal {
        return Err(format!("bad share path {:?}", s.path));
    }
    Ok(())
}

/// Parses the host's map; drops shares nested in another (already visible
/// through it, and mounting inside a 9p mount would create host directories).
pub fn parse(raw: &[u8]) -> Result<Vec<Share>, String> {
    let mut list: Vec<Share> =
        serde_json::from_slice(raw).map_err(|e| format!("shares map: {e}"))?;
    for s in &list {
        valid(s)?;
    }
    list.sort_by(|a, b| a.path.cmp(&b.path));
    let mut kept: Vec<Share> = Vec::new();
    for s in list {
        if !kept.iter().any(|k| s.path.starts_with(&k.path)) {
            kept.push(s);
        }
    }
    Ok(kept)
}

pub fn setup() -> Outcome {
    let mut o = Outcome {
        mounted: Vec::new(),
        errors: Vec::new(),
    };
    let raw = match fs::File::open(FW_CFG) {
        Ok(f) => {
            let mut b = Vec::new();
            if let Err(e) = f.take(MAX_BYTES).read_to_end(&mut b) {
                o.errors.push(format!("{FW_CFG}: {e}"));
                return o;
            }
            b
        }
        // No map: nothing is shared.
        Err(_) => return o,
    };
    let shares = match parse(&raw) {
        Ok(s) => s,
        Err(e) => {
            o.errors.push(e);
            return o;
        }
    };
    // A tmpfs to hold the mount points: the root is read-only.
    if let Err(e) = mount(
        Some("hostshares"),
        ROOT,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=1m"),
    ) {
        o.errors.push(format!("tmpfs on {ROOT}: {e}"));
        return o;
    }
    for s in shares {
        let target = Path::new(ROOT).join(s.path.strip_prefix("/").unwrap_or(&s.path));
        if let Err(e) = fs::create_dir_all(&target) {
            o.errors.push(format!("mkdir {}: {e}", target.display()));
            continue;
        }
        match mount(
            Some(s.tag.as_str()),
            &target,
            Some("9p"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("trans=virtio,version=9p2000.L,msize=262144,cache=mmap"),
        ) {
            Ok(()) => o.mounted.push(target.display().to_string()),
            Err(e) => o
                .errors
                .push(format!("9p {} on {}: {e}", s.tag, target.display())),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_drops_nested() {
        let raw = br#"[{"tag":"hullshare1","path":"/home/me/src"},{"tag":"hullshare0","path":"/home/me"},{"tag":"hullshare2","path":"/tmp/x"}]"#;
        let s = parse(raw).unwrap();
        let paths: Vec<_> = s.iter().map(|s| s.path.display().to_string()).collect();
        assert_eq!(paths, ["/home/me", "/tmp/x"]);
    }

    #[test]
    fn hostile_maps_are_refused() {
        for bad in [
            r#"[{"tag":"hullshare0","path":"relative"}]"#,
            r#"[{"tag":"hullshare0","path":"/a/../etc"}]"#,
            r#"[{"tag":"hullshare0","path":"/"}]"#,
            r#"[{"tag":"evil,trans=fd","path":"/a"}]"#,
            r#"[{"tag":"hullshare0","path":"/a","extra":1}]"#,
            "not json",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
