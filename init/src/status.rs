//! The boot timeline and the figures `status` reports about init itself.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub events: Vec<Mark>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// Seconds since the kernel started.
    pub t: f64,
    pub event: String,
    /// init's own CPU time so far (ms), to see which step costs what.
    pub cpu_ms: f64,
    /// The part of `cpu_ms` spent in the kernel on init's behalf (mounts,
    /// spawning, console writes), as opposed to init's own code.
    pub sys_ms: f64,
}

impl Timeline {
    pub fn mark(&mut self, event: &str) {
        // Bounded: restarts add marks for as long as the VM runs.
        if self.events.len() >= 256 {
            self.events.remove(32);
        }
        let (user, sys) = cpu_split();
        self.events.push(Mark {
            t: crate::log::uptime(),
            event: event.to_string(),
            cpu_ms: user + sys,
            sys_ms: sys,
        });
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SelfUsage {
    /// User + system CPU time of init (all its threads), milliseconds. The
    /// kernel's own boot work runs as PID 1 before init starts and is counted
    /// here too; `init_cpu_ms` is init's part alone.
    pub cpu_ms: f64,
    pub init_cpu_ms: f64,
    /// `init_cpu_ms` split: init's own code, and the kernel's work on its
    /// behalf (mounting filesystems, the data disk, spawning services).
    pub init_user_ms: f64,
    pub init_sys_ms: f64,
    /// The kernel's boot work (user, system) counted to PID 1 before
    /// init's main(): where the timeline's `cpu_ms` and `sys_ms` start.
    pub start_user_ms: f64,
    pub start_sys_ms: f64,
    /// CPU of init's children once reaped (RUSAGE_CHILDREN), user and
    /// kernel: the setup helpers init runs and waits for (mkfs.ext4,
    /// e2fsck, resize2fs, ...), and services that have exited. Not part of
    /// `init_cpu_ms`, shown so that moving work out of init hides nothing.
    pub children_user_ms: f64,
    pub children_sys_ms: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    pub max_rss_kib: u64,
    /// CPU per thread (name, ms), to see where init's time goes.
    pub threads: Vec<(String, f64)>,
    /// CPU of threads that have ended, summed by name (ms).
    pub ended_threads: Vec<(String, f64)>,
}

/// utime + stime of each of init's threads, from /proc/self/task.
fn thread_cpu() -> Vec<(String, f64)> {
    let hz = procfs::ticks_per_second().max(1) as f64;
    let Ok(tasks) = procfs::process::Process::myself().and_then(|p| p.tasks()) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| t.stat().ok())
        .map(|s| (s.comm, (s.utime + s.stime) as f64 * 1000.0 / hz))
        .collect()
}

/// CPU of init's threads that have ended (readiness watchers, control
/// connections), summed by thread name, ms: they leave nothing in
/// /proc/self/task, yet count in init's total.
static ENDED: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());

/// This thread's CPU so far, ms.
fn this_thread_ms() -> f64 {
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0;
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .map(|r| ms(r.user_time()) + ms(r.system_time()))
        .unwrap_or(0.0)
}

/// Called last by a thread that ends: adds its CPU to [`ENDED`].
pub fn thread_ended() {
    add_ended(
        std::thread::current().name().unwrap_or("?").to_string(),
        this_thread_ms(),
    );
}

/// Adds this thread's CPU so far to [`ENDED`] as `<thread>: <part>` too
/// (the thread's own total still comes with [`thread_ended`]).
pub fn thread_part(part: &str) {
    let name = std::thread::current().name().unwrap_or("?").to_string();
    add_ended(format!("{name}: {part}"), this_thread_ms());
}

fn add_ended(name: String, cpu: f64) {
    if let Ok(mut v) = ENDED.lock() {
        if let Some((_, t)) = v.iter_mut().find(|(n, _)| *n == name) {
            *t += cpu;
        } else if v.len() < 64 {
            // Bounded: names are per service and per kind of connection.
            v.push((name, cpu));
        }
    }
}

/// User and system CPU time PID 1 had used when init's main() began (the
/// kernel's boot work).
pub static CPU_AT_START: std::sync::OnceLock<(f64, f64)> = std::sync::OnceLock::new();

/// (user, system) CPU time of init so far, milliseconds.
pub fn cpu_split() -> (f64, f64) {
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0;
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|r| (ms(r.user_time()), ms(r.system_time())))
        .unwrap_or((0.0, 0.0))
}

pub fn self_usage() -> SelfUsage {
    use nix::sys::resource::{getrusage, UsageWho};
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0;
    let (children_user_ms, children_sys_ms) = getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|r| (ms(r.user_time()), ms(r.system_time())))
        .unwrap_or((0.0, 0.0));
    let ru = getrusage(UsageWho::RUSAGE_SELF).ok();
    let (user, sys) = cpu_split();
    let cpu_ms = user + sys;
    let (user0, sys0) = CPU_AT_START.get().copied().unwrap_or((0.0, 0.0));
    let max_rss_kib = ru.map(|r| r.max_rss() as u64).unwrap_or(0);
    let rss_kib = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.vmrss)
        .unwrap_or(0);
    SelfUsage {
        cpu_ms,
        init_cpu_ms: cpu_ms - user0 - sys0,
        init_user_ms: user - user0,
        init_sys_ms: sys - sys0,
        start_user_ms: user0,
        start_sys_ms: sys0,
        children_user_ms,
        children_sys_ms,
        rss_kib,
        max_rss_kib,
        threads: thread_cpu(),
        ended_threads: ENDED.lock().map(|v| v.clone()).unwrap_or_default(),
    }
}

