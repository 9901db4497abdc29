//! Building the container's filesystem tree, in a private mount namespace, as
//! the VM's root, *before* the container enters its user namespace.
//!
//! Why this order: when a process moves into a mount namespace owned by a less
//! privileged user namespace, the kernel locks every mount it inherited
//! (MNT_LOCKED, plus locked ro/nosuid/nodev/noexec flags). So the rootfs,
//! /proc, /sys, the masks and the read-only paths built here can be neither
//! unmounted nor remounted read-write from inside, whatever capabilities the
//! container has in its own namespace.
//!
//! Id shifting: every layer and bind is an idmapped mount (container 0..65535 ↔
//! VM range), so images and volumes keep their on-disk 0..65535 ownership and
//! look root-owned inside, with no copy and no chown.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Mount;

use crate::error::{Context, Error, Result};
use crate::guard_proto::{InitialMount, MountRole};
use crate::hardening::{SafeDevice, SAFE_DEVICES};
use crate::idrange::IdRange;
use crate::mountopts::{self, Parsed};
use crate::overlay;
use crate::safepath::{self, Kind};
use crate::sys::{self, *};

pub struct Ctx<'a> {
    pub state_dir: &'a Path,
    pub bundle_dir: &'a Path,
    pub rootfs: &'a Path,
    pub readonly: bool,
    pub userns: RawFd,
    pub ids: IdRange,
    pub mounts: &'a [Mount],
    pub masked: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub privileged: bool,
    pub want_fuse: bool,
    pub terminal: bool,
    /// hull-guard's emulated /proc files for this container (see
    /// [`clone_emulated`]), handed over when the build needs them (the
    /// runtime clones them meanwhile); empty when there are none.
    pub emulated: &'a dyn Fn() -> Result<Emulated>,
    /// Where bind and volume sources may come from.
    pub bind_roots: &'a crate::bindroots::BindRoots,
}

/// A debug-level stage mark of the mount builder (`stage=m: ...`), for the
/// bench's trace (`cargo xtask bench --trace-runtime`); silent without --debug.
pub fn stage(what: std::fmt::Arguments<'_>) {
    tracing::debug!(stage = %format_args!("m: {what}"), "create");
}

pub struct Built {
    pub root: OwnedFd,
    pub mounts: Vec<InitialMount>,
}

/// FUSE's superblock magic: virtiofs, the host shares.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// Whether a mount that cannot be idmapped may still be bound unshifted.
/// Not a FUSE one: that is a host share (virtiofs), and unshifted its files
/// belong to nobody inside and the container cannot write what the user
/// shared; the create fails and says why instead. Others (procfs, 9p) show
/// as nobody inside, never as root.
fn may_bind_unshifted(fs_magic: i64) -> bool {
    fs_magic != FUSE_SUPER_MAGIC
}

/// A detached clone of `src` (fd), idmapped to the container's user namespace.
/// Filesystems that cannot be idmapped are bound without it where
/// [`may_bind_unshifted`] allows, and refused where it does not.
fn idmapped_clone(
    src: BorrowedFd<'_>,
    recursive: bool,
    attrs: u64,
    userns: RawFd,
    what: &str,
) -> Result<OwnedFd> {
    let flags = OPEN_TREE_CLONE | if recursive { AT_RECURSIVE } else { 0 };
    let tree = sys::open_tree(src.as_raw_fd(), None, flags).ctx(|| format!("open_tree {what}"))?;
    match sys::mount_setattr(
        tree.as_fd(),
        recursive,
        attrs | MOUNT_ATTR_IDMAP,
        0,
        Some(userns),
    ) {
        Ok(()) => Ok(tree),
        Err(e) => {
            let magic = nix::sys::statfs::fstatfs(tree.as_fd())
                .map(|f| f.filesystem_type().0)
                .unwrap_or(FUSE_SUPER_MAGIC);
            if !may_bind_unshifted(magic) {
                return Err(Error::Refused(format!(
                    "{what}: a shared host directory that cannot be id-mapped into the container ({e}); see `hull status` for the share"
                )));
            }
            tracing::warn!("{what}: cannot idmap ({e}); bound without id shifting");
            if attrs != 0 {
                sys::mount_setattr(tree.as_fd(), recursive, attrs, 0, None)
                    .ctx(|| format!("mount_setattr {what}"))?;
            }
            Ok(tree)
        }
    }
}

