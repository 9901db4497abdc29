//! The data disk: found by its virtio serial, formatted ext4 only when it is
//! blank, checked and mounted at /var/lib. A disk holding any other
//! filesystem is refused, never reformatted: it may hold someone's data.
//! So is a disk whose stamp (crate::stamp) names a data format newer than
//! this init knows: it is read through a read-only mount, before anything
//! (e2fsck, resize2fs, a migration) could write to it. A disk the host made
//! bigger (`hull up --disk-gib`) is grown before it is mounted.

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
    /// init's own CPU (ms) per step (probe, mkfs/e2fsck, mount, stamp):
    /// the helpers' own CPU is their own (RUSAGE_CHILDREN), the mounts
    /// are the kernel working in init's context.
    pub cpu_steps: Vec<(String, f64)>,
}

/// Adds init's CPU since `*since` as `step` and moves `*since` on.
fn spent(o: &mut Outcome, step: &str, since: &mut f64) {
    let (user, sys) = crate::status::cpu_split();
    o.cpu_steps.push((step.to_string(), user + sys - *since));
    *since = user + sys;
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
        cpu_steps: Vec::new(),
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
    let mut since = {
        let (user, sys) = crate::status::cpu_split();
        user + sys
    };
    let head = read_head(dev)?;
    spent(o, "probe", &mut since);
    let plan = match identify(&head) {
        Content::Blank => {
            crate::info!("{}: blank, formatting ext4 (first boot)", dev.display());
            // nodiscard: the disk is new and blank, so mkfs's default
            // discard of every block first is work for nothing at boot.
            let code = run(Command::new("/usr/sbin/mkfs.ext4")
                .args(["-q", "-F", "-L", "hull-data", "-E"])
                .arg("lazy_itable_init=1,lazy_journal_init=1,nodiscard")
                .arg(dev))?;
            if code != 0 {
                return Err(format!("mkfs.ext4 {} failed ({code})", dev.display()));
            }
            o.formatted = true;
            spent(o, "mkfs.ext4", &mut since);
            None
        }
        Content::Ext4 => {
            // Before anything may write: is this a disk we understand?
            let text = read_stamp(dev)?;
            spent(o, "stamp read (read-only mount)", &mut since);
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
            spent(o, "e2fsck", &mut since);
            o.grown = grow(dev, &head)?;
            spent(o, "grow check", &mut since);
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
    spent(o, "mount", &mut since);
    for d in ["hull", "docker", "containerd"] {
        let _ = fs::create_dir_all(Path::new(MOUNT_POINT).join(d));
    }
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
    spent(o, "directories and stamp", &mut since);
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

/// The filesystem's size in bytes, from the ext4 superblock in `head`.
pub fn ext4_bytes(head: &[u8]) -> Option<u64> {
    let sb = head.get(1024..1024 + 0x158)?;
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let log_block = u32_at(0x18);
    if log_block > 6 {
        return None;
    }
    let mut blocks = u64::from(u32_at(0x4));
    // INCOMPAT_64BIT: the block count's high half is used.
    if u32_at(0x60) & 0x80 != 0 {
        blocks |= u64::from(u32_at(0x150)) << 32;
    }
    blocks.checked_mul(1024 << log_block)
}

/// The block device's size in bytes (sysfs counts 512-byte sectors).
fn device_bytes(dev: &Path) -> Option<u64> {
    let name = dev.file_name()?.to_string_lossy().into_owned();
    let s = fs::read_to_string(format!("/sys/block/{name}/size")).ok()?;
    s.trim().parse::<u64>().ok()?.checked_mul(512)
}

/// Slack below which a disk is not worth growing into (resize2fs may leave
/// a partial last block group unused; the host grows in whole GiB).
const GROW_SLACK: u64 = 64 << 20;

/// Grows the filesystem to the whole disk when the host made the disk bigger
/// (`hull up --disk-gib`), before it is mounted: resize2fs wants a full
/// check first, which only then is worth its time.
fn grow(dev: &Path, head: &[u8]) -> Result<Option<String>, String> {
    let (Some(fs_bytes), Some(dev_bytes)) = (ext4_bytes(head), device_bytes(dev)) else {
        return Ok(None);
    };
    if dev_bytes < fs_bytes.saturating_add(GROW_SLACK) {
        return Ok(None);
    }
    let code = run(Command::new("/usr/sbin/e2fsck")
        .arg("-f")
        .arg("-p")
        .arg(dev))?;
    if code >= 4 {
        return Err(format!(
            "e2fsck -f {} found errors it cannot repair (exit {code}); not growing or mounting it",
            dev.display()
        ));
    }
    let out = Command::new("/usr/sbin/resize2fs")
        .arg(dev)
        .output()
        .map_err(|e| format!("resize2fs {}: {e}", dev.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // The disk is as usable as before, only not bigger: go on, loudly.
        crate::warn!(
            "resize2fs {} exited {:?}: {}",
            dev.display(),
            out.status.code(),
            text.trim().replace('\n', " | ")
        );
        return Ok(None);
    }
    let line = text
        .lines()
        .find(|l| l.contains("is now"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| format!("{} grown from {fs_bytes} bytes", dev.display()));
    crate::info!("data disk grown: {line}");
    Ok(Some(line))
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
    fn ext4_size_comes_from_the_superblock() {
        let mut h = vec![0u8; 4096];
        // 786432 blocks of 4 KiB (log 2): 3 GiB.
        h[1024 + 4..1024 + 8].copy_from_slice(&786_432u32.to_le_bytes());
        h[1024 + 0x18..1024 + 0x1c].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(ext4_bytes(&h), Some(3 << 30));
        h[1024 + 0x60] = 0x80;
        h[1024 + 0x150..1024 + 0x154].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(ext4_bytes(&h), Some(((1u64 << 32) + 786_432) * 4096));
        assert_eq!(ext4_bytes(&h[..1100]), None);
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
