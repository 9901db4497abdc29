//! Console logging with a monotonic timestamp (seconds since boot, like the
//! kernel's own lines), so the boot timeline reads in one place.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// Init's own log file, once /run is mounted (`hull logs init`).
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

pub fn to_file(path: &str) {
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        if let Ok(mut g) = FILE.lock() {
            *g = Some(f);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

static MAX: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_max(l: Level) {
    MAX.store(l as u8, Ordering::Relaxed);
}

/// Seconds since boot (CLOCK_BOOTTIME), the kernel's own time base.
pub fn uptime() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

pub fn write(level: Level, msg: std::fmt::Arguments<'_>) {
    if level as u8 > MAX.load(Ordering::Relaxed) {
        return;
    }
    let tag = match level {
        Level::Error => "ERROR ",
        Level::Warn => "WARN ",
        Level::Info => "",
        Level::Debug => "debug ",
    };
    let line = format!("[{:>11.6}] hull-init: {tag}{msg}\n", uptime());
    // The console may be gone at shutdown; logging must never take PID 1 down.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Ok(mut g) = FILE.lock() {
        if let Some(f) = g.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) };
}
