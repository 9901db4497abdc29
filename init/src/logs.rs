//! Per-service logs under /run/hull/log, capped in size (one rotation), with
//! warnings and errors echoed to the console.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const DIR: &str = "/run/hull/log";
/// Per file; one older generation (`.1`) is kept.
pub const CAP_BYTES: u64 = 4 << 20;
/// Longest line kept whole; the rest of an endless line is cut.
const MAX_LINE: usize = 16 * 1024;

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("{name}.log"))
}

pub use hull_init::request::valid_name;

pub struct LogFile {
    name: String,
    file: Option<File>,
    written: u64,
}

impl LogFile {
    pub fn open(name: &str) -> Arc<Mutex<LogFile>> {
        let _ = fs::create_dir_all(DIR);
        let p = path(name);
        let file = OpenOptions::new().create(true).append(true).open(&p).ok();
        let written = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        Arc::new(Mutex::new(LogFile {
            name: name.to_string(),
            file,
            written,
        }))
    }

    pub fn line(&mut self, line: &str) {
        if self.written + line.len() as u64 + 1 > CAP_BYTES {
            let p = path(&self.name);
            let _ = fs::rename(&p, p.with_extension("log.1"));
            self.file = OpenOptions::new().create(true).append(true).open(&p).ok();
            self.written = 0;
        }
        if let Some(f) = &mut self.file {
            if f.write_all(line.as_bytes()).is_ok() && f.write_all(b"\n").is_ok() {
                self.written += line.len() as u64 + 1;
            }
        }
    }
}

/// Whether a service's log line is a warning or worse (Go loggers, logrus
/// text and JSON, tracing's compact format).
pub fn is_warning(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
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
    .any(|p| l.contains(p))
}

/// Copies a service's output into its log until the pipe closes.
pub fn pump(name: String, stream: impl Read + Send + 'static, log: Arc<Mutex<LogFile>>) {
    let who = name.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("log-{name}"))
        .spawn(move || {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.by_ref().take(MAX_LINE as u64).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\n', '\r']);
                if is_warning(text) {
                    crate::warn!("[{name}] {text}");
                }
                if let Ok(mut l) = log.lock() {
                    l.line(text);
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
    fn warnings() {
        assert!(is_warning("time=\"x\" level=warning msg=\"y\""));
        assert!(is_warning("{\"level\":\"error\",\"msg\":\"x\"}"));
        assert!(!is_warning("time=\"x\" level=info msg=\"y\""));
    }
}
