//! `HULL_HOME`: one VM's disk, sockets, logs and state. Several homes can run
//! side by side (the tests use a fresh one each).
//!
//! Without `HULL_HOME`, a VM is named by its profile (`hull --name <profile>`,
//! default `default`): the default profile keeps the home hull always used,
//! `~/.local/share/hull`, so existing VMs stay where they are; any other
//! profile lives in `~/.local/share/hull/profiles/<name>`.

use std::path::{Path, PathBuf};

pub const DEFAULT_PROFILE: &str = "default";

/// `~/.local/share/hull`: the default profile's home, and the folder that
/// holds every other profile's.
pub fn data_dir() -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or("neither HULL_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/hull"))
}

/// Where the other profiles live under the data folder.
pub fn profiles_dir(data: &Path) -> PathBuf {
    data.join("profiles")
}

/// A profile name becomes a folder name: short, plain, no path tricks.
pub fn check_profile(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > 64 || !first_ok || !name.chars().all(ok_char) {
        return Err(format!(
            "VM name {name:?} is not allowed: use 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// The home of profile `name` under the data folder `data`.
pub fn profile_dir(data: &Path, name: &str) -> Result<PathBuf, String> {
    check_profile(name)?;
    Ok(if name == DEFAULT_PROFILE {
        data.to_path_buf()
    } else {
        profiles_dir(data).join(name)
    })
}

#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    /// `$HULL_HOME`, else `~/.local/share/hull`.
    pub fn from_env() -> Result<Self, String> {
        Self::for_profile(None)
    }

    /// `$HULL_HOME` (an explicit override, with no profile given), else the
    /// profile's home under the data folder. An empty `HULL_HOME` is unset.
    pub fn for_profile(profile: Option<&str>) -> Result<Self, String> {
        if let Some(h) = std::env::var_os("HULL_HOME").filter(|h| !h.is_empty()) {
            let p = PathBuf::from(h);
            if !p.is_absolute() {
                return Err(format!(
                    "HULL_HOME must be an absolute path, not {}",
                    p.display()
                ));
            }
            if let Some(name) = profile {
                return Err(format!(
                    "HULL_HOME ({}) and --name {name} both choose the VM: unset HULL_HOME to use profiles",
                    p.display()
                ));
            }
            return Ok(Home { dir: p });
        }
        let data = data_dir()?;
        Ok(Home {
            dir: profile_dir(&data, profile.unwrap_or(DEFAULT_PROFILE))?,
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
    /// The VM's remembered cpus, memory and disk size (see crate::lifecycle).
    pub fn vm_config(&self) -> PathBuf {
        self.p("vm.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_map_to_homes_and_default_keeps_the_old_one() {
        let d = Path::new("/h/.local/share/hull");
        assert_eq!(profile_dir(d, "default"), Ok(d.to_path_buf()));
        assert_eq!(
            profile_dir(d, "dev-2"),
            Ok(PathBuf::from("/h/.local/share/hull/profiles/dev-2"))
        );
    }

    #[test]
    fn bad_profile_names_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "-x", &"a".repeat(65)] {
            let e = profile_dir(Path::new("/d"), bad).unwrap_err();
            assert!(e.contains("is not allowed"), "{bad}: {e}");
        }
    }
}
