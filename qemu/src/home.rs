//! `HULL_HOME`: one VM's disk, sockets, logs and state. Several homes can run
//! side by side (the tests use a fresh one each).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    /// `$HULL_HOME`, else `~/.local/share/hull`.
    pub fn from_env() -> Result<Self, String> {
        if let Some(h) = std::env::var_os("HULL_HOME") {
            let p = PathBuf::from(h);
            if !p.is_absolute() {
                return Err(format!(
                    "HULL_HOME must be an absolute path, not {}",
                    p.display()
                ));
            }
            return Ok(Home { dir: p });
        }
        let home = std::env::var_os("HOME").ok_or("neither HULL_HOME nor HOME is set")?;
        Ok(Home {
            dir: PathBuf::from(home).join(".local/share/hull"),
        })
    }

    pub fn at(dir: &Path) -> Self {
        Home {
            dir: dir.to_path_buf(),
        }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// The docker CLI's socket (`DOCKER_HOST=unix://...`).
    pub fn docker_sock(&self) -> PathBuf {
        self.p("docker.sock")
    }
    /// vhost-user socket between QEMU and vhost-device-vsock.
    pub fn vhost_sock(&self) -> PathBuf {
        self.p("vhost.sock")
    }
    /// The backend's hybrid-vsock socket: `CONNECT <port>` reaches the guest.
    pub fn vsock_uds(&self) -> PathBuf {
        self.p("vsock.sock")
    }
    pub fn qmp_sock(&self) -> PathBuf {
        self.p("qmp.sock")
    }
    pub fn console_log(&self) -> PathBuf {
        self.p("console.log")
    }
    pub fn daemon_log(&self) -> PathBuf {
        self.p("hull.log")
    }
    pub fn data_disk(&self) -> PathBuf {
        self.p("data.qcow2")
    }
    pub fn state_file(&self) -> PathBuf {
        self.p("state.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.p("hull.lock")
    }
    pub fn settings_blob(&self) -> PathBuf {
        self.p("settings.effective.json")
    }
    pub fn user_settings(&self) -> PathBuf {
        self.p("settings.json")
    }
    /// Which 9p tag carries which shared host directory (read by init).
    pub fn shares_map(&self) -> PathBuf {
        self.p("shares.json")
    }
    /// The user's Docker Engine settings (daemon.json keys hull allows).
    pub fn engine_settings(&self) -> PathBuf {
        self.p("engine.json")
    }
    /// The checked engine settings handed to the VM.
    pub fn engine_blob(&self) -> PathBuf {
        self.p("engine.effective.json")
    }
    pub fn qemu_pid(&self) -> PathBuf {
        self.p("qemu.pid")
    }
}
