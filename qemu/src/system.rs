//! The two modes hull runs in.
//!
//! - **User mode** (no `/etc/hull/system.json`): whoever runs `hull up` owns
//!   the VM, its home, the settings blob and the QEMU command line. The admin
//!   file is honoured, but a user who controls the VM can bypass any lock.
//! - **System mode** (`hull system install`, by root): the VM runs as the
//!   service user `_hull` from root-owned paths named in
//!   `/etc/hull/system.json`; admin settings come only from
//!   `/etc/hull/admin-settings.json`; users reach the engine through the
//!   group `hull` (the docker socket) and ask the service to start or stop
//!   the VM (its request socket). Nothing a user owns is read.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::home::Home;

/// Marks system mode; root-owned and not writable by anyone else.
pub const CONFIG: &str = "/etc/hull/system.json";
/// The only admin file system mode reads.
pub const ADMIN_SETTINGS: &str = "/etc/hull/admin-settings.json";
/// The account the system VM runs as.
pub const USER: &str = "_hull";
/// Members may use the engine and ask the service for `up`/`down`.
pub const GROUP: &str = "hull";
/// The system VM's home (disk, sockets, logs), `_hull:hull` 0750.
pub const HOME: &str = "/var/lib/hull";
/// Root-owned copies of the binary and the image the service runs.
pub const LIBEXEC: &str = "/usr/local/libexec/hull";
pub const IMAGE: &str = "/usr/local/share/hull/image";
/// The systemd unit `hull system install` writes.
pub const UNIT: &str = "/etc/systemd/system/hull.service";

/// `/etc/hull/system.json`: what the admin installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SystemConfig {
    pub home: PathBuf,
    /// The root-owned hull binary the service runs.
    pub hull: PathBuf,
    /// The root-owned image folder (vmlinuz, root.erofs).
    pub image: PathBuf,
    pub cpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
}

impl SystemConfig {
    pub fn home(&self) -> Home {
        Home::at(&self.home)
    }
}

#[derive(Debug, Clone)]
pub enum Mode {
    User,
    System(SystemConfig),
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::User => "user",
            Mode::System(_) => "system",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error("{path}: {why}; system mode refuses to start on a file a user could have written")]
    Unsafe { path: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

/// A file (and the folder holding it) that only root can have written:
/// owned by root, not writable by group or others. `Ok(false)` when the file
/// does not exist.
pub fn root_only(p: &Path) -> Result<bool, ModeError> {
    let meta = match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(ModeError::Io {
                path: p.display().to_string(),
                source: e,
            })
        }
        Ok(m) => m,
    };
    let unsafe_ = |why: String| ModeError::Unsafe {
        path: p.display().to_string(),
        why,
    };
    if !meta.file_type().is_file() {
        return Err(unsafe_("not a regular file".into()));
    }
    let check = |m: &std::fs::Metadata, what: &str| -> Result<(), ModeError> {
        if m.uid() != 0 {
            return Err(unsafe_(format!(
                "{what} is owned by uid {}, not root",
                m.uid()
            )));
        }
        if m.mode() & 0o022 != 0 {
            return Err(unsafe_(format!(
                "{what} is writable by group or others (mode {:o})",
                m.mode() & 0o7777
            )));
        }
        Ok(())
    };
    check(&meta, "the file")?;
    if let Some(dir) = p.parent() {
        let d = std::fs::metadata(dir).map_err(|e| ModeError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        check(&d, "its folder")?;
    }
    Ok(true)
}

/// The mode of this machine: system when [`CONFIG`] exists. A config a user
/// could have written is an error (fail closed), never user mode.
pub fn detect() -> Result<Mode, ModeError> {
    detect_at(Path::new(CONFIG))
}

pub fn detect_at(p: &Path) -> Result<Mode, ModeError> {
    if !root_only(p)? {
        return Ok(Mode::User);
    }
    let bytes = std::fs::read(p).map_err(|e| ModeError::Io {
        path: p.display().to_string(),
        source: e,
    })?;
    let cfg = serde_json::from_slice(&bytes).map_err(|e| ModeError::Parse {
        path: p.display().to_string(),
        source: e,
    })?;
    Ok(Mode::System(cfg))
}

/// The service's request socket in the system home (`hull:hull` 0660).
pub fn service_sock(home: &Home) -> PathBuf {
    home.dir.join("service.sock")
}

/// A request to the service, as a user's `hull up`/`hull down` sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("permission denied on {0}: only members of group `hull` may use the system VM (the admin adds you with `usermod -aG hull $USER`; log in again afterwards)")]
    NotMember(String),
    #[error("the hull service is not running ({0} does not answer); the admin starts it with `systemctl start hull` or `hull system start`")]
    NotRunning(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the hull service sent a malformed answer: {0}")]
    Malformed(String),
}

/// Sends one request to the service and reads its one-line answer.
pub fn ask(home: &Home, op: Op, timeout: Duration) -> Result<Answer, AskError> {
    let sock = service_sock(home);
    let shown = sock.display().to_string();
    let mut s = UnixStream::connect(&sock).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => AskError::NotMember(shown.clone()),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            AskError::NotRunning(shown.clone())
        }
        _ => AskError::Io(shown.clone(), e),
    })?;
    let io = |e| AskError::Io(shown.clone(), e);
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    let line = serde_json::to_string(&op).map_err(|e| AskError::Malformed(e.to_string()))?;
    s.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&s)
        .take_line(&mut answer)
        .map_err(|e| AskError::Io(shown.clone(), e))?;
    serde_json::from_str(answer.trim()).map_err(|e| AskError::Malformed(format!("{e}: {answer:?}")))
}

/// One line, at most 4 KiB (a request or an answer is tiny).
trait TakeLine {
    fn take_line(self, out: &mut String) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(self, out: &mut String) -> std::io::Result<usize> {
        std::io::Read::take(self, 4096).read_line(out)
    }
}

/// Reads one request line from a user's connection.
pub fn read_request<R: BufRead>(r: R) -> Result<Op, String> {
    let mut line = String::new();
    r.take_line(&mut line).map_err(|e| e.to_string())?;
    serde_json::from_str(line.trim())
        .map_err(|e| format!("request {:?} is not \"up\" or \"down\": {e}", line.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn missing_config_is_user_mode() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            detect_at(&d.path().join("system.json")).unwrap(),
            Mode::User
        ));
    }

    #[test]
    fn a_config_others_could_write_fails_closed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = d.path().join("system.json");
        std::fs::write(
            &p,
            r#"{"home":"/h","hull":"/b","image":"/i","cpus":1,"memoryMib":512,"diskGib":8}"#,
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = detect_at(&p).unwrap_err().to_string();
        assert!(e.contains("writable by group or others"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        // The unit tier runs as root: the file is root's, so it counts.
        assert!(matches!(detect_at(&p).unwrap(), Mode::System(c) if c.cpus == 1));
    }

    #[test]
    fn requests_are_up_or_down_only() {
        assert_eq!(read_request(&b"\"up\"\n"[..]).unwrap(), Op::Up);
        assert_eq!(read_request(&b"\"down\"\n"[..]).unwrap(), Op::Down);
        let e = read_request(&b"{\"op\":\"shutdown\"}\n"[..]).unwrap_err();
        assert!(e.contains("is not \"up\" or \"down\""), "{e}");
    }
}
