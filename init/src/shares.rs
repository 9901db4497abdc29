//! Host directories shared into the VM (virtiofs; 9p only for the
//! benchmark's comparison), mounted at /mnt/host/<host path> so the gate can
//! map `-v /home/me/x:/y` onto `/mnt/host/home/me/x`. The host says which
//! device tag is which path.
//!
//! Each virtiofs share is checked once here: can it be id-mapped (the
//! kernel and virtiofsd both allow it)? hull-runtime id-maps every bind into
//! the container's user namespace; without that a share is owned by nobody
//! inside and containers cannot write to it. `hull status` and `hull up`
//! report the answer, and the runtime refuses such a bind rather than bind
//! it unshifted.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};

pub const ROOT: &str = "/mnt/host";
const MAX_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
    pub fs: Fs,
    /// Directories inside the share to cover (the VM's own home on the
    /// host): relative, plain names only.
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum Fs {
    #[serde(rename = "virtiofs")]
    Virtiofs,
    #[serde(rename = "9p")]
    NineP,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub mounted: Vec<String>,
    pub errors: Vec<String>,
    /// Every share the host offered, mounted or not.
    pub shares: Vec<Mounted>,
}

/// One share as the VM has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mounted {
    pub tag: String,
    /// The host's path.
    pub path: PathBuf,
    /// Where the VM mounted it.
    pub vm_path: PathBuf,
    pub fs: Fs,
    pub mounted: bool,
    /// Whether a container's idmapped bind of it works.
    pub idmapped: bool,
    /// Why it is not mounted or not idmappable.
    pub error: Option<String>,
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
    for h in &s.hidden {
        let plain =
            !h.as_os_str().is_empty() && h.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(format!("bad hidden path {h:?} in share {:?}", s.path));
        }
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
        shares: Vec::new(),
    };
    let raw = match crate::fw_cfg::read(crate::fw_cfg::SHARES, MAX_BYTES) {
        Ok(Some(raw)) => raw,
        // No map: nothing is shared.
        Ok(None) => return o,
        Err(e) => {
            o.errors.push(e);
            return o;
        }
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
        let mut m = Mounted {
            tag: s.tag.clone(),
            path: s.path.clone(),
            vm_path: target.clone(),
            fs: s.fs,
            mounted: false,
            idmapped: false,
            error: None,
        };
        let r = fs::create_dir_all(&target)
            .map_err(|e| format!("mkdir {}: {e}", target.display()))
            .and_then(|()| mount_one(&s, &target));
        let r = r.and_then(|()| s.hidden.iter().try_for_each(|h| cover(&target.join(h))));
        match r {
            Ok(()) => {
                m.mounted = true;
                o.mounted.push(target.display().to_string());
                if s.fs == Fs::Virtiofs {
                    // Slower reads only: reported, the share is used.
                    if let Err(e) = widen_readahead(&target) {
                        o.errors.push(format!("{}: {e}", s.path.display()));
                    }
                }
                match idmappable(&target) {
                    Ok(()) => m.idmapped = true,
                    Err(e) => {
                        let e = format!(
                            "{} ({}) cannot be id-mapped into containers: {e}; containers cannot use it",
                            s.path.display(),
                            s.tag
                        );
                        o.errors.push(e.clone());
                        m.error = Some(e);
                    }
                }
            }
            Err(e) => {
                // Mounted but not covered: take it away again (a no-op
                // when the mount itself failed).
                let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
                o.errors.push(e.clone());
                m.error = Some(e);
            }
        }
        o.shares.push(m);
    }
    o
}

fn mount_one(s: &Share, target: &Path) -> Result<(), String> {
    let (fstype, data) = match s.fs {
        Fs::Virtiofs => ("virtiofs", None),
        Fs::NineP => (
            "9p",
            Some("trans=virtio,version=9p2000.L,msize=262144,cache=mmap"),
        ),
    };
    mount(
        Some(s.tag.as_str()),
        target,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        data,
    )
    .map_err(|e| format!("{fstype} {} on {}: {e}", s.tag, target.display()))
}

/// FUSE starts with the kernel's 128 KiB readahead (virtiofsd echoes what
/// the kernel offers), so a sequential read waits on small FUSE_READs one
/// window at a time, and each round trip through the virtqueue costs, under
/// TCG most of all. A 1 MiB window keeps more reads in flight (virtiofs
/// reads are asynchronous). Measured with `cargo xtask bench --shares-only`
/// (1 GiB, TCG): 70.5 MiB/s before, 317.8 MiB/s after (9p 192, the named
/// volume 299 in the same run).
const VIRTIOFS_READ_AHEAD_KB: u32 = 1024;

/// Sets the readahead of the FUSE connection behind `dir` (its backing
/// device info is named after the mount's anonymous device, "0:NN").
fn widen_readahead(dir: &Path) -> Result<(), String> {
    let st = nix::sys::stat::stat(dir).map_err(|e| format!("stat {}: {e}", dir.display()))?;
    let dev = st.st_dev;
    let knob = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    fs::write(&knob, VIRTIOFS_READ_AHEAD_KB.to_string())
        .map_err(|e| format!("readahead: writing {knob}: {e}"))
}