/// The device-mapper name the host gives the verified root
/// (hull-qemu's `ROOT_DM_NAME`).
const ROOT_DM_NAME: &str = "hull-root";

/// Whether the root is the dm-verity mapping the kernel made before init,
/// and the root hash it checks every block against.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RootVerity {
    /// All of: the command line's `dm-mod.create` is one verity table named
    /// hull-root, /sys/block/dm-0 carries that name, and / is mounted from
    /// dm-0 (mountinfo).
    pub verified: bool,
    /// The root hash in the kernel's table (from /proc/cmdline, which nothing
    /// in the VM can change).
    pub root_hash: Option<String>,
    /// /sys/block/dm-0/dm/name.
    pub dm_name: Option<String>,
    /// major:minor of / (mountinfo) and of dm-0 (/sys/block/dm-0/dev).
    pub root_dev: Option<String>,
    pub dm0_dev: Option<String>,
}

/// The root hash of a command line's `dm-mod.create="hull-root,...verity..."`;
/// `None` unless it is exactly one device, named hull-root, of target verity.
pub fn verity_root_hash(cmdline: &str) -> Option<String> {
    let start = cmdline.find("dm-mod.create=\"")? + "dm-mod.create=\"".len();
    let rest = &cmdline[start..];
    let table = &rest[..rest.find('"')?];
    if table.contains(';') {
        return None;
    }
    // name,uuid,minor,flags,table
    let mut parts = table.splitn(5, ',');
    let name = parts.next()?;
    let table = parts.nth(3)?;
    if name != ROOT_DM_NAME {
        return None;
    }
    let words: Vec<&str> = table.split_ascii_whitespace().collect();
    // <start> <len> verity <version> <data> <hash> <dbs> <hbs> <blocks> <hash_start> <alg> <digest> <salt> ...
    if words.get(2) != Some(&"verity") {
        return None;
    }
    let digest = words.get(11)?;
    (digest.len() >= 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| digest.to_string())
}

/// The major:minor of the mount at `/` (the first one: the root the
/// kernel mounted).
pub fn root_dev(mounts: &[procfs::process::MountInfo]) -> Option<String> {
    mounts
        .iter()
        .find(|m| m.mount_point == std::path::Path::new("/"))
        .map(|m| m.majmin.clone())
}

pub fn root_verity() -> RootVerity {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let root_hash = std::fs::read("/proc/cmdline")
        .ok()
        .and_then(|b| verity_root_hash(&String::from_utf8_lossy(&b)));
    let dm_name = read("/sys/block/dm-0/dm/name");
    let dm0_dev = read("/sys/block/dm-0/dev");
    let root_dev = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .ok()
        .and_then(|m| root_dev(&m.0));
    let verified = root_hash.is_some()
        && dm_name.as_deref() == Some(ROOT_DM_NAME)
        && dm0_dev.is_some()
        && root_dev == dm0_dev;
    RootVerity {
        verified,
        root_hash,
        dm_name,
        root_dev,
        dm0_dev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "caeaeccfaa31cedcbfcb63ef3c8b87c24d9ff593a3a50f1bd5ea414c5b7565aa";

    #[test]
    fn root_hash_from_the_command_line() {
        let c = format!(
            "console=ttyS0 dm-mod.waitfor=/dev/vda dm-mod.create=\"hull-root,,,ro,0 8 verity 1 /dev/vda /dev/vda 4096 4096 1 1 sha256 {HASH} {HASH} 1 panic_on_corruption\" root=/dev/dm-0"
        );
        assert_eq!(verity_root_hash(&c).as_deref(), Some(HASH));
        for bad in [
            c.replace("hull-root,", "other,"),
            c.replace(" verity ", " linear "),
            c.replace("ro,0 8", "ro,0 8;x,,,ro,0 8"),
            c.replace("dm-mod.create", "dm-mod.other"),
            c.replace(HASH, "zz"),
            "dm-mod.create=\"hull-root,,,ro,0 8 verity".to_string(),
        ] {
            assert_eq!(verity_root_hash(&bad), None, "{bad}");
        }
    }

    #[test]
    fn root_device_from_mountinfo() {
        use procfs::FromBufRead;
        let parse = |t: &str| {
            procfs::process::MountInfos::from_buf_read(t.as_bytes())
                .unwrap()
                .0
        };
        let m = "21 1 254:0 / / ro,relatime - erofs /dev/root ro\n22 21 0:5 / /dev rw - devtmpfs devtmpfs rw\n";
        assert_eq!(root_dev(&parse(m)).as_deref(), Some("254:0"));
        assert_eq!(
            root_dev(&parse("22 21 0:5 / /dev rw - devtmpfs x rw\n")),
            None
        );
    }
}
