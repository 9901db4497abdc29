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

/// Current UTC time as RFC 3339 with nanoseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
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
