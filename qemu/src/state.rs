//! What a running VM's daemon records in `$HULL_HOME/state.json`, and how
//! other `hull` commands find out whether a home is in use.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::home::Home;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmState {
    pub daemon_pid: u32,
    pub qemu_pid: u32,
    pub vhost_pid: u32,
    pub accel: String,
    pub machine: String,
    pub cpus: u32,
    pub memory_mib: u32,
    pub image: PathBuf,
    pub started_unix: u64,
    /// When QEMU was started, ms since the epoch: the first boot phase of
    /// `hull status` is counted from it (absent in an older daemon's state).
    #[serde(default)]
    pub qemu_started_ms: Option<u64>,
    /// The shared directories and what serves them.
    #[serde(default)]
    pub shares: Vec<ShareState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareState {
    pub tag: String,
    pub path: PathBuf,
    pub fs: crate::shares::ShareFs,
    /// virtiofsd's cache mode (none for 9p).
    pub cache: Option<String>,
    /// virtiofsd's pid (none for 9p, served by QEMU).
    pub pid: Option<u32>,
}

impl ShareState {
    pub fn of(d: &crate::machine::ShareDevice, pid: Option<u32>) -> Self {
        let virtiofs = d.share.fs == crate::shares::ShareFs::Virtiofs;
        ShareState {
            tag: d.share.tag.clone(),
            path: d.share.path.clone(),
            fs: d.share.fs,
            cache: virtiofs.then(|| crate::shares::CACHE.to_string()),
            pid,
        }
    }
}

impl VmState {
    pub fn load(home: &Home) -> Option<Self> {
        let text = fs::read_to_string(home.state_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, home: &Home) -> std::io::Result<()> {
        let tmp = home.state_file().with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        fs::rename(tmp, home.state_file())
    }
}

/// The exclusive lock a home's daemon holds for the VM's whole life.
pub struct HomeLock {
    _file: fs::File,
}

/// Takes the home's lock, or says who holds it.
pub fn lock(home: &Home) -> Result<HomeLock, String> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(home.lock_file())
        .map_err(|e| format!("{}: {e}", home.lock_file().display()))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let holder = VmState::load(home)
            .map(|s| format!(" (hull daemon pid {})", s.daemon_pid))
            .unwrap_or_default();
        return Err(format!(
            "another hull process holds {}{holder}",
            home.dir.display()
        ));
    }
    Ok(HomeLock { _file: f })
}

/// Whether some process holds the home's lock (a VM is running there).
pub fn in_use(home: &Home) -> bool {
    // Read-only and shared: a member of group `hull` may ask about the
    // system VM without being able to write its lock file.
    let f = match fs::File::open(home.lock_file()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        // Unreadable: say running, so nothing starts a second VM on it.
        Err(_) => return true,
        Ok(f) => f,
    };
    // SAFETY: flock on a descriptor we own; the shared lock (if taken) is
    // released when `f` closes.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}
