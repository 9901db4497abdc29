//! Settings every command needs, taken from the global flags once.

use std::path::PathBuf;

use crate::cli::{GlobalOpts, GuardMode};

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub root: PathBuf,
    pub guard: GuardMode,
    pub guard_socket: PathBuf,
    pub guard_procfs: PathBuf,
    pub idranges_dir: PathBuf,
    pub idranges_max: usize,
    pub bind_roots: crate::bindroots::BindRoots,
}

impl RuntimeConfig {
    pub fn from_opts(g: &GlobalOpts) -> Self {
        RuntimeConfig {
            root: g.root.clone(),
            guard: g.guard,
            guard_socket: g.guard_socket.clone(),
            guard_procfs: g.guard_procfs.clone(),
            idranges_dir: g.idranges_dir.clone(),
            idranges_max: g.idranges_max,
            bind_roots: crate::bindroots::BindRoots::new(&g.mount_roots),
        }
    }

    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}