fn open_host(path: &Path) -> Result<OwnedFd> {
    // Why no magic links: a bind source like /proc/self/fd/N would name one of
    // the runtime's own fds, not anything the bundle may legitimately mean.
    sys::openat2(libc::AT_FDCWD, path, libc::O_PATH, 0, RESOLVE_NO_MAGICLINKS)
        .ctx(|| format!("mount source {}", path.display()))
}

fn shifted(v: &str, base: u32) -> Result<String> {
    let n: u32 = v
        .parse()
        .map_err(|_| Error::Bundle(format!("bad id {v:?} in mount options")))?;
    if n >= crate::idrange::RANGE_LEN {
        return Err(Error::Bundle(format!(
            "id {n} in mount options is outside the container's range"
        )));
    }
    Ok((base + n).to_string())
}

/// A new filesystem instance (proc, sysfs, tmpfs, ...) as a detached mount.
fn new_fs(fstype: &str, p: &Parsed, ids: IdRange) -> Result<OwnedFd> {
    let fs = FsContext::open(fstype).ctx(|| format!("fsopen {fstype}"))?;
    let mut data = p.data.clone();
    // Options are parsed in the VM's user namespace here, so ids are shifted
    // into the container's range; tmpfs roots are owned by the container's root.
    if matches!(fstype, "tmpfs" | "devpts") {
        for (k, v) in data.iter_mut() {
            if (k == "uid" || k == "gid") && v.is_some() {
                *v = Some(shifted(v.as_deref().unwrap_or("0"), ids.start)?);
            }
        }
        if fstype == "tmpfs" {
            for k in ["uid", "gid"] {
                if !data.iter().any(|(dk, _)| dk == k) {
                    data.push((k.into(), Some(ids.start.to_string())));
                }
            }
        }
    }
    for (k, v) in &data {
        let r = match v {
            Some(v) => fs.set_string(k, v),
            None => fs.set_flag(k),
        };
        r.ctx(|| format!("{fstype} option {k}"))?;
    }
    fs.mount(p.attrs).ctx(|| format!("mount {fstype}"))
}

fn attach(tree: &OwnedFd, target: &OwnedFd, what: &str) -> Result<()> {
    sys::move_mount_fd(tree.as_fd(), target.as_fd()).ctx(|| format!("mount onto {what}"))
}

