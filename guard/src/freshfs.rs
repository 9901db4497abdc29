//! Building a fresh proc or sysfs for a container, with its masks, so that
//! `mount -t proc` inside a container (Docker-in-Docker, `unshare -pm`) works
//! and shows no more than the container's own /proc.
//!
//! Why the guard builds it and not the container: the kernel refuses a new
//! procfs in a user namespace whose mount namespace has a proc with masked
//! submounts (`mount_too_revealing`). Built here, by the VM's root in a
//! private mount namespace of the VM's user namespace, that check does not
//! apply; the masks are then locked the way the runtime's are: the helper
//! enters the caller's user namespace and copies its mount namespace (the
//! kernel locks every copied mount), and clones the tree from that copy. The
//! caller can unmount the whole new proc, never one of its masks, and a
//! non-recursive bind of it is refused by the kernel (locked children).
//!
//! Runs as `hull-guard freshfs` (a fresh single-threaded process: joining a
//! user namespace needs one), result on fd 3.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::control::{Control, ToWorker};
use super::mountinfo;
use super::sysx;
use crate::sys::{self as rsys, FsContext};

#[derive(Debug, Clone, clap::Args)]
pub struct FreshArgs {
    #[arg(long)]
    pub kind: String,
    /// The caller's thread id (VM pid).
    #[arg(long)]
    pub tid: i32,
    /// Paths (relative to the new filesystem's root) to mask.
    #[arg(long = "mask")]
    pub masks: Vec<String>,
    /// Paths to make read-only.
    #[arg(long = "readonly")]
    pub readonly: Vec<String>,
    /// `rel=VM path`: files bound over the new filesystem (emulation).
    #[arg(long = "emulate")]
    pub emulate: Vec<String>,
    /// Options the caller gave that the guard keeps (proc: hidepid, subset).
    #[arg(long = "opt")]
    pub opts: Vec<String>,
    #[arg(long)]
    pub scratch: PathBuf,
}

fn io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

pub fn run(a: &FreshArgs) -> std::io::Result<()> {
    // SAFETY: fd 3 was set up by the guard for this process alone.
    let out = Control::from_fd(unsafe { OwnedFd::from_raw_fd(3) });
    rsys::set_dumpable(false)?;
    let ns = |n: &str| -> std::io::Result<OwnedFd> {
        Ok(std::fs::File::open(format!("/proc/{}/ns/{n}", a.tid))?.into())
    };
    let r = (|| -> std::io::Result<(OwnedFd, Vec<(String, u64)>)> {
        let pidns = ns("pid")?;
        let netns = ns("net")?;
        let userns = ns("user")?;
        rsys::setns(pidns.as_fd(), libc::CLONE_NEWPID)?;
        if a.kind == "sysfs" {
            rsys::setns(netns.as_fd(), libc::CLONE_NEWNET)?;
        }
        // procfs takes the pid namespace its creator *lives* in: a child.
        let (rd, wr) = super::control::pair()?;
        // SAFETY: this process is single-threaded (freshly exec'd).
        match unsafe { nix::unistd::fork() }.map_err(io)? {
            nix::unistd::ForkResult::Child => {
                drop(rd);
                let res = build(a, userns);
                let _ = match res {
                    Ok((tree, submounts)) => wr.send(
                        &ToWorker::Fresh {
                            ok: true,
                            error: None,
                            submounts,
                        },
                        Some(tree.as_raw_fd()),
                    ),
                    Err(e) => wr.send(
                        &ToWorker::Fresh {
                            ok: false,
                            error: Some(e.to_string()),
                            submounts: vec![],
                        },
                        None,
                    ),
                };
                // SAFETY: leave the forked child at once.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(wr);
                let m = rd.recv::<ToWorker>();
                let _ = nix::sys::wait::waitpid(child, None);
                match m? {
                    Some((
                        ToWorker::Fresh {
                            ok: true,
                            submounts,
                            ..
                        },
                        Some(fd),
                    )) => Ok((fd, submounts)),
                    Some((ToWorker::Fresh { error, .. }, _)) => {
                        Err(std::io::Error::other(error.unwrap_or_default()))
                    }
                    _ => Err(std::io::Error::other("builder died")),
                }
            }
        }
    })();
    match r {
        Ok((tree, submounts)) => out.send(
            &ToWorker::Fresh {
                ok: true,
                error: None,
                submounts,
            },
            Some(tree.as_raw_fd()),
        ),
        Err(e) => out.send(
            &ToWorker::Fresh {
                ok: false,
                error: Some(e.to_string()),
                submounts: vec![],
            },
            None,
        ),
    }
}

