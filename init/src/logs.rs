//! Per-service logs under /run/hull/log, capped in size (one rotation), with
//! warnings and errors echoed to the console.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const DIR: &str = "/run/hull/log";
/// Per file; one older generation (`.1`) is kept.
pub const CAP_BYTES: u64 = 4 << 20;
/// Longest line kept whole; an endless line is cut into lines this long.
const MAX_LINE: usize = 16 * 1024;
/// The pump's read buffer, and the most it writes at once.
const READ_BYTES: usize = 32 * 1024;

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("{name}.log"))
}

pub use hull_init::request::valid_name;

pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    written: u64,
}

impl LogFile {
    pub fn open(name: &str) -> Arc<Mutex<LogFile>> {
        let _ = fs::create_dir_all(DIR);
        Self::at(path(name))
    }

    fn at(p: PathBuf) -> Arc<Mutex<LogFile>> {
        let file = OpenOptions::new().create(true).append(true).open(&p).ok();
        let written = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        Arc::new(Mutex::new(LogFile {
            path: p,
            file,
            written,
        }))
    }

    /// Appends whole lines (each ending in `\n`) in one write.
    pub fn write(&mut self, lines: &[u8]) {
        if self.written + lines.len() as u64 > CAP_BYTES {
            let p = &self.path;
            let _ = fs::rename(p, p.with_extension("log.1"));
            self.file = OpenOptions::new().create(true).append(true).open(p).ok();
            self.written = 0;
        }
        if let Some(f) = &mut self.file {
            if f.write_all(lines).is_ok() {
                self.written += lines.len() as u64;
            }
        }
    }
}

/// Whether a service's log line is a warning or worse (Go loggers, logrus
/// text and JSON, tracing's compact format).
pub fn is_warning(line: &[u8]) -> bool {
    let l = line.to_ascii_lowercase();
    let has = |p: &str| l.windows(p.len()).any(|w| w == p.as_bytes());
    [
        "level=warn",
        "level=error",
        "level=fatal",
        "level=panic",
        "\"level\":\"warn",
        "\"level\":\"error",
        "\"level\":\"fatal",
        " warn ",
        " error ",
        "panic:",
    ]
    .iter()
    .any(|p| has(p))
}

/// Copies a service's output (stdout and stderr share one pipe) into its
/// log until the pipe closes. Lines are split and scanned for warnings in
/// place, and each read's worth of lines goes to the file in one write
/// (it was two writes per line: every syscall is dear under TCG while
/// containerd and dockerd log their start).
pub fn pump(name: String, stream: impl Read + Send + 'static, log: Arc<Mutex<LogFile>>) {
    let who = name.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("log-{name}"))
        // Reads into a heap buffer; the default 2 MiB stack is never touched.
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut r = BufReader::with_capacity(READ_BYTES, stream);
            let mut out = Vec::with_capacity(READ_BYTES);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r
                    .by_ref()
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let end = line
                    .iter()
                    .rposition(|b| !matches!(b, b'\n' | b'\r'))
                    .map_or(0, |i| i + 1);
                let text = &line[..end];
                if is_warning(text) {
                    crate::warn!("[{name}] {}", String::from_utf8_lossy(text));
                }
                out.extend_from_slice(text);
                out.push(b'\n');
                // Nothing more without blocking: write what this read brought.
                if r.buffer().is_empty() || out.len() >= READ_BYTES {
                    if let Ok(mut l) = log.lock() {
                        l.write(&out);
                    }
                    out.clear();
                }
            }
            if !out.is_empty() {
                if let Ok(mut l) = log.lock() {
                    l.write(&out);
                }
            }
        });
    if let Err(e) = spawned {
        crate::error!("cannot start the log thread for {who}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("dockerd"));
        assert!(valid_name("hull-gate"));
        assert!(!valid_name("../etc/shadow"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn the_pump_keeps_every_line_and_cuts_endless_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("svc.log");
        let log = LogFile::at(file.clone());
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        pump("svc".into(), File::from(r), log);
        let mut w = File::from(w);
        let long = vec![b'x'; MAX_LINE + 10];
        w.write_all(b"one\r\ntwo\n").unwrap();
        w.write_all(&long).unwrap();
        w.write_all(b"\nlast without newline").unwrap();
        drop(w);
        let want = format!(
            "one\ntwo\n{}\n{}\nlast without newline\n",
            "x".repeat(MAX_LINE),
            "x".repeat(10)
        );
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = String::new();
        while std::time::Instant::now() < until {
            got = fs::read_to_string(&file).unwrap_or_default();
            if got.len() >= want.len() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn warnings() {
        assert!(is_warning(b"time=\"x\" level=warning msg=\"y\""));
        assert!(is_warning(b"{\"level\":\"error\",\"msg\":\"x\"}"));
        assert!(is_warning(b"time=\"x\" LEVEL=WARN"));
        assert!(!is_warning(b"time=\"x\" level=info msg=\"y\""));
    }
}