pub fn build(ctx: &Ctx<'_>) -> Result<Built> {
    // Nothing done here may propagate back to the VM; VM unmounts may still
    // propagate in (slave), so a volume removed on the VM does not stay pinned.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .ctx(|| "make / a slave in the container's mount namespace")?;
    let scratch = ctx.state_dir.join("mnt");
    std::fs::create_dir_all(&scratch).ctx(|| format!("create {}", scratch.display()))?;
    mount(
        Some("tmpfs"),
        &scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=700"),
    )
    .ctx(|| "mount scratch tmpfs")?;
    stage(format_args!("slave, scratch tmpfs"));
    let mut record = Vec::new();

    let root = build_root(ctx, &scratch)?;
    stage(format_args!("rootfs"));
    record.push(InitialMount {
        destination: "/".into(),
        fstype: "rootfs".into(),
        source: ctx.rootfs.display().to_string(),
        readonly: ctx.readonly,
        role: MountRole::Rootfs,
    });
    let ids = (ctx.ids.start, ctx.ids.start);
    // The roots of the fresh tmpfs instances this build mounted at /dev: the
    // only /dev whose nodes the runtime makes and hands to the container.
    let mut fresh_dev = Vec::new();

    // Docker always mounts /dev; if a bundle does not, hull still gives the
    // container a fresh tmpfs there, so device nodes never land on the image.
    let has_dev = ctx
        .mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev"));
    if !has_dev {
        let p = mountopts::parse(&[
            "nosuid".into(),
            "strictatime".into(),
            "mode=755".into(),
            "size=65536k".into(),
        ]);
        let t = new_fs("tmpfs", &p, ctx.ids)?;
        fresh_dev.push(identity(t.as_fd()).ctx(|| "stat the fresh /dev tmpfs")?);
        let target = safepath::ensure(root.as_fd(), "/dev", Kind::Dir, ids)?;
        attach(&t, &target, "/dev")?;
        stage(format_args!("own /dev tmpfs"));
    }
    let mut has_pts = false;
    for m in ctx.mounts {
        let dest = m.destination().to_string_lossy().to_string();
        if dest == "/dev/pts" {
            has_pts = true;
        }
        record.push(spec_mount(
            ctx,
            root.as_fd(),
            m,
            &dest,
            ids,
            &mut fresh_dev,
        )?);
        stage(format_args!("mount {dest}"));
    }
    if !has_pts {
        let p = mountopts::parse(&[
            "nosuid".into(),
            "noexec".into(),
            "newinstance".into(),
            "ptmxmode=0666".into(),
            "mode=0620".into(),
            "gid=5".into(),
        ]);
        let t = new_fs("devpts", &p, ctx.ids)?;
        let target = safepath::ensure(root.as_fd(), "/dev/pts", Kind::Dir, ids)?;
        attach(&t, &target, "/dev/pts")?;
        stage(format_args!("own /dev/pts"));
    }
    let dev =
        safepath::open_in_root(root.as_fd(), Path::new("dev")).ctx(|| "open /dev in the rootfs")?;
    // Our own tmpfs only if /dev, as the container will see it, is the root
    // of one this build made: a later bind over /dev, a symlink, or a volume
    // is not, and its nodes are never created in or chowned.
    let own_dev = is_fresh_tmpfs_root(dev.as_fd(), &fresh_dev).ctx(|| "stat /dev in the rootfs")?;
    devices(ctx, dev.as_fd(), own_dev, &mut record)?;
    if ctx.terminal {
        // The init binds its pty here from inside (see console::bind_console).
        safepath::placeholder(dev.as_fd(), c"console", ids).ctx(|| "create /dev/console")?;
    }
    stage(format_args!("devices"));
    emulate(ctx, root.as_fd(), &mut record)?;
    stage(format_args!("procfs emulation"));
    // The kernel-locks-off build (`--weaken kernel-locks`, never shipped)
    // makes them later, inside the user namespace: see `masks_unlocked`.
    if !cfg!(feature = "weaken-kernel-locks") {
        masks(ctx, root.as_fd(), &mut record)?;
    }
    if ctx.readonly {
        // Last, so mount targets could still be created in the image; the
        // flag is locked with the rest when the container enters its userns.
        sys::mount_setattr(root.as_fd(), false, MOUNT_ATTR_RDONLY, 0, None)
            .ctx(|| "make the rootfs read-only")?;
        stage(format_args!("rootfs read-only"));
    }
    Ok(Built {
        root,
        mounts: record,
    })
}

