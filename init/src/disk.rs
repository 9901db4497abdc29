//! The data disk: found by its virtio serial, formatted ext4 only when it is
//! blank, checked and mounted at /var/lib. A disk holding any other
//! filesystem is refused, never reformatted: it may hold someone's data.
//! So is a disk whose stamp (crate::stamp) names a data format newer than
//! this init knows: it is read through a read-only mount, before anything
//! (e2fsck, resize2fs, a migration) could write to it. A disk the host made
//! bigger (`hull up --disk-gib`) is grown online once mounted.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount, MsFlags};

use crate::stamp::{self, Plan, Stamp};

pub const SERIAL: &str = "hull-data";
pub const MOUNT_POINT: &str = "/var/lib";
/// Bytes read from the start of the disk to recognise what is on it.
const PROBE: usize = 1 << 20;
/// Where the disk is mounted read-only to read its stamp.
const PROBE_MOUNT: &str = "/run/hull/disk-probe";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// All zeros: a new disk.
    Blank,
    Ext4,
    /// Some other signature (named when recognised).
    Other(String),
}

/// Recognises what the first bytes of a disk hold.
pub fn identify(head: &[u8]) -> Content {
    let at = |off: usize, sig: &[u8]| {
        head.len() >= off + sig.len() && &head[off..off + sig.len()] == sig
    };
    if at(0x438, &[0x53, 0xef]) {
        return Content::Ext4;
    }
    let known: &[(usize, &[u8], &str)] = &[
        (0, b"XFSB", "xfs"),
        (0x10040, b"_BHRfS_M", "btrfs"),
        (0, b"LUKS\xba\xbe", "LUKS"),
        (1024, &[0xe2, 0xe1, 0xf5, 0xe0], "erofs"),
        (0, b"hsqs", "squashfs"),
        (4086, b"SWAPSPACE2", "swap"),
        (512, b"EFI PART", "a GPT partition table"),
        (0x8001, b"CD001", "iso9660"),
        (510, &[0x55, 0xaa], "an MBR partition table"),
    ];
    for (off, sig, name) in known {
        if at(*off, sig) {
            return Content::Other((*name).to_string());
        }
    }
    if head.iter().all(|&b| b == 0) {
        Content::Blank
    } else {
        Content::Other("unrecognised data".into())
    }
}

/// The block device whose virtio serial is `serial`.
pub fn find_by_serial(serial: &str) -> Option<PathBuf> {
    let mut names: Vec<_> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().find_map(|n| {
        let s = fs::read_to_string(format!("/sys/block/{n}/serial")).ok()?;
        (s.trim() == serial).then(|| PathBuf::from(format!("/dev/{n}")))
    })
}

fn read_head(dev: &Path) -> Result<Vec<u8>, String> {
    let mut f = fs::File::open(dev).map_err(|e| format!("open {}: {e}", dev.display()))?;
    let mut head = Vec::with_capacity(PROBE);
    Read::by_ref(&mut f)
        .take(PROBE as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("read {}: {e}", dev.display()))?;
    Ok(head)
}

fn run(cmd: &mut Command) -> Result<i32, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    let code = out.status.code().unwrap_or(-1);
    if code != 0 {
        let err = String::from_utf8_lossy(&out.stderr);
        crate::warn!("{shown} exited {code}: {}", err.trim());
    }
    Ok(code)
}

/// What happened to the data disk, for the log and `hull status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub device: Option<String>,
    pub formatted: bool,
    pub mounted: bool,
    pub error: Option<String>,
    /// The data format the disk is in now (after any migration).
    pub format: Option<u32>,
    /// The stamp found on the disk (None: new, or from before stamps).
    pub found: Option<Stamp>,
    /// What was migrated this boot (e.g. "format 1 (no stamp) -> 2").
    pub migrated: Option<String>,
    /// resize2fs's report when the filesystem grew to a bigger disk.
    pub grown: Option<String>,
}

pub fn setup() -> Outcome {
    let mut o = Outcome {
        device: None,
        formatted: false,
        mounted: false,
        error: None,
        format: None,
        found: None,
        migrated: None,
        grown: None,
    };
    let Some(dev) = find_by_serial(SERIAL) else {
        o.error = Some(format!(
            "no disk with serial {SERIAL}: state will not persist (/var/lib is read-only)"
        ));
        return o;
    };
    o.device = Some(dev.display().to_string());
    if let Err(e) = prepare(&dev, &mut o) {
        o.error = Some(e);
    }
    o
}

