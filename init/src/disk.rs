//! The data disk: found by its virtio serial, formatted ext4 only when it is
//! blank, checked and mounted at /var/lib. A disk holding any other
//! filesystem is refused, never reformatted: it may hold someone's data.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, MsFlags};

pub const SERIAL: &str = "hull-data";
pub const MOUNT_POINT: &str = "/var/lib";
/// Bytes read from the start of the disk to recognise what is on it.
const PROBE: usize = 1 << 20;

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
    f.by_ref()
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
}

pub fn setup() -> Outcome {
    let mut o = Outcome {
        device: None,
        formatted: false,
        mounted: false,
        error: None,
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
    match identify(&read_head(dev)?) {
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
        }
        Content::Ext4 => {
            // -p repairs what is safe without asking (including replaying the
            // journal after a hard stop); 4 and above means it could not.
            let code = run(Command::new("/usr/sbin/e2fsck").arg("-p").arg(dev))?;
            if code >= 4 {
                return Err(format!(
                    "e2fsck {} found errors it cannot repair (exit {code}); not mounting",
                    dev.display()
                ));
            }
        }
        Content::Other(what) => {
            return Err(format!(
                "{} holds {what}, not ext4: refusing to format or mount it",
                dev.display()
            ))
        }
    }
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
    Ok(())
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