fn build_root(ctx: &Ctx<'_>, scratch: &Path) -> Result<OwnedFd> {
    let target = scratch.join("root");
    std::fs::create_dir(&target).ctx(|| "create scratch root")?;
    // Only an overlay mounted at the rootfs is rebuilt from its layers, and
    // statfs names the filesystem of the top-most mount there: any other
    // answer means overlay::find would find none, so the mount table (which
    // grows with every container in the VM) is read only for an overlay.
    let maybe_overlay = nix::sys::statfs::statfs(ctx.rootfs)
        .map(|f| f.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC)
        .unwrap_or(true);
    let layers = if maybe_overlay {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
        stage(format_args!("mountinfo read"));
        overlay::find(&mountinfo, ctx.rootfs)
    } else {
        None
    };

    match layers {
        Some(layers) if !layers.lower.is_empty() => {
            let mut lowers = Vec::new();
            for (i, l) in layers.lower.iter().enumerate() {
                let name = format!("l{i}");
                let d = scratch.join(&name);
                std::fs::create_dir(&d).ctx(|| "create scratch layer dir")?;
                let src = open_host(l)?;
                let tree = idmapped_clone(
                    src.as_fd(),
                    false,
                    MOUNT_ATTR_NODEV,
                    ctx.userns,
                    &format!("layer {}", l.display()),
                )?;
                sys::move_mount_path(tree.as_fd(), &d)
                    .ctx(|| format!("attach layer {}", l.display()))?;
                lowers.push(name);
            }
            stage(format_args!("{} lower layers idmapped", lowers.len()));
            let mut data = format!("lowerdir={}", lowers.join(":"));
            if let (Some(up), Some(work)) = (&layers.upper, &layers.work) {
                // upper and work must sit on one mount: idmap their common parent.
                let parent = common_parent(up, work).ok_or_else(|| {
                    Error::Bundle(format!(
                        "overlay upper {} and work {} share no parent",
                        up.display(),
                        work.display()
                    ))
                })?;
                let d = scratch.join("u");
                std::fs::create_dir(&d).ctx(|| "create scratch upper dir")?;
                let src = open_host(&parent)?;
                let tree = idmapped_clone(
                    src.as_fd(),
                    false,
                    MOUNT_ATTR_NODEV,
                    ctx.userns,
                    &format!("upper {}", parent.display()),
                )?;
                sys::move_mount_path(tree.as_fd(), &d).ctx(|| "attach upper")?;
                stage(format_args!("upper idmapped"));
                let rel = |p: &Path| {
                    p.strip_prefix(&parent)
                        .map(|r| Path::new("u").join(r))
                        .unwrap_or_default()
                };
                // Our own workdir beside Docker's: overlayfs empties its
                // workdir when it mounts, and Docker's own overlay of this
                // container (used by `docker cp`, commit, ...) keeps using
                // `work`; sharing it broke every copy-up on Docker's side.
                let own_work = work.with_file_name("hull-work");
                match std::fs::create_dir(&own_work) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(e).ctx(|| format!("create {}", own_work.display()));
                    }
                }
                data.push_str(&format!(
                    ",upperdir={},workdir={}",
                    rel(up).display(),
                    rel(&own_work).display()
                ));
            }
            for o in &layers.other {
                data.push(',');
                data.push_str(o);
            }
            let cwd = std::env::current_dir().ok();
            nix::unistd::chdir(scratch).ctx(|| "chdir scratch")?;
            // nodev: device nodes shipped in an image (unpacked by dockerd
            // as the VM's root) must never open as the VM's devices.
            let flags = if cfg!(feature = "weaken-nodev") {
                MsFlags::empty()
            } else {
                MsFlags::MS_NODEV
            };
            // Relative layer paths keep the option string short (many layers).
            // overlayfs keeps the mounter's credentials for copy-up and its
            // workdir; through idmapped layers the VM's uid 0 has no mapping
            // (EOVERFLOW, and the overlay would come up read-only), so mount
            // as the container's root ids, with our full capabilities.
            let r = safepath::as_fsids(ctx.ids.start, ctx.ids.start, || {
                let perm = caps::read(None, caps::CapSet::Permitted).unwrap_or_default();
                let _ = caps::set(None, caps::CapSet::Effective, &perm);
                mount(
                    Some("overlay"),
                    "root",
                    Some("overlay"),
                    flags,
                    Some(data.as_str()),
                )
            })
            .ctx(|| format!("mount overlay on idmapped layers ({data})"));
            if let Some(c) = cwd {
                let _ = nix::unistd::chdir(&c);
            }
            r?;
        }
        _ => {
            let src = open_host(ctx.rootfs)?;
            // Non-recursive: whatever the VM has mounted under the rootfs stays out.
            let tree = idmapped_clone(src.as_fd(), false, MOUNT_ATTR_NODEV, ctx.userns, "rootfs")?;
            sys::move_mount_path(tree.as_fd(), &target).ctx(|| "attach rootfs")?;
        }
    }
    sys::openat2(
        libc::AT_FDCWD,
        &target,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .ctx(|| "open new root")
}

fn common_parent(a: &Path, b: &Path) -> Option<PathBuf> {
    let mut p = a.parent()?.to_path_buf();
    loop {
        if b.starts_with(&p) && p != Path::new("/") {
            return Some(p);
        }
        if !p.pop() {
            return None;
        }
    }
}

const ALLOWED_FS: &[&str] = &[
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2",
];