fn prepare(dev: &Path, o: &mut Outcome) -> Result<(), String> {
    let plan = match identify(&read_head(dev)?) {
        Content::Blank => {
            crate::info!("{}: blank, formatting ext4 (first boot)", dev.display());
            let code = run(Command::new("/usr/sbin/mkfs.ext4")
                .args(["-q", "-F", "-L", "hull-data", "-E"])
                .arg("lazy_itable_init=1,lazy_journal_init=1")
                .arg(dev))?;
            if code != 0 {
                return Err(format!("mkfs.ext4 {} failed ({code})", dev.display()));
            }
            o.formatted = true;
            None
        }
        Content::Ext4 => {
            // Before anything may write: is this a disk we understand?
            let text = read_stamp(dev)?;
            let plan = stamp::plan(text.as_deref(), stamp::current_format())
                .map_err(|e| format!("{} refused: {e}", dev.display()))?;
            // -p repairs what is safe without asking (including replaying the
            // journal after a hard stop); 4 and above means it could not.
            let code = run(Command::new("/usr/sbin/e2fsck").arg("-p").arg(dev))?;
            if code >= 4 {
                return Err(format!(
                    "e2fsck {} found errors it cannot repair (exit {code}); not mounting",
                    dev.display()
                ));
            }
            Some(plan)
        }
        Content::Other(what) => {
            return Err(format!(
                "{} holds {what}, not ext4: refusing to format or mount it",
                dev.display()
            ))
        }
    };
    mount(
        Some(dev),
        MOUNT_POINT,
        Some("ext4"),
        MsFlags::MS_NOATIME | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some("errors=remount-ro,discard"),
    )
    .map_err(|e| format!("mount {} on {MOUNT_POINT}: {e}", dev.display()))?;
    o.mounted = true;
    for d in ["hull", "docker", "containerd"] {
        let _ = fs::create_dir_all(Path::new(MOUNT_POINT).join(d));
    }
    o.grown = grow(dev);
    let ours = Stamp::ours();
    match plan {
        Some(Plan::Use(s)) => {
            o.format = Some(s.format);
            o.found = Some(s);
        }
        None | Some(Plan::Migrate { .. }) => {
            // A new disk, or an older format: the steps from each older
            // format go here; format 1 -> 2 is the stamp alone.
            let what = match &plan {
                Some(Plan::Migrate { from, old: None }) => {
                    Some(format!("format {from} (no stamp) -> {}", ours.format))
                }
                Some(Plan::Migrate {
                    from,
                    old: Some(old),
                }) => Some(format!(
                    "format {from} (hull {} build {}) -> {} (hull {} build {})",
                    old.hull, old.build, ours.format, ours.hull, ours.build
                )),
                _ => None,
            };
            write_stamp(&ours)?;
            if let Some(w) = &what {
                crate::info!("data disk migrated: {w}");
            }
            if let Some(Plan::Migrate { old, .. }) = plan {
                o.found = old;
            }
            o.migrated = what;
            o.format = Some(ours.format);
        }
    }
    Ok(())
}

/// The stamp's text, read through a read-only mount. After a hard stop the
/// kernel replays the journal first (ext4's own recovery, refused for ext4
/// features it does not know), so the stamp read is the last one written,
/// not an older one still on disk; a cleanly stopped disk is not written.
fn read_stamp(dev: &Path) -> Result<Option<String>, String> {
    fs::create_dir_all(PROBE_MOUNT).map_err(|e| format!("{PROBE_MOUNT}: {e}"))?;
    mount(
        Some(dev),
        PROBE_MOUNT,
        Some("ext4"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "{} refused: cannot mount it read-only to read its stamp ({e}); not touching it",
            dev.display()
        )
    })?;
    let path = Path::new(PROBE_MOUNT).join(stamp::FILE);
    let read = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .and_then(|f| {
            let mut text = String::new();
            f.take(64 << 10).read_to_string(&mut text).map(|_| text)
        });
    let unmounted = umount(PROBE_MOUNT);
    let text = match read {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(format!(
                "{} refused: its stamp {} cannot be read ({e})",
                dev.display(),
                stamp::FILE
            ))
        }
    };
    unmounted.map_err(|e| format!("unmount {PROBE_MOUNT}: {e}"))?;
    Ok(text)
}

/// Writes our stamp at the disk's root: whole or not at all.
fn write_stamp(s: &Stamp) -> Result<(), String> {
    let path = Path::new(MOUNT_POINT).join(stamp::FILE);
    let tmp = path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(s).map_err(|e| format!("stamp: {e}"))?;
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(MOUNT_POINT)?.sync_all()
    };
    write().map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Grows the mounted filesystem to the whole disk (the host enlarged it while
/// the VM was stopped); a no-op when it already fills it.
fn grow(dev: &Path) -> Option<String> {
    let out = Command::new("/usr/sbin/resize2fs").arg(dev).output();
    match out {
        Ok(o) if o.status.success() => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let line = text
                .lines()
                .find(|l| l.contains("is now"))?
                .trim()
                .to_string();
            crate::info!("data disk grown: {line}");
            Some(line)
        }
        Ok(o) => {
            crate::warn!(
                "resize2fs {} exited {:?}: {}",
                dev.display(),
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            crate::warn!("resize2fs {}: {e}", dev.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_filesystems() {
        let mut b = vec![0u8; PROBE];
        assert_eq!(identify(&b), Content::Blank);
        b[0x438] = 0x53;
        b[0x439] = 0xef;
        assert_eq!(identify(&b), Content::Ext4);
        let mut x = vec![0u8; PROBE];
        x[..4].copy_from_slice(b"XFSB");
        assert_eq!(identify(&x), Content::Other("xfs".into()));
        let mut r = vec![0u8; PROBE];
        r[12345] = 1;
        assert_eq!(identify(&r), Content::Other("unrecognised data".into()));
    }

    #[test]
    fn short_reads_are_safe() {
        assert_eq!(identify(&[]), Content::Blank);
        assert_eq!(
            identify(&[1, 2, 3]),
            Content::Other("unrecognised data".into())
        );
    }
}
