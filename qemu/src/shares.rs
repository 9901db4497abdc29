//! Host directories shared into the VM: one virtiofsd per directory, as the
//! user who runs `hull up`, on QEMU's shared-memfd guest memory.
//!
//! What virtiofsd is told, and why:
//! - `--sandbox namespace`: it pivots into the shared directory in mount,
//!   pid and (for a non-root user) user namespaces of its own, so no lookup
//!   the guest sends, `..` or a symlink a container wrote, leaves the share.
//! - `--seccomp kill`: a syscall outside its list ends it.
//! - `--inode-file-handles=never`: file handles need CAP_DAC_READ_SEARCH,
//!   and `open_by_handle_at` with it reaches any inode of the filesystem,
//!   outside the share: the sandbox would no longer hold.
//! - `--modcaps=-mknod:-setfcap` (only meaningful as root: a non-root
//!   virtiofsd has no capabilities on the host to drop): a device node made
//!   through the share would be a real one on the host.
//! - `--translate-uid/gid`: the host user's own ids are the VM's 0, so the
//!   share is root-owned in the VM (and, through the runtime's idmapped
//!   binds, in every container); everything the VM creates there is owned by
//!   the host user, whatever id the guest asked for (`squash-guest`).
//! - `--cache`: [`CACHE`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::home::Home;

/// virtiofsd's cache mode. `auto`: the guest keeps attributes and names for
/// one second and revalidates data on open when the file's mtime or size
/// changed, so an edit made on the host is seen in the VM within a second,
/// while a `git status` storm of stats is mostly served from the guest's
/// cache. `never` would send every stat to the host; `always` could hide a
/// host edit until the guest drops its cache.
pub const CACHE: &str = "auto";

/// What serves a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareFs {
    #[serde(rename = "virtiofs")]
    Virtiofs,
    /// QEMU's own 9p server: only for `cargo xtask bench`, to compare with
    /// (hidden `hull up --bench-9p-share`). Containers cannot write to it.
    #[serde(rename = "9p")]
    NineP,
}

/// One shared host directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostShare {
    /// The device tag the VM mounts by (`hullshare<N>`).
    pub tag: String,
    pub path: PathBuf,
    pub fs: ShareFs,
    /// Directories inside the share (relative) that the VM covers with an
    /// empty read-only mount: this VM's own home, when it lies inside, so
    /// that no container reaches the VM's disk or sockets through a share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<PathBuf>,
}

/// The device tag of the `i`th shared directory.
pub fn tag(i: usize) -> String {
    format!("hullshare{i}")
}

impl Home {
    /// The vhost-user socket of the `i`th share's virtiofsd.
    pub fn share_sock(&self, i: usize) -> PathBuf {
        self.dir.join(format!("virtiofs{i}.sock"))
    }
}

/// The ids virtiofsd maps: the user running `hull up`.
#[derive(Debug, Clone, Copy)]
pub struct HostUser {
    pub uid: u32,
    pub gid: u32,
}

impl HostUser {
    pub fn current() -> Self {
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        HostUser { uid, gid }
    }
}

/// Everything in the guest's 32-bit id space but (uid_t)-1.
const ALL_GUEST_IDS: u32 = u32::MAX;

/// virtiofsd's command line for one share (see the module's header).
pub fn virtiofsd_args(dir: &Path, socket: &Path, user: HostUser) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--socket-path".into(),
        socket.into(),
        "--shared-dir".into(),
        dir.into(),
        "--sandbox=namespace".into(),
        "--seccomp=kill".into(),
        "--inode-file-handles=never".into(),
        format!("--cache={CACHE}").into(),
        "--log-level=warn".into(),
    ];
    if user.uid == 0 {
        a.push("--modcaps=-mknod:-setfcap".into());
    }
    for (flag, id) in [("--translate-uid", user.uid), ("--translate-gid", user.gid)] {
        // Host user -> VM root (one way, so the squash below decides writes).
        a.push(format!("{flag}=host:{id}:0:1").into());
        // Any id the VM writes with -> the host user.
        a.push(format!("{flag}=squash-guest:0:{id}:{ALL_GUEST_IDS}").into());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(user: HostUser) -> String {
        virtiofsd_args(Path::new("/home/me"), Path::new("/h/virtiofs0.sock"), user)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_user_share_is_sandboxed_and_maps_the_user_to_root() {
        let j = joined(HostUser {
            uid: 1000,
            gid: 1001,
        });
        for want in [
            "--shared-dir /home/me",
            "--sandbox=namespace",
            "--seccomp=kill",
            "--inode-file-handles=never",
            "--translate-uid=host:1000:0:1",
            "--translate-uid=squash-guest:0:1000:4294967295",
            "--translate-gid=host:1001:0:1",
            "--translate-gid=squash-guest:0:1001:4294967295",
        ] {
            assert!(j.contains(want), "{want} missing from {j}");
        }
        // Capabilities are only dropped where there are some.
        assert!(!j.contains("--modcaps"));
    }

    #[test]
    fn a_root_share_cannot_make_devices() {
        let j = joined(HostUser { uid: 0, gid: 0 });
        assert!(j.contains("--modcaps=-mknod:-setfcap"), "{j}");
        assert!(
            j.contains("--translate-uid=squash-guest:0:0:4294967295"),
            "{j}"
        );
    }

    #[test]
    fn map_entries_name_their_filesystem() {
        let s = HostShare {
            tag: tag(1),
            path: "/a".into(),
            fs: ShareFs::NineP,
            hidden: vec![],
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"{"tag":"hullshare1","path":"/a","fs":"9p"}"#);
    }
}
