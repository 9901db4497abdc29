//! The audit log: one JSON line per refusal (and per socket grant or
//! revocation), appended to `/run/hull/log/audit.jsonl`.
//!
//! Writes happen on a dedicated thread fed by a bounded queue: the gate's
//! single-threaded runtime must never wait on a disk. If the queue is full
//! (a flood of refusals faster than the disk), events are counted and the
//! count is written as its own line once the writer catches up, so a gap
//! is visible rather than silent.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Size at which the log is rotated (kept: the current file and one `.1`).
pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Events queued for the writer before new ones are dropped (and counted).
const QUEUE: usize = 4096;

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Refused by policy or as malformed.
    Refused,
    /// A docker socket mount was granted (a per-container socket made).
    SocketGranted,
    /// A per-container socket was not re-created (the image is no longer
    /// allowed) or a container not created under hull's policy was stopped.
    Enforced,
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// `host`, `container-socket` or `gate` (the gate's own enforcement).
    pub channel: &'static str,
    /// The container whose socket the request came through, or the
    /// container acted upon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub method: String,
    /// The request target as received.
    pub path: String,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub reason: String,
}

impl Event {
    /// An event stamped now.
    pub fn now(
        channel: &'static str,
        container: Option<String>,
        method: &str,
        path: &str,
        verdict: Verdict,
        status: Option<u16>,
        reason: &str,
    ) -> Event {
        Event {
            time: rfc3339(SystemTime::now()),
            channel,
            container,
            method: method.to_string(),
            path: path.to_string(),
            verdict,
            status,
            reason: reason.to_string(),
        }
    }
}

/// Handle to the audit writer; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl Audit {
    /// Starts the writer thread for `path`. The file is opened lazily, so a
    /// missing directory is reported per write (in the gate's own log) and
    /// never stops the gate.
    pub fn start(path: PathBuf, max_bytes: u64) -> Audit {
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || writer(rx, Writer::new(path, max_bytes), d));
        if let Err(e) = spawned {
            tracing::error!("audit writer thread: {e}");
        }
        Audit { tx, dropped }
    }

    /// Queues one event (never blocks).
    pub fn record(&self, ev: &Event) {
        tracing::warn!(
            channel = ev.channel,
            container = ev.container.as_deref().unwrap_or(""),
            method = %ev.method,
            path = %ev.path,
            verdict = ?ev.verdict,
            "{}",
            ev.reason
        );
        let line = match serde_json::to_string(ev) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("audit event: {e}");
                return;
            }
        };
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn writer(rx: Receiver<String>, mut w: Writer, dropped: Arc<AtomicU64>) {
    while let Ok(line) = rx.recv() {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note = serde_json::json!({
                "time": rfc3339(SystemTime::now()),
                "channel": "gate",
                "verdict": "dropped",
                "reason": format!("{lost} audit events were dropped (queue full)"),
            });
            w.append(&note.to_string());
        }
        w.append(&line);
    }
}

/// Appends lines to a file, rotating it to `<path>.1` before it would grow
/// past `max_bytes`.
pub struct Writer {
    path: PathBuf,
    max_bytes: u64,
    file: Option<(File, u64)>,
}

impl Writer {
    pub fn new(path: PathBuf, max_bytes: u64) -> Writer {
        Writer {
            path,
            max_bytes,
            file: None,
        }
    }

    fn open(path: &Path) -> std::io::Result<(File, u64)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let len = f.metadata()?.len();
        Ok((f, len))
    }

    /// Appends one line (a newline is added).
    pub fn append(&mut self, line: &str) {
        if let Err(e) = self.try_append(line) {
            tracing::error!("audit log {}: {e}", self.path.display());
            self.file = None;
        }
    }

    fn try_append(&mut self, line: &str) -> std::io::Result<()> {
        let need = line.len() as u64 + 1;
        if self.file.is_none() {
            self.file = Some(Self::open(&self.path)?);
        }
        if let Some((_, len)) = &self.file {
            if *len > 0 && len + need > self.max_bytes {
                self.file = None;
                let mut old = self.path.clone().into_os_string();
                old.push(".1");
                std::fs::rename(&self.path, &old)?;
                self.file = Some(Self::open(&self.path)?);
            }
        }
        if let Some((f, len)) = &mut self.file {
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            f.write_all(&buf)?;
            *len += need;
        }
        Ok(())
    }
}

/// `2026-11-27T21:43:05.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(rfc3339(t), "2026-12-31T23:59:59.000Z");
    }

    #[test]
    fn rotates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/audit.jsonl");
        let mut w = Writer::new(path.clone(), 100);
        for i in 0..10 {
            w.append(&format!("{{\"n\":{i},\"pad\":\"0123456789012345678\"}}"));
        }
        let cur = std::fs::read_to_string(&path).unwrap();
        let old = std::fs::read_to_string(dir.path().join("log/audit.jsonl.1")).unwrap();
        assert!(cur.len() <= 100 && old.len() <= 100, "{cur:?} {old:?}");
        assert!(cur.ends_with("\"n\":9,\"pad\":\"0123456789012345678\"}\n"));
        assert!(!dir.path().join("log/audit.jsonl.2").exists());
        for l in cur.lines().chain(old.lines()) {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }

    #[test]
    fn events_are_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = Audit::start(path.clone(), DEFAULT_MAX_BYTES);
        a.record(&Event::now(
            "host",
            None,
            "POST",
            "/v1.41/containers/create",
            Verdict::Refused,
            Some(403),
            "can't mount /etc because it's configured as a restricted host mount",
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(line) = text.lines().next() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["verdict"], "refused");
                assert_eq!(v["status"], 403);
                assert_eq!(v["channel"], "host");
                assert!(v.get("container").is_none());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no audit line");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
