//! What the escape suite compares before and after each attempt: the VM's
//! settings, a canary file only root in the VM can write, the lockdown
//! sysctls and a few other global kernel values a container must not change
//! (the hostname, the uevent helper, the wall clock's offset).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use serde_json::{json, Value};

pub const CANARY: &str = "/var/lib/hull/canary";

/// Creates the canary once per data disk (root only, 0600).
pub fn ensure_canary() {
    if fs::metadata(CANARY).is_ok() {
        return;
    }
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    let res = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(CANARY)
        .and_then(|mut f| f.write_all(&bytes));
    if let Err(e) = res {
        crate::warn!("canary {CANARY}: {e}");
    }
}

fn digest(path: &str) -> Value {
    use sha2::Digest;
    match fs::read(path) {
        Ok(b) => Value::String(hex::encode(sha2::Sha256::digest(&b))),
        Err(e) => Value::String(format!("unreadable: {e}")),
    }
}

/// Global values no container may change.
const WATCHED: &[&str] = &[
    "kernel/hostname",
    "kernel/domainname",
    "kernel/core_pattern",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/pid_max",
    "kernel/printk",
    "kernel/kptr_restrict",
    "kernel/dmesg_restrict",
    "kernel/unprivileged_bpf_disabled",
    "kernel/perf_event_paranoid",
    "kernel/yama/ptrace_scope",
    "vm/overcommit_memory",
    "fs/protected_symlinks",
    "fs/protected_hardlinks",
    "net/core/bpf_jit_harden",
];

/// Listening TCP sockets and bound UDP sockets in the VM's own network
/// namespace, as `proto port` (from /proc/net; no tools needed).
pub fn listening() -> Vec<String> {
    let mut out = Vec::new();
    for (file, proto, state) in [
        ("/proc/net/tcp", "tcp", "0A"),
        ("/proc/net/tcp6", "tcp6", "0A"),
        ("/proc/net/udp", "udp", "07"),
        ("/proc/net/udp6", "udp6", "07"),
    ] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 3 && f[3] == state {
                let port = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .unwrap_or(0);
                out.push(format!("{proto} {port}"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The wall clock's offset from boot time, in whole seconds: constant while
/// nobody sets the clock (settimeofday, clock_settime, adjtimex).
fn clock_offset() -> i64 {
    let read = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a live timespec to fill.
        unsafe { libc::clock_gettime(id, &mut ts) };
        ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
    };
    let (real, boot) = (read(libc::CLOCK_REALTIME), read(libc::CLOCK_BOOTTIME));
    ((real - boot) / 1_000_000_000) as i64
}

pub fn snapshot() -> Value {
    let sysctls: serde_json::Map<String, Value> = WATCHED
        .iter()
        .map(|k| {
            let v = fs::read_to_string(format!("/proc/sys/{k}"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "absent".into());
            (k.replace('/', "."), Value::String(v))
        })
        .collect();
    json!({
        "settings_sha256": digest(crate::settings::PATH),
        "canary_sha256": digest(CANARY),
        "sysctls": sysctls,
        "root_read_only": crate::mounts::is_read_only("/"),
        // Absent in hull's kernel (no UEVENT_HELPER); a value would be a
        // program the kernel runs as the VM's root.
        "uevent_helper": fs::read_to_string("/sys/kernel/uevent_helper")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "absent".into()),
        "clock_offset_s": clock_offset(),
    })
}