fn open_beneath(root: &OwnedFd, rel: &str) -> std::io::Result<OwnedFd> {
    rsys::openat2(
        root.as_raw_fd(),
        Path::new(rel.trim_start_matches('/')),
        libc::O_PATH,
        0,
        rsys::RESOLVE_BENEATH | rsys::RESOLVE_NO_SYMLINKS | rsys::RESOLVE_NO_MAGICLINKS,
    )
}

fn build(a: &FreshArgs, userns: OwnedFd) -> std::io::Result<(OwnedFd, Vec<(String, u64)>)> {
    rsys::unshare(libc::CLONE_NEWNS)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io)?;
    std::fs::create_dir_all(&a.scratch)?;
    mount(
        Some("tmpfs"),
        &a.scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=700"),
    )
    .map_err(io)?;
    let top = a.scratch.join("t");
    std::fs::create_dir(&top)?;
    let fs = FsContext::open(&a.kind)?;
    for o in &a.opts {
        match o.split_once('=') {
            Some((k, v)) => fs.set_string(k, v)?,
            None => fs.set_flag(o)?,
        }
    }
    let mut attrs = rsys::MOUNT_ATTR_NOSUID | rsys::MOUNT_ATTR_NODEV | rsys::MOUNT_ATTR_NOEXEC;
    if a.kind == "sysfs" {
        attrs |= rsys::MOUNT_ATTR_RDONLY;
    }
    let m = fs.mount(attrs)?;
    rsys::move_mount_path(m.as_fd(), &top)?;
    let root: OwnedFd =
        rsys::openat2(libc::AT_FDCWD, &top, libc::O_PATH | libc::O_DIRECTORY, 0, 0)?;
    let null: OwnedFd = rsys::openat2(libc::AT_FDCWD, Path::new("/dev/null"), libc::O_PATH, 0, 0)?;
    for rel in &a.masks {
        let t = match open_beneath(&root, rel) {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let tree = if sysx::statx_fd(t.as_fd())?.mode & libc::S_IFMT == libc::S_IFDIR {
            let fs = FsContext::open("tmpfs")?;
            fs.set_string("mode", "755")?;
            fs.set_string("nr_inodes", "1")?;
            fs.set_flag("ro")?;
            fs.mount(
                rsys::MOUNT_ATTR_RDONLY
                    | rsys::MOUNT_ATTR_NOSUID
                    | rsys::MOUNT_ATTR_NODEV
                    | rsys::MOUNT_ATTR_NOEXEC,
            )?
        } else {
            rsys::open_tree(null.as_raw_fd(), None, rsys::OPEN_TREE_CLONE)?
        };
        rsys::move_mount_fd(tree.as_fd(), t.as_fd())?;
    }
    for rel in &a.readonly {
        let t = match open_beneath(&root, rel) {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let tree = rsys::open_tree(
            t.as_raw_fd(),
            None,
            rsys::OPEN_TREE_CLONE | rsys::AT_RECURSIVE,
        )?;
        rsys::mount_setattr(
            tree.as_fd(),
            true,
            rsys::MOUNT_ATTR_RDONLY | rsys::MOUNT_ATTR_NOSUID | rsys::MOUNT_ATTR_NODEV,
            0,
            None,
        )?;
        rsys::move_mount_fd(tree.as_fd(), t.as_fd())?;
    }
    for e in &a.emulate {
        let Some((rel, src)) = e.split_once('=') else {
            continue;
        };
        let t = match open_beneath(&root, rel) {
            Ok(t) => t,
            Err(_) => continue,
        };
        let s: OwnedFd = rsys::openat2(
            libc::AT_FDCWD,
            Path::new(src),
            libc::O_PATH,
            0,
            rsys::RESOLVE_NO_MAGICLINKS,
        )?;
        let tree = rsys::open_tree(s.as_raw_fd(), None, rsys::OPEN_TREE_CLONE)?;
        rsys::move_mount_fd(tree.as_fd(), t.as_fd())?;
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let top_s = top.to_string_lossy().to_string();
    // Where the masks and read-only binds are (the worker identifies each
    // mount there by id once it holds the tree).
    let submounts: Vec<(String, u64)> = mountinfo::parse(&info)
        .into_iter()
        .filter(|e| e.mountpoint != top_s && mountinfo::is_within(&e.mountpoint, &top_s))
        .filter_map(|e| {
            e.mountpoint
                .strip_prefix(&top_s)
                .map(|r| (r.trim_start_matches('/').to_string(), e.dev))
        })
        .collect();
    drop(root);
    // Lock: a mount namespace copied into a less privileged user namespace
    // has every mount locked by the kernel.
    rsys::setns(userns.as_fd(), libc::CLONE_NEWUSER)?;
    rsys::unshare(libc::CLONE_NEWNS)?;
    let tree = rsys::open_tree(
        libc::AT_FDCWD,
        Some(&top),
        rsys::OPEN_TREE_CLONE | rsys::AT_RECURSIVE,
    )?;
    Ok((tree, submounts))
}