/// An empty read-only tmpfs over `dir`: containers binding the share get
/// it too (binds of a share are recursive, and the kernel locks it in their
/// mount namespace), never what lies beneath. A share whose cover fails
/// is unmounted again: better no share than the VM's disk in one.
fn cover(dir: &Path) -> Result<(), String> {
    let r = mount(
        Some("hullhidden"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k,mode=0555"),
    );
    r.map_err(|e| {
        format!(
            "covering the VM's own home {} failed ({e}); share not used",
            dir.display()
        )
    })
}

/// The ids a container's root has in the VM for this check: any range
/// other than the VM's own works; this is the first container range.
const PROBE_MAP: &str = "0 100000 65536";

/// Tries what hull-runtime does with a bind: a detached clone of `dir`,
/// id-mapped into a user namespace. The clone is dropped unattached.
fn idmappable(dir: &Path) -> Result<(), String> {
    let ns = UserNs::new()?;
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: open_tree with a valid C string; returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(format!("open_tree: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this fd to us; we own it.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.fd.as_raw_fd() as u64,
    };
    let empty = c"";
    // SAFETY: mount_setattr on our detached tree with a valid mount_attr of
    // the size we pass; AT_EMPTY_PATH makes the empty path name the fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(format!(
            "mount_setattr(MOUNT_ATTR_IDMAP): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A user namespace held by a child that waits on a pipe; dropped, the
/// child is released and reaped.
struct UserNs {
    fd: OwnedFd,
    child: libc::pid_t,
    release: Option<OwnedFd>,
}

impl UserNs {
    fn new() -> Result<Self, String> {
        let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (release_r, release_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
        // SAFETY: init is still single-threaded here (no service, control
        // or signal thread yet); the child only makes raw syscalls.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: the child: close, unshare, one write, one blocking
            // read, _exit; all async-signal-safe, on fds inherited from the
            // parent. Its copy of the release pipe's write end is closed
            // first, or its read would never see the parent close it.
            unsafe {
                libc::close(release_w.as_raw_fd());
                let ok: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    1
                } else {
                    0
                };
                libc::write(ready_w.as_raw_fd(), (&ok as *const u8).cast(), 1);
                let mut b = 0u8;
                libc::read(release_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        drop(ready_w);
        drop(release_r);
        let mut ns = UserNs {
            fd: ready_r,
            child: pid,
            release: Some(release_w),
        };
        let mut ok = [0u8; 1];
        let got = nix::unistd::read(ns.fd.as_raw_fd(), &mut ok);
        if got != Ok(1) || ok[0] != 1 {
            return Err("unshare(CLONE_NEWUSER) failed in the probe child".into());
        }
        for (file, map) in [("uid_map", PROBE_MAP), ("gid_map", PROBE_MAP)] {
            fs::write(format!("/proc/{pid}/{file}"), map)
                .map_err(|e| format!("writing the probe's {file}: {e}"))?;
        }
        let f = fs::File::open(format!("/proc/{pid}/ns/user"))
            .map_err(|e| format!("opening the probe's user namespace: {e}"))?;
        ns.fd = OwnedFd::from(f);
        Ok(ns)
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        // Closing the pipe ends the child's read.
        self.release = None;
        let mut st = 0;
        // SAFETY: waitpid on our own child; st is a valid out-pointer.
        unsafe { libc::waitpid(self.child, &mut st, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_drops_nested() {
        let raw = br#"[{"tag":"hullshare1","path":"/home/me/src","fs":"virtiofs"},{"tag":"hullshare0","path":"/home/me","fs":"virtiofs"},{"tag":"hullshare2","path":"/tmp/x","fs":"9p"}]"#;
        let s = parse(raw).unwrap();
        let paths: Vec<_> = s.iter().map(|s| s.path.display().to_string()).collect();
        assert_eq!(paths, ["/home/me", "/tmp/x"]);
        assert_eq!(s[1].fs, Fs::NineP);
    }

    #[test]
    fn hostile_maps_are_refused() {
        for bad in [
            r#"[{"tag":"hullshare0","path":"relative","fs":"virtiofs"}]"#,
            r#"[{"tag":"hullshare0","path":"/a/../etc","fs":"virtiofs"}]"#,
            r#"[{"tag":"hullshare0","path":"/","fs":"virtiofs"}]"#,
            r#"[{"tag":"evil,trans=fd","path":"/a","fs":"9p"}]"#,
            r#"[{"tag":"hullshare0","path":"/a","fs":"virtiofs","extra":1}]"#,
            r#"[{"tag":"hullshare0","path":"/a","fs":"nfs"}]"#,
            r#"[{"tag":"hullshare0","path":"/a"}]"#,
            r#"[{"tag":"hullshare0","path":"/a","fs":"virtiofs","hidden":["../etc"]}]"#,
            r#"[{"tag":"hullshare0","path":"/a","fs":"virtiofs","hidden":["/etc"]}]"#,
            r#"[{"tag":"hullshare0","path":"/a","fs":"virtiofs","hidden":[""]}]"#,
            "not json",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
