//! The audit trail: one JSON object per decision in `audit.jsonl`, bounded
//! (rotated once to `audit.jsonl.1` when it would pass its size limit).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub ts: String,
    pub container: &'a str,
    pub pid: i32,
    pub syscall: &'a str,
    pub args: serde_json::Value,
    /// "allow" (the guard performed the call), "deny", or "error" (the guard
    /// could not vet it: the call fails).
    pub verdict: &'a str,
    /// For "allow": the kernel's result ("ok" or an errno name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub reason: String,
}

pub struct AuditLog {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl AuditLog {
    pub fn open(path: &Path, max: u64) -> std::io::Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let file = open(path)?;
        let size = file.metadata()?.len();
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
            size,
            max: max.max(4096),
        })
    }

    /// Append one line (a newline is added).
    pub fn write_line(&mut self, line: &str) {
        let len = line.len() as u64 + 1;
        if self.size + len > self.max {
            let old = self.path.with_extension("jsonl.1");
            if let Err(e) = std::fs::rename(&self.path, &old) {
                tracing::warn!("rotate {}: {e}", self.path.display());
            }
            match open(&self.path) {
                Ok(f) => {
                    self.file = f;
                    self.size = 0;
                }
                Err(e) => tracing::warn!("reopen {}: {e}", self.path.display()),
            }
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        match self.file.write_all(&buf) {
            Ok(()) => self.size += len,
            Err(e) => tracing::warn!("audit write: {e}"),
        }
    }
}

pub fn now_rfc3339() -> String {
    crate::logging::rfc3339_now()
}

pub fn errno_name(e: i32) -> String {
    let n = match e {
        0 => "ok",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINVAL => "EINVAL",
        libc::EBUSY => "EBUSY",
        libc::EACCES => "EACCES",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENOTBLK => "ENOTBLK",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EFAULT => "EFAULT",
        libc::EBADF => "EBADF",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::EXDEV => "EXDEV",
        libc::ENOMEM => "ENOMEM",
        libc::EOVERFLOW => "EOVERFLOW",
        _ => return format!("errno {e}"),
    };
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_once_when_full() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("audit.jsonl");
        let mut a = AuditLog::open(&p, 4096).unwrap();
        let line = "x".repeat(1000);
        for _ in 0..10 {
            a.write_line(&line);
        }
        let cur = std::fs::metadata(&p).unwrap().len();
        let old = std::fs::metadata(t.path().join("audit.jsonl.1"))
            .unwrap()
            .len();
        assert!(cur <= 4096 && old <= 4096, "{cur} {old}");
        assert!(!t.path().join("audit.jsonl.2").exists());
    }
}
