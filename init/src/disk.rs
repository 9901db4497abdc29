//! The data disk: found by its virtio serial, formatted ext4 only when it is
//! blank, checked and mounted at /var/lib. A disk holding any other
//! filesystem is refused, never reformatted: it may hold someone's data.
//! So is a disk whose data format (crate::stamp) is newer than this init
//! knows, before anything (e2fsck, resize2fs, a migration, a read-write
//! mount) could write to it. The format is read from the ext4 label in the
//! superblock init reads anyway (`hull-data.f<N>`); only when that cannot be
//! trusted or names none (the journal needs recovery, a disk from before
//! labels) is the disk mounted read-only to read its stamp file. A disk the
//! host made bigger (`hull up --disk-gib`) is grown before it is mounted.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount, MsFlags};

use crate::stamp::{self, Evidence, Plan, Stamp};

pub const SERIAL: &str = "hull-data";
pub const MOUNT_POINT: &str = "/var/lib";
/// Bytes read from the start of the disk to recognise what is on it.
const PROBE: usize = 1 << 20;
/// Where the disk is mounted read-only to read its stamp, when its
/// superblock cannot tell (see [`FormatSource`]).
const PROBE_MOUNT: &str = "/run/hull/disk-probe";

// FS_IOC_GETFSLABEL and FS_IOC_SETFSLABEL (linux/fs.h): the label of the
// filesystem an open file is on, as a char[FSLABEL_MAX = 256]. ext4 journals
// a new label like any metadata, so it survives a hard stop once written.
nix::ioctl_read!(fs_get_label, 0x94, 49, [u8; 256]);
nix::ioctl_write_ptr!(fs_set_label, 0x94, 50, [u8; 256]);

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

/// What init reads from an ext4 superblock (1024 bytes at byte 1024).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// The volume label up to its first NUL (bytes that are not UTF-8 show
    /// as U+FFFD, which no label hull writes contains).
    pub label: String,
    /// EXT3_FEATURE_INCOMPAT_RECOVER: the journal holds writes not yet in
    /// place (a hard stop), so this copy of the superblock, label included,
    /// may be older than the one the journal will put there.
    pub needs_recovery: bool,
    /// False when metadata_csum is on and the superblock's own checksum
    /// does not match its bytes.
    pub checksum_ok: bool,
}

/// The ext4 superblock in `head`; None without one (short, or no magic).
pub fn superblock(head: &[u8]) -> Option<Superblock> {
    let sb = head.get(1024..2048)?;
    if sb[0x38..0x3a] != [0x53, 0xef] {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let raw = &sb[0x78..0x78 + stamp::LABEL_MAX];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    // RO_COMPAT_METADATA_CSUM: s_checksum (0x3fc) is crc32c over the bytes
    // before it, seeded with !0 and not inverted after (as e2fsprogs and the
    // kernel compute it).
    let checksum_ok = u32_at(0x64) & 0x400 == 0 || crc32c(!0, &sb[..0x3fc]) == u32_at(0x3fc);
    Some(Superblock {
        label: String::from_utf8_lossy(&raw[..end]).into_owned(),
        needs_recovery: u32_at(0x60) & 0x4 != 0,
        checksum_ok,
    })
}

/// CRC-32C (Castagnoli), bit by bit: run once per boot over 1020 bytes.
fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// How init learns an ext4 disk's data format before anything writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatSource {
    /// From the superblock's label: a clean disk labelled by hull.
    Label { label: String, format: u32 },
    /// Through a read-only mount (the stamp file, and the label as the
    /// kernel has it after replaying the journal), and why.
    Mount { why: String },
}

