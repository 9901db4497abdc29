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
}

impl Timeline {
    pub fn mark(&mut self, event: &str) {
        // Bounded: restarts add marks for as long as the VM runs.
        if self.events.len() >= 256 {
            self.events.remove(32);
        }
        self.events.push(Mark {
            t: crate::log::uptime(),
            event: event.to_string(),
            cpu_ms: cpu_ms(),
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
    /// Resident set size, KiB.
    pub rss_kib: u64,
    pub max_rss_kib: u64,
    /// CPU per thread (name, ms), to see where init's time goes.
    pub threads: Vec<(String, f64)>,
}

/// utime + stime of each of init's threads, from /proc/self/task.
fn thread_cpu() -> Vec<(String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // comm is in parentheses and may contain spaces: split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        // Fields 14 and 15 of stat are the 12th and 13th after the comm.
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| rest.get(*i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        out.push((name, ticks * 1000.0 / hz));
    }
    out
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

pub fn cpu_ms() -> f64 {
    let (u, s) = cpu_split();
    u + s
}

pub fn self_usage() -> SelfUsage {
    let ru = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok();
    let (user, sys) = cpu_split();
    let cpu_ms = user + sys;
    let (user0, sys0) = CPU_AT_START.get().copied().unwrap_or((0.0, 0.0));
    let max_rss_kib = ru.map(|r| r.max_rss() as u64).unwrap_or(0);
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    SelfUsage {
        cpu_ms,
        init_cpu_ms: cpu_ms - user0 - sys0,
        init_user_ms: user - user0,
        init_sys_ms: sys - sys0,
        rss_kib,
        max_rss_kib,
        threads: thread_cpu(),
    }
}