fn spec_mount(
    ctx: &Ctx<'_>,
    root: BorrowedFd<'_>,
    m: &Mount,
    dest: &str,
    ids: (u32, u32),
    fresh_dev: &mut Vec<(u64, u64)>,
) -> Result<InitialMount> {
    let opts = m.options().clone().unwrap_or_default();
    let mut p = mountopts::parse(&opts);
    let typ = m.typ().clone().unwrap_or_else(|| "none".into());
    let source = m.source().clone().unwrap_or_default();
    if p.bind || typ == "bind" {
        let src_path = if source.is_absolute() {
            source.clone()
        } else {
            ctx.bundle_dir.join(&source)
        };
        // The source is checked here, at every create (dockerd's own
        // restarts never pass the gate), and the fd checked is the one bound.
        let src = ctx.bind_roots.open(&src_path, dest)?;
        // Binds and volumes are never a way to a device: nodev, always.
        p.attrs |= MOUNT_ATTR_NODEV;
        let kind = if safepath::is_dir(src.as_fd()) {
            Kind::Dir
        } else {
            Kind::File
        };
        let target = safepath::ensure(root, dest, kind, ids)?;
        // A host share is always bound with what the VM mounted inside it:
        // init covers the VM's own home there, and a non-recursive bind
        // would show what lies beneath the cover.
        let share = nix::sys::statfs::fstatfs(src.as_fd())
            .map(|f| f.filesystem_type().0 == FUSE_SUPER_MAGIC)
            .ctx(|| format!("statfs bind source {}", src_path.display()))?;
        let tree = idmapped_clone(
            src.as_fd(),
            p.recursive || share,
            p.attrs,
            ctx.userns,
            &format!("bind {}", src_path.display()),
        )?;
        attach(&tree, &target, dest)?;
        return Ok(InitialMount {
            destination: dest.into(),
            fstype: "bind".into(),
            source: src_path.display().to_string(),
            readonly: p.readonly,
            role: MountRole::Spec,
        });
    }
    let fstype = match typ.as_str() {
        "cgroup" | "cgroup2" => "cgroup2",
        t if ALLOWED_FS.contains(&t) => t,
        t => {
            return Err(Error::Refused(format!(
                "mount of type {t:?} at {dest} is not allowed (hull allows bind, {})",
                ALLOWED_FS.join(", ")
            )))
        }
    };
    match fstype {
        // sysfs: writes there would reach the VM's devices and kernel.
        "sysfs" => {
            p.attrs |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
            p.readonly = true;
        }
        // Only the container's own subtree is visible (cgroup namespace), and
        // only a privileged container may write it (delegated to its root).
        "cgroup2" => {
            if !ctx.privileged {
                p.attrs |= MOUNT_ATTR_RDONLY;
                p.readonly = true;
            }
            p.data.clear();
        }
        "proc" => p.attrs |= MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        // The container's own /dev keeps its devices: the safe nodes made
        // below (and the device program limits what any node may open);
        // devpts is where its ptys live.
        "tmpfs" if dest == "/dev" => {}
        "devpts" => {}
        _ => p.attrs |= MOUNT_ATTR_NODEV,
    }
    if matches!(fstype, "proc" | "sysfs") {
        no_symlink_on_the_way(root, fstype, dest)?;
    }
    let target = safepath::ensure(root, dest, Kind::Dir, ids)?;
    let tree = match new_fs(fstype, &p, ctx.ids) {
        Ok(t) => t,
        Err(e) if fstype == "cgroup2" => {
            tracing::warn!("no cgroup2 at {dest}: {e}");
            return Ok(InitialMount {
                destination: dest.into(),
                fstype: fstype.into(),
                source: String::new(),
                readonly: true,
                role: MountRole::Spec,
            });
        }
        Err(e) => return Err(e),
    };
    if fstype == "tmpfs" && Path::new(dest) == Path::new("/dev") {
        fresh_dev.push(identity(tree.as_fd()).ctx(|| format!("stat the fresh tmpfs for {dest}"))?);
    }
    attach(&tree, &target, dest)?;
    Ok(InitialMount {
        destination: dest.into(),
        fstype: fstype.into(),
        source: source.display().to_string(),
        readonly: p.readonly,
        role: MountRole::Spec,
    })
}

/// CVE-2019-19921: an image whose /proc (or /sys) is a symlink would have
/// the fresh proc mounted elsewhere (say over a directory the masks never
/// reach), leaving /proc an ordinary directory the image controls. As runc
/// does, refuse it; a missing destination is fine (it is created).
fn no_symlink_on_the_way(root: BorrowedFd<'_>, fstype: &str, dest: &str) -> Result<()> {
    let rel = safepath::clean_dest(dest)?;
    let mut prefix = PathBuf::new();
    for c in rel.components() {
        prefix.push(c);
        match sys::openat2(
            root.as_raw_fd(),
            &prefix,
            // No O_NOFOLLOW: with it openat2 would hand back the link itself.
            libc::O_PATH,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
        ) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Error::Refused(format!(
                    "hull-runtime: refusing to mount {fstype} at {dest}: /{} is a symlink in the image (CVE-2019-19921)",
                    prefix.display()
                )))
            }
            Err(e) => return Err(e).ctx(|| format!("{fstype} destination {dest}")),
        }
    }
    Ok(())
}