/// Decides how to read the format; Err refuses the disk (a label in hull's
/// form that names no readable format).
pub fn how_to_read(sb: &Superblock) -> Result<FormatSource, String> {
    if sb.needs_recovery {
        return Ok(FormatSource::Mount {
            why: "its journal needs recovery".into(),
        });
    }
    if !sb.checksum_ok {
        // Let the kernel judge a damaged superblock; it refuses to mount it.
        return Ok(FormatSource::Mount {
            why: "its superblock checksum does not match".into(),
        });
    }
    Ok(match stamp::label_format(&sb.label)? {
        Some(format) => FormatSource::Label {
            label: sb.label.clone(),
            format,
        },
        None => FormatSource::Mount {
            why: format!("its label {:?} names no data format", sb.label),
        },
    })
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
    /// How the format was known before anything wrote: "blank disk",
    /// "superblock label hull-data.f1", or "read-only mount (why)".
    pub decided_by: Option<String>,
    /// The ext4 label set this boot ("hull-data -> hull-data.f1").
    pub relabelled: Option<String>,
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
        decided_by: None,
        relabelled: None,
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

/// What was known of an ext4 disk before it was mounted read-write.
struct Known {
    /// The label as found (hull's or not) and the format it names.
    label: String,
    label_format: Option<u32>,
    /// The stamp file, when it was read (Some(None): read, none there).
    stamp: Option<Option<Stamp>>,
}

impl Known {
    fn evidence(&self) -> Evidence<'_> {
        Evidence {
            label: self.label_format.map(|f| (self.label.as_str(), f)),
            stamp: self.stamp.as_ref().and_then(Option::as_ref),
        }
    }
}

