//! cgroup v2: one delegated subtree per container.
//!
//! The VM is pure cgroup v2. A host with a hybrid layout (v1 controllers, an
//! empty v2 hierarchy at /sys/fs/cgroup/unified) still gets a v2 cgroup per
//! container there — for the freezer, `cgroup.kill`, process listing and the
//! cgroup namespace — but resource limits cannot be applied; that is logged as
//! a warning naming each limit, never skipped silently.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    /// Absolute path of the container's cgroup directory.
    pub path: PathBuf,
    /// Whether the hierarchy has resource controllers (false on a hybrid host).
    pub controllers: bool,
}

fn is_cgroup2(p: &Path) -> bool {
    nix::sys::statfs::statfs(p)
        .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The v2 hierarchy and whether it has controllers.
pub fn v2_root() -> Option<(PathBuf, bool)> {
    let main = Path::new("/sys/fs/cgroup");
    if is_cgroup2(main) {
        return Some((main.to_path_buf(), true));
    }
    let unified = Path::new("/sys/fs/cgroup/unified");
    if is_cgroup2(unified) {
        return Some((unified.to_path_buf(), false));
    }
    None
}

fn cg_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Cgroup {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

impl Cgroup {
    /// Where the container's cgroup goes: the bundle's `cgroupsPath`
    /// (cgroupfs style, as dockerd's cgroupfs driver writes it) or `hull/<id>`.
    pub fn locate(cgroups_path: Option<&Path>, id: &str) -> Result<Option<Cgroup>> {
        let Some((root, controllers)) = v2_root() else {
            tracing::warn!("no cgroup v2 hierarchy on this machine: no cgroup for container {id} (no pause, no limits)");
            return Ok(None);
        };
        let rel: PathBuf = match cgroups_path {
            Some(p) => {
                let s = p.to_string_lossy();
                if s.contains(':') {
                    return Err(Error::Refused(format!(
                        "systemd-style cgroupsPath {s:?} is not supported: configure dockerd with native.cgroupdriver=cgroupfs"
                    )));
                }
                p.components()
                    .filter(|c| !matches!(c, Component::RootDir))
                    .map(|c| match c {
                        Component::Normal(n) => Ok(PathBuf::from(n)),
                        _ => Err(Error::Refused(format!(
                            "cgroupsPath {s:?} may not contain '..' or '.'"
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?
                    .iter()
                    .collect()
            }
            None => PathBuf::from("hull").join(id),
        };
        if rel.as_os_str().is_empty() {
            return Err(Error::Refused(
                "cgroupsPath may not be the root cgroup".into(),
            ));
        }
        Ok(Some(Cgroup {
            path: root.join(rel),
            controllers,
        }))
    }

    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.path)
            .map_err(|e| cg_err(&self.path, format!("create: {e}")))?;
        if self.controllers {
            self.enable_controllers();
        }
        Ok(())
    }

    /// Enable every available controller down to our parent, so the
    /// container's limits can be set and its own subtree can use them.
    fn enable_controllers(&self) {
        let Some((root, _)) = v2_root() else { return };
        let mut dir = root.clone();
        let Ok(rel) = self.path.strip_prefix(&root) else {
            return;
        };
        for comp in rel.components() {
            let avail = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            let enabled =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            let want: Vec<String> = avail
                .split_whitespace()
                .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
                .map(|c| format!("+{c}"))
                .collect();
            if !want.is_empty() {
                for w in want {
                    if let Err(e) = std::fs::write(dir.join("cgroup.subtree_control"), &w) {
                        tracing::debug!("enable {w} in {}: {e}", dir.display());
                    }
                }
            }
            dir = dir.join(comp);
        }
    }

    pub fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Hand the subtree to the container's root (cgroup v2 delegation): it may
    /// create child cgroups and move its processes among them, never above.
    pub fn delegate(&self, uid: u32, gid: u32) -> Result<()> {
        for f in [
            "",
            "cgroup.procs",
            "cgroup.threads",
            "cgroup.subtree_control",
        ] {
            let p = if f.is_empty() {
                self.path.clone()
            } else {
                self.path.join(f)
            };
            if p.exists() {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                    .map_err(|e| cg_err(&p, format!("chown: {e}")))?;
            }
        }
        Ok(())
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let p = self.path.join(file);
        std::fs::write(&p, value).map_err(|e| cg_err(&p, format!("write {value:?}: {e}")))
    }

    /// Apply the OCI resources. Without controllers (hybrid host) each asked-for
    /// limit is named in a warning instead.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let mut writes: Vec<(String, String)> = Vec::new();
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit() {
                writes.push(("memory.max".into(), limit(l)));
            }
            if let Some(l) = m.reservation() {
                writes.push(("memory.low".into(), limit(l)));
            }
            if let Some(s) = m.swap() {
                // OCI swap is memory+swap; v2 memory.swap.max is swap alone.
                let v = match (s, m.limit()) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l > 0 && s >= l => (s - l).to_string(),
                    (s, _) => s.to_string(),
                };
                writes.push(("memory.swap.max".into(), v));
            }
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares() {
                if s > 0 {
                    // runc's mapping of shares [2, 262144] onto weight [1, 10000].
                    let w = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
                    writes.push(("cpu.weight".into(), w.to_string()));
                }
            }
            if c.quota().is_some() || c.period().is_some() {
                let q = match c.quota() {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".into(),
                };
                let p = c.period().unwrap_or(100_000);
                writes.push(("cpu.max".into(), format!("{q} {p}")));
            }
            if let Some(cpus) = c.cpus() {
                if !cpus.is_empty() {
                    writes.push(("cpuset.cpus".into(), cpus.clone()));
                }
            }
            if let Some(mems) = c.mems() {
                if !mems.is_empty() {
                    writes.push(("cpuset.mems".into(), mems.clone()));
                }
            }
        }
        if let Some(p) = r.pids() {
            writes.push(("pids.max".into(), limit(p.limit())));
        }
        if let Some(b) = r.block_io() {
            if let Some(w) = b.weight() {
                if w > 0 {
                    writes.push(("io.weight".into(), format!("default {w}")));
                }
            }
        }
        if let Some(u) = r.unified() {
            for (k, v) in u {
                // Why: keys become file names under the container's cgroup.
                if k.contains('/') || k.starts_with('.') || k.starts_with("cgroup.") {
                    return Err(cg_err(
                        &self.path,
                        format!("unified key {k:?} is not allowed"),
                    ));
                }
                writes.push((k.clone(), v.clone()));
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        if !self.controllers {
            let names: Vec<&str> = writes.iter().map(|(k, _)| k.as_str()).collect();
            tracing::warn!(
                "cgroup v2 has no controllers on this machine (hybrid host): NOT applied: {}",
                names.join(", ")
            );
            return Ok(());
        }
        for (k, v) in writes {
            // Secondary knobs the kernel may lack (no swap, no io controller):
            // warn by name. Primary limits (memory.max, pids.max, cpu.max, ...)
            // must apply or the container is not created.
            if OPTIONAL.contains(&k.as_str()) && !self.path.join(&k).exists() {
                tracing::warn!(
                    "{k} does not exist in {} (kernel or controller missing): NOT applied",
                    self.path.display()
                );
                continue;
            }
            self.write(&k, &v)?;
        }
        Ok(())
    }

    pub fn freeze(&self, on: bool) -> Result<()> {
        self.write("cgroup.freeze", if on { "1" } else { "0" })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.frozen() == on {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(cg_err(&self.path, "timed out waiting for the freezer"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn frozen(&self) -> bool {
        std::fs::read_to_string(self.path.join("cgroup.events"))
            .map(|s| s.lines().any(|l| l.trim() == "frozen 1"))
            .unwrap_or(false)
    }

    /// Every pid in the subtree.
    pub fn pids(&self) -> Vec<i32> {
        fn walk(dir: &Path, out: &mut Vec<i32>) {
            if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), out);
                    }
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.path, &mut v);
        v
    }

    /// Signal every process; SIGKILL uses cgroup.kill (atomic, no pid races).
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        if sig == libc::SIGKILL && self.path.join("cgroup.kill").exists() {
            return self.write("cgroup.kill", "1");
        }
        for pid in self.pids() {
            // SAFETY: kill(2) with integers; a vanished pid gives ESRCH, ignored.
            unsafe { libc::kill(pid, sig) };
        }
        Ok(())
    }

    /// Remove the subtree, deepest first (waits briefly for dying processes).
    pub fn remove(&self) -> Result<()> {
        fn rm(dir: &Path) -> std::io::Result<()> {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        rm(&e.path())?;
                    }
                }
            }
            match std::fs::remove_dir(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match rm(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(cg_err(&self.path, format!("remove: {e}")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

const OPTIONAL: &[&str] = &["memory.swap.max", "memory.low", "io.weight"];

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}