/// (st_dev, st_ino) of what `fd` names: the root of a fresh mount is told
/// apart by it (a new tmpfs instance has a device number of its own).
fn identity(fd: BorrowedFd<'_>) -> nix::Result<(u64, u64)> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
    Ok((st.st_dev, st.st_ino))
}

/// Is `dev` the root of one of the fresh tmpfs instances this build made
/// (`fresh`)? Nothing else can be on such an instance: it was created here,
/// detached, and attached only at /dev.
fn is_fresh_tmpfs_root(dev: BorrowedFd<'_>, fresh: &[(u64, u64)]) -> nix::Result<bool> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let fs = nix::sys::statfs::fstatfs(dev)?;
    Ok(fs.filesystem_type().0 as i64 == TMPFS_MAGIC && fresh.contains(&identity(dev)?))
}

/// The safe device nodes and the standard links in the container's /dev.
///
/// Only in `own_dev` (the root of a fresh tmpfs this build mounted) does the
/// runtime create nodes and links and hand them to the container's root, and
/// only the ones it has just created itself. Anywhere else (a bind or volume
/// over /dev, which may hold the VM's real nodes, or a name a spec mount put
/// there), a chown would land on whatever inode the name reaches: the VM's
/// own /dev/null once went to a container's root that way. There the VM's
/// nodes are bound over the names, and nothing is chowned.
fn devices(
    ctx: &Ctx<'_>,
    dev: BorrowedFd<'_>,
    own_dev: bool,
    record: &mut Vec<InitialMount>,
) -> Result<()> {
    let wanted = |d: &SafeDevice| !d.on_request || (d.path == "/dev/fuse" && ctx.want_fuse);
    for d in SAFE_DEVICES.iter().filter(|d| wanted(d)) {
        let name = d.path.trim_start_matches("/dev/");
        if d.on_request && !Path::new(d.path).exists() {
            continue;
        }
        let cname = std::ffi::CString::new(name).map_err(|_| Error::Other("device name".into()))?;
        let devno = libc::makedev(d.major as u32, d.minor as u32);
        let made = if own_dev {
            // SAFETY: valid dirfd and C string.
            let r = unsafe {
                libc::mknodat(
                    dev.as_raw_fd(),
                    cname.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    devno,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        } else {
            Err(std::io::Error::other("/dev is not the runtime's own tmpfs"))
        };
        match made {
            Ok(()) => {
                let gid = if name == "tty" {
                    ctx.ids.start + 5
                } else {
                    ctx.ids.start
                };
                // The node this call just created on our own tmpfs (nothing
                // else can write there yet); the name itself, never followed.
                // SAFETY: valid dirfd and C string.
                let r = unsafe {
                    libc::fchownat(
                        dev.as_raw_fd(),
                        cname.as_ptr(),
                        ctx.ids.start,
                        gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if r != 0 {
                    return Err(std::io::Error::last_os_error())
                        .ctx(|| format!("hand {} to the container's root", d.path));
                }
            }
            // The name is taken (a spec mount there, or a volume's content)
            // or /dev is not ours: bind the VM's own node over whatever is
            // there, never following, trusting or chowning it. A name that
            // already is the right node on our own tmpfs is left as it is.
            Err(e) => {
                if !(own_dev
                    && e.raw_os_error() == Some(libc::EEXIST)
                    && is_node(dev, &cname, devno))
                {
                    bind_device(ctx, dev, &cname, d.path).map_err(|b| {
                        Error::Other(format!("device {}: mknod: {e}; bind: {b}", d.path))
                    })?;
                }
            }
        }
        record.push(InitialMount {
            destination: d.path.into(),
            fstype: "device".into(),
            source: String::new(),
            readonly: false,
            role: MountRole::Device,
        });
    }
    // Created as the container's root, so no chown is ever needed: a name
    // that exists already (a VM node through a bind, a volume's link) is left
    // alone, and the link is never made outside our tmpfs. One switch of the
    // fs ids for all five links (nothing else runs in between).
    if !own_dev {
        return Ok(());
    }
    safepath::as_fsids(ctx.ids.start, ctx.ids.start, || {
        for (name, target) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(e).ctx(|| format!("link /dev/{name} to {target}")),
            }
        }
        Ok(())
    })
}

/// hull-guard's emulated files for one container, cloned as detached mounts:
/// (index in `procfs::EMULATED`, source path, the clone). Made by the runtime
/// while the mount builder works (each is a FUSE round trip to the guard) and
/// passed to it; close-on-exec, and never passed to any process of the
/// container.
pub type Emulated = Vec<(usize, String, OwnedFd)>;

/// Clone this container's emulated files from hull-guard's procfs emulation
/// mounted at `procfs` (the container's range starts at `start`). Nothing
/// when it is not mounted there.
pub fn clone_emulated(procfs: &Path, start: u32) -> Result<Emulated> {
    // One walk to this container's directory of the emulation, and the check
    // that it is the guard's FUSE mount (not a plain directory left where it
    // was mounted); each file is then one lookup below that fd.
    let cdir = hull_guard_proto::procfs::container_dir(procfs, start);
    let emul = match open_procfs_dir(&cdir) {
        Ok(d) => d,
        // Not mounted (the guard runs without it): as before, silently.
        Err(e)
            if e.raw_os_error() == Some(libc::ENOENT) || e.kind() == std::io::ErrorKind::Other =>
        {
            tracing::debug!("no procfs emulation for this container: {e}");
            return Ok(Vec::new());
        }
        Err(e) => {
            tracing::warn!("procfs emulation: {}: {e}", cdir.display());
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::with_capacity(hull_guard_proto::procfs::EMULATED.len());
    for (i, (file, _)) in hull_guard_proto::procfs::EMULATED.iter().enumerate() {
        let src = cdir.join(file);
        // A plain name under the fd, no link followed: nothing outside the
        // emulation's directory can be reached.
        match sys::open_tree(
            emul.as_raw_fd(),
            Some(Path::new(file)),
            OPEN_TREE_CLONE | libc::AT_SYMLINK_NOFOLLOW as u32,
        ) {
            Ok(t) => out.push((i, src.display().to_string(), t)),
            // The clone itself failing is an error, as it always was.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::EPERM | libc::ENOMEM)
                ) =>
            {
                return Err(e).ctx(|| format!("clone {}", src.display()));
            }
            // The lookup failing (the file is gone, the guard stopped
            // answering) leaves /proc's own file, with a warning.
            Err(e) => tracing::warn!("procfs emulation: mount source {}: {e}", src.display()),
        }
    }
    Ok(out)
}

/// Bind hull-guard's emulated files (`ctx.emulated`) over their /proc
/// counterparts, before the read-only paths are made (so /proc/sys's
/// read-only copy includes them) and before the user namespace (so the binds
/// are locked like the masks).
fn emulate(ctx: &Ctx<'_>, root: BorrowedFd<'_>, record: &mut Vec<InitialMount>) -> Result<()> {
    for (i, src, tree) in (ctx.emulated)()? {
        let Some((_, dest)) = hull_guard_proto::procfs::EMULATED.get(i) else {
            return Err(Error::Other(format!("procfs emulation: no file {i}")));
        };
        if ctx.masked.iter().any(|m| Path::new(dest).starts_with(m)) {
            continue;
        }
        let rel = safepath::clean_dest(dest)?;
        let target = match safepath::open_in_root(root, &rel) {
            Ok(t) => t,
            // The VM's kernel may lack a knob (or the bundle has no /proc).
            Err(_) => continue,
        };
        attach(&tree, &target, dest)?;
        record.push(InitialMount {
            destination: dest.to_string(),
            fstype: "fuse".into(),
            source: src,
            readonly: false,
            role: MountRole::Emulated,
        });
    }
    Ok(())
}

/// O_PATH fd of a container's directory in hull-guard's procfs emulation,
/// refused unless it lies on a FUSE mount (the emulation's).
fn open_procfs_dir(cdir: &Path) -> std::io::Result<OwnedFd> {
    let d = sys::openat2(
        libc::AT_FDCWD,
        cdir,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        RESOLVE_NO_MAGICLINKS,
    )?;
    let fs = nix::sys::statfs::fstatfs(d.as_fd())?;
    if fs.filesystem_type().0 != FUSE_SUPER_MAGIC {
        return Err(std::io::Error::other(format!(
            "{} is not on hull-guard's FUSE mount",
            cdir.display()
        )));
    }
    Ok(d)
}

/// Is `name` in `dir` already the character device `devno`?
fn is_node(dir: BorrowedFd<'_>, name: &std::ffi::CStr, devno: libc::dev_t) -> bool {
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, C string and out-buffer; the link itself is stat'ed.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == devno
}

/// Binds the VM's device node `path` over `name` in the container's /dev.
fn bind_device(
    ctx: &Ctx<'_>,
    dev: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    path: &str,
) -> Result<()> {
    let node = open_host(Path::new(path))?;
    let tree =
        sys::open_tree(node.as_raw_fd(), None, OPEN_TREE_CLONE).ctx(|| format!("clone {path}"))?;
    safepath::cover(
        tree.as_fd(),
        dev,
        name,
        (ctx.ids.start, ctx.ids.start),
        path,
    )
}

fn masks(ctx: &Ctx<'_>, root: BorrowedFd<'_>, record: &mut Vec<InitialMount>) -> Result<()> {
    // The VM's /dev/null (never the container's, which it could replace).
    let null = open_host(Path::new("/dev/null"))?;
    for path in &ctx.masked {
        let rel = safepath::clean_dest(path)?;
        let target = match safepath::open_in_root(root, &rel) {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).ctx(|| format!("masked path {path}")),
        };
        let tree = if safepath::is_dir(target.as_fd()) {
            let p = mountopts::parse(&[
                "ro".into(),
                "nosuid".into(),
                "nodev".into(),
                "noexec".into(),
                "mode=755".into(),
                "nr_inodes=1".into(),
            ]);
            new_fs("tmpfs", &p, ctx.ids)?
        } else {
            sys::open_tree(null.as_raw_fd(), None, OPEN_TREE_CLONE).ctx(|| "clone /dev/null")?
        };
        attach(&tree, &target, path)?;
        record.push(InitialMount {
            destination: path.clone(),
            fstype: "mask".into(),
            source: String::new(),
            readonly: true,
            role: MountRole::Masked,
        });
    }
    stage(format_args!("masks ({})", ctx.masked.len()));
    for path in &ctx.readonly_paths {
        let rel = safepath::clean_dest(path)?;
        let target = match safepath::open_in_root(root, &rel) {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).ctx(|| format!("read-only path {path}")),
        };
        let tree = sys::open_tree(target.as_raw_fd(), None, OPEN_TREE_CLONE | AT_RECURSIVE)
            .ctx(|| format!("clone read-only path {path}"))?;
        sys::mount_setattr(
            tree.as_fd(),
            true,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            0,
            None,
        )
        .ctx(|| format!("make {path} read-only"))?;
        attach(&tree, &target, path)?;
        record.push(InitialMount {
            destination: path.clone(),
            fstype: "bind".into(),
            source: path.clone(),
            readonly: true,
            role: MountRole::ReadonlyPath,
        });
    }
    stage(format_args!(
        "read-only paths ({})",
        ctx.readonly_paths.len()
    ));
    Ok(())
}

/// The kernel-locks-off build (`cargo xtask vm-test --weaken kernel-locks`,
/// never shipped): the masks and read-only paths are made after the mount
/// builder entered the container's user namespace and its own mount
/// namespace, so they are ordinary mounts of that namespace, not locked by
/// the kernel. Ids are the container's own here (its root is 0).
#[cfg(feature = "weaken-kernel-locks")]
pub fn masks_unlocked(ctx: &Ctx<'_>, record: &mut Vec<InitialMount>) -> Result<()> {
    let root = open_host(Path::new("/"))?;
    let inner = Ctx {
        ids: IdRange {
            start: 0,
            len: ctx.ids.len,
        },
        masked: ctx.masked.clone(),
        readonly_paths: ctx.readonly_paths.clone(),
        ..*ctx
    };
    masks(&inner, root.as_fd(), record)
}

/// Make the built tree the root (pivot_root, never chroot: a chroot leaves the
/// VM's root reachable) and drop the old root.
pub fn pivot(root: &OwnedFd) -> Result<()> {
    nix::unistd::fchdir(root.as_raw_fd()).ctx(|| "chdir into the new root")?;
    sys::pivot_root_dot().ctx(|| "pivot_root")?;
    stage(format_args!("pivot_root"));
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root")?;
    stage(format_args!("old root detached"));
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fuse_shares_must_be_idmapped() {
        assert!(!may_bind_unshifted(FUSE_SUPER_MAGIC));
        // procfs, 9p: unshifted they show as nobody, never as root.
        assert!(may_bind_unshifted(0x9fa0));
        assert!(may_bind_unshifted(0x0102_1997));
    }
}