fn prepare(dev: &Path, o: &mut Outcome) -> Result<(), String> {
    let mut since = {
        let (user, sys) = crate::status::cpu_split();
        user + sys
    };
    let current = stamp::current_format();
    let refused = |e: String| format!("{} refused: {e}", dev.display());
    let head = read_head(dev)?;
    spent(o, "probe", &mut since);
    let known = match identify(&head) {
        Content::Blank => {
            crate::info!("{}: blank, formatting ext4 (first boot)", dev.display());
            let label = stamp::label(current)?;
            // nodiscard: the disk is new and blank, so mkfs's default
            // discard of every block first is work for nothing at boot.
            let code = run(Command::new("/usr/sbin/mkfs.ext4")
                .args(["-q", "-F", "-L", &label, "-E"])
                .arg("lazy_itable_init=1,lazy_journal_init=1,nodiscard")
                .arg(dev))?;
            if code != 0 {
                return Err(format!("mkfs.ext4 {} failed ({code})", dev.display()));
            }
            o.formatted = true;
            o.decided_by = Some("blank disk".into());
            spent(o, "mkfs.ext4", &mut since);
            None
        }
        Content::Ext4 => {
            // Before anything may write: is this a disk we understand?
            let sb = superblock(&head).ok_or_else(|| {
                refused(format!(
                    "only {} bytes could be read, too few for its ext4 superblock",
                    head.len()
                ))
            })?;
            let known = match how_to_read(&sb).map_err(refused)? {
                FormatSource::Label { label, format } => {
                    let k = Known {
                        label,
                        label_format: Some(format),
                        stamp: None,
                    };
                    stamp::plan(k.evidence(), current).map_err(refused)?;
                    o.decided_by = Some(format!("superblock label {}", k.label));
                    spent(o, "stamp read (superblock)", &mut since);
                    k
                }
                FormatSource::Mount { why } => {
                    crate::info!(
                        "{}: {why}; reading its stamp through a read-only mount",
                        dev.display()
                    );
                    let (text, label) = read_mounted(dev)?;
                    let k = Known {
                        label_format: stamp::label_format(&label).map_err(refused)?,
                        label,
                        stamp: Some(
                            text.as_deref()
                                .map(stamp::parse)
                                .transpose()
                                .map_err(refused)?,
                        ),
                    };
                    stamp::plan(k.evidence(), current).map_err(refused)?;
                    o.decided_by = Some(format!("read-only mount ({why})"));
                    spent(o, "stamp read (read-only mount)", &mut since);
                    k
                }
            };
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
            Some(known)
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
    o.format = Some(ours.format);
    let Some(mut k) = known else {
        // A new disk: mkfs wrote the label.
        write_stamp(&ours)?;
        spent(o, "directories and stamp", &mut since);
        return Ok(());
    };
    if k.stamp.is_none() {
        // Decided by the label: the stamp (which hull and build last laid
        // the disk out, for `hull status`) is read now that it costs only a
        // file read, and checked against the label.
        k.stamp = Some(read_stamp_after_mount(&k));
        spent(o, "stamp read (mounted)", &mut since);
    }
    if let Some(d) = stamp::disagreement(k.evidence()) {
        crate::warn!("{d}");
    }
    let plan = match stamp::plan(k.evidence(), current) {
        Ok(p) => p,
        Err(e) => {
            // Only a stamp newer than its label gets here (the label was
            // checked before anything wrote). hull never leaves a disk so,
            // so something else wrote it: stop using it at once.
            let left = match umount(MOUNT_POINT) {
                Ok(()) => {
                    o.mounted = false;
                    "unmounted it again".to_string()
                }
                Err(u) => format!("could not unmount it ({u})"),
            };
            return Err(format!(
                "{} refused after mounting it: {e}. Its label {:?} named format {:?}, so it was checked and mounted read-write before its stamp could be read; {left}",
                dev.display(),
                k.label,
                k.label_format
            ));
        }
    };
    if k.label_format != Some(ours.format) {
        // Raised before any migration step writes, so that an older hull
        // refuses the disk from the first changed byte on; the stamp, written
        // after the last step, says the migration completed.
        let new = stamp::label(ours.format)?;
        set_label(Path::new(MOUNT_POINT), &new)?;
        let what = format!("{:?} -> {new}", k.label);
        crate::info!("data disk relabelled: {what}");
        o.relabelled = Some(what);
    }
    let stamp = k.stamp.flatten();
    match plan {
        Plan::Use if stamp.is_some() => {}
        Plan::Use => {
            crate::warn!(
                "the data disk (format {}) had no stamp /{}: writing it",
                ours.format,
                stamp::FILE
            );
            write_stamp(&ours)?;
        }
        Plan::Migrate { from } => {
            // The steps from each older format go here; format 1 -> 2 is
            // the stamp (and label) alone.
            let what = match &stamp {
                None => format!("format {from} (no stamp) -> {}", ours.format),
                Some(old) => format!(
                    "format {from} (hull {} build {}) -> {} (hull {} build {})",
                    old.hull, old.build, ours.format, ours.hull, ours.build
                ),
            };
            write_stamp(&ours)?;
            crate::info!("data disk migrated: {what}");
            o.migrated = Some(what);
        }
    }
    o.found = stamp;
    spent(o, "directories, label and stamp", &mut since);
    Ok(())
}

/// The stamp of a disk mounted on [`MOUNT_POINT`] after its label decided.
/// One that cannot be read or parsed is written anew (loudly): the label
/// named the format, and hull never leaves a stamp newer than its label.
fn read_stamp_after_mount(k: &Known) -> Option<Stamp> {
    let path = Path::new(MOUNT_POINT).join(stamp::FILE);
    let parsed = match read_stamp_file(Path::new(MOUNT_POINT)) {
        Ok(None) => return None,
        Ok(Some(text)) => stamp::parse(&text),
        Err(e) => Err(format!("its stamp {} cannot be read ({e})", path.display())),
    };
    parsed
        .map_err(|e| {
            crate::warn!(
                "the data disk: {e}; its label {} names the format, so the stamp is written anew",
                k.label
            )
        })
        .ok()
}

/// The stamp file's text under `root` (None: there is none). Not followed
/// if a symlink; at most 64 KiB.
fn read_stamp_file(root: &Path) -> std::io::Result<Option<String>> {
    let read = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(root.join(stamp::FILE))
        .and_then(|f| {
            let mut text = String::new();
            f.take(64 << 10).read_to_string(&mut text).map(|_| text)
        });
    match read {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The stamp's text and the label, read through a read-only mount. After a
/// hard stop the kernel replays the journal first (ext4's own recovery,
/// refused for ext4 features it does not know), so both are the last ones
/// written, not older ones still in place; a cleanly stopped disk is not
/// written.
fn read_mounted(dev: &Path) -> Result<(Option<String>, String), String> {
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
    let text = read_stamp_file(Path::new(PROBE_MOUNT));
    let label = get_label(Path::new(PROBE_MOUNT));
    let unmounted = umount(PROBE_MOUNT);
    let text = text.map_err(|e| {
        format!(
            "{} refused: its stamp {} cannot be read ({e})",
            dev.display(),
            stamp::FILE
        )
    })?;
    let label = label.map_err(|e| format!("{} refused: {e}", dev.display()))?;
    unmounted.map_err(|e| format!("unmount {PROBE_MOUNT}: {e}"))?;
    Ok((text, label))
}

/// The label of the filesystem mounted at `dir`.
fn get_label(dir: &Path) -> Result<String, String> {
    let f = fs::File::open(dir).map_err(|e| format!("open {}: {e}", dir.display()))?;
    let mut buf = [0u8; 256];
    // SAFETY: FS_IOC_GETFSLABEL writes at most FSLABEL_MAX (256) bytes to
    // the pointer, and `buf` is 256 bytes that outlive the call; `f` keeps
    // the descriptor open across it.
    unsafe { fs_get_label(f.as_raw_fd(), &mut buf) }
        .map_err(|e| format!("reading the ext4 label of {}: {e}", dir.display()))?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Sets the label of the ext4 filesystem mounted at `dir` (journaled by
/// the kernel; no child process).
fn set_label(dir: &Path, label: &str) -> Result<(), String> {
    if label.len() > stamp::LABEL_MAX {
        return Err(format!(
            "label {label:?} is longer than ext4's {} bytes",
            stamp::LABEL_MAX
        ));
    }
    let f = fs::File::open(dir).map_err(|e| format!("open {}: {e}", dir.display()))?;
    let mut buf = [0u8; 256];
    buf[..label.len()].copy_from_slice(label.as_bytes());
    // SAFETY: FS_IOC_SETFSLABEL reads FSLABEL_MAX (256) bytes from the
    // pointer, a NUL-terminated string here: `buf` is 256 bytes, zeroed past
    // the label, and outlives the call; `f` keeps the descriptor open.
    unsafe { fs_set_label(f.as_raw_fd(), &buf) }.map_err(|e| {
        format!(
            "setting the ext4 label of {} to {label:?}: {e}",
            dir.display()
        )
    })?;
    Ok(())
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

    /// A head holding an ext4 superblock with `label` and incompat flags.
    fn head_with(label: &[u8], incompat: u32) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[1024 + 0x38] = 0x53;
        h[1024 + 0x39] = 0xef;
        h[1024 + 0x60..1024 + 0x64].copy_from_slice(&incompat.to_le_bytes());
        h[1024 + 0x78..1024 + 0x78 + label.len()].copy_from_slice(label);
        h
    }

    fn sb(h: &[u8]) -> Superblock {
        superblock(h).unwrap_or_else(|| panic!("no superblock"))
    }

    #[test]
    fn the_label_decides_a_clean_disk() {
        let s = sb(&head_with(b"hull-data.f2", 0x2c2));
        assert_eq!(s.label, "hull-data.f2");
        assert!(!s.needs_recovery && s.checksum_ok);
        assert_eq!(
            how_to_read(&s),
            Ok(FormatSource::Label {
                label: "hull-data.f2".into(),
                format: 2
            })
        );
        // All 16 bytes used: no NUL after the label.
        let s = sb(&head_with(b"hull-data.f12345", 0));
        assert_eq!(s.label, "hull-data.f12345");
        assert!(matches!(
            how_to_read(&s),
            Ok(FormatSource::Label { format: 12345, .. })
        ));
    }

    #[test]
    fn a_journal_to_recover_or_an_old_label_means_the_read_only_mount() {
        // INCOMPAT_RECOVER (0x4): the label on disk may be stale.
        let s = sb(&head_with(b"hull-data.f1", 0x2c6));
        assert!(s.needs_recovery);
        assert_eq!(
            how_to_read(&s),
            Ok(FormatSource::Mount {
                why: "its journal needs recovery".into()
            })
        );
        // Even a label hull could not read waits for the journal first.
        assert!(matches!(
            how_to_read(&sb(&head_with(b"hull-data.fx", 0x4))),
            Ok(FormatSource::Mount { .. })
        ));
        for old in [&b"hull-data"[..], b"", b"backup"] {
            let r = how_to_read(&sb(&head_with(old, 0)));
            assert!(
                matches!(&r, Ok(FormatSource::Mount { why }) if why.contains("names no data format")),
                "{old:?}: {r:?}"
            );
        }
    }

    #[test]
    fn garbage_labels_and_superblocks() {
        let e = how_to_read(&sb(&head_with(b"hull-data.fx", 0))).unwrap_err();
        assert!(
            e.contains("\"hull-data.fx\" names no data format hull can read"),
            "{e}"
        );
        // Bytes that are not UTF-8 never read as a format.
        let s = sb(&head_with(&[0xff; 16], 0));
        assert_eq!(s.label, "\u{fffd}".repeat(16));
        assert!(matches!(how_to_read(&s), Ok(FormatSource::Mount { .. })));
        assert!(how_to_read(&sb(&head_with(b"hull-data.f1\xff", 0))).is_err());
        // Too short, or no ext4 magic.
        assert_eq!(superblock(&[]), None);
        assert_eq!(superblock(&head_with(b"hull-data.f1", 0)[..2047]), None);
        let mut h = head_with(b"hull-data.f1", 0);
        h[1024 + 0x38] = 0;
        assert_eq!(superblock(&h), None);
    }

    #[test]
    fn a_superblock_failing_its_checksum_goes_to_the_kernel() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(!crc32c(!0, b"123456789"), 0xe306_9283);
        let mut h = head_with(b"hull-data.f1", 0);
        h[1024 + 0x64] = 0x00;
        h[1024 + 0x65] = 0x04; // RO_COMPAT_METADATA_CSUM
        let s = sb(&h);
        assert!(!s.checksum_ok);
        assert_eq!(
            how_to_read(&s),
            Ok(FormatSource::Mount {
                why: "its superblock checksum does not match".into()
            })
        );
        let c = crc32c(!0, &h[1024..1024 + 0x3fc]);
        h[1024 + 0x3fc..1024 + 0x400].copy_from_slice(&c.to_le_bytes());
        assert!(sb(&h).checksum_ok);
    }

    /// A real filesystem from the mkfs.ext4 init runs: label and checksum
    /// as the kernel and e2fsprogs lay them out, not as this file assumes.
    #[test]
    fn a_real_mkfs_superblock() {
        let img = std::env::temp_dir().join(format!("hull-init-sb-{}.img", std::process::id()));
        let run = |cmd: &str, args: &[&str]| {
            let out = Command::new(cmd)
                .args(args)
                .arg(&img)
                .output()
                .unwrap_or_else(|e| panic!("{cmd} (e2fsprogs, from `cargo xtask deps`): {e}"));
            assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
        };
        let f = fs::File::create(&img).unwrap_or_else(|e| panic!("{}: {e}", img.display()));
        f.set_len(64 << 20).unwrap_or_else(|e| panic!("{e}"));
        run("/usr/sbin/mkfs.ext4", &["-q", "-F", "-L", "hull-data.f3"]);
        let head = read_head(&img).unwrap_or_else(|e| panic!("{e}"));
        let s = sb(&head);
        let ro_compat = u32::from_le_bytes([head[1124], head[1125], head[1126], head[1127]]);
        assert!(
            ro_compat & 0x400 != 0,
            "mkfs.ext4 made no metadata_csum: the checksum went unchecked"
        );
        assert_eq!(
            s,
            Superblock {
                label: "hull-data.f3".into(),
                needs_recovery: false,
                checksum_ok: true
            }
        );
        run("/usr/sbin/tune2fs", &["-L", "hull-data"]);
        let s = sb(&read_head(&img).unwrap_or_else(|e| panic!("{e}")));
        assert!(s.checksum_ok && s.label == "hull-data", "{s:?}");
        let _ = fs::remove_file(&img);
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
