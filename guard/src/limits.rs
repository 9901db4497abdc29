//! `/proc/meminfo` and `/proc/cpuinfo` as the container's cgroup limits make
//! them (lxcfs-style): a container limited to 512 MiB and 1.5 CPUs sees a
//! 512 MiB machine with 2 processors. Unlimited containers see the VM's.
//! Pure text transformations, plus reading the cgroup files.

use std::path::{Path, PathBuf};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup v2 hierarchy: /sys/fs/cgroup, or the unified one of a hybrid host.
fn v2_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|p| {
            nix::sys::statfs::statfs(*p)
                .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
}

/// The v2 cgroup directory a process is in now.
pub fn cgroup_dir(pid: i32) -> Option<PathBuf> {
    let root = v2_root()?;
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = s.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(root.join(rel.trim_start_matches('/')))
}

fn read(dir: &Path, f: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(f)).ok()
}

/// memory.max in bytes (None: unlimited or unknown).
fn memory_max(dir: &Path) -> Option<u64> {
    read(dir, "memory.max")?.trim().parse().ok()
}

fn stat_value(stat: &str, key: &str) -> u64 {
    stat.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Rewrite the VM's meminfo for a memory limit `max` with `current` used and
/// `stat` (memory.stat) describing it; lines the cgroup says nothing about
/// pass through.
pub fn meminfo(
    vm: &str,
    max: u64,
    current: u64,
    stat: &str,
    swap_max: u64,
    swap_cur: u64,
) -> String {
    let kb = |b: u64| b / 1024;
    let vm_total = vm
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(u64::MAX / 1024);
    let total = kb(max).min(vm_total);
    let used = kb(current).min(total);
    let file = kb(stat_value(stat, "file"));
    let shmem = kb(stat_value(stat, "shmem"));
    let free = total - used;
    let avail = (free + file).min(total);
    let mut out = String::new();
    for l in vm.lines() {
        let key = l.split(':').next().unwrap_or_default();
        let v = match key {
            "MemTotal" => Some(total),
            "MemFree" => Some(free),
            "MemAvailable" => Some(avail),
            "Buffers" => Some(0),
            "Cached" => Some(file),
            "Shmem" => Some(shmem),
            "SwapTotal" => Some(kb(swap_max)),
            "SwapFree" => Some(kb(swap_max.saturating_sub(swap_cur))),
            "SwapCached" => Some(0),
            _ => None,
        };
        match v {
            Some(v) => out.push_str(&format!("{:<16}{v:>8} kB\n", format!("{key}:"))),
            None => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// How many CPUs a cgroup may use: cpu.max's quota/period, rounded up, and
/// no more than its cpuset.
pub fn cpu_limit(cpu_max: Option<&str>, cpuset: Option<&str>) -> Option<Vec<usize>> {
    let set: Option<Vec<usize>> = cpuset.map(parse_cpuset).filter(|v| !v.is_empty());
    let quota = cpu_max.and_then(|s| {
        let mut it = s.split_whitespace();
        let q: u64 = it.next()?.parse().ok()?;
        let p: u64 = it.next()?.parse().ok()?;
        (p > 0).then(|| q.div_ceil(p).max(1) as usize)
    });
    match (set, quota) {
        (None, None) => None,
        (Some(s), None) => Some(s),
        (Some(s), Some(n)) => Some(s.into_iter().take(n).collect()),
        (None, Some(n)) => Some((0..n).collect()),
    }
}

pub fn parse_cpuset(s: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    v.extend(a..=b.min(a + 4096));
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    v.push(a);
                }
            }
        }
    }
    v
}

/// The VM's cpuinfo reduced to the processors in `keep`, renumbered from 0.
pub fn cpuinfo(vm: &str, keep: &[usize]) -> String {
    let mut out = String::new();
    let mut n = 0;
    for block in vm.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let idx = block
            .lines()
            .find_map(|l| l.strip_prefix("processor"))
            .and_then(|r| {
                r.trim_start_matches([' ', '\t', ':'])
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
        if idx.is_some_and(|i| keep.contains(&i)) {
            for l in block.lines() {
                if l.starts_with("processor") {
                    out.push_str(&format!("processor\t: {n}\n"));
                } else {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            out.push('\n');
            n += 1;
        }
    }
    out
}

/// The container's meminfo (the VM's when unlimited).
pub fn meminfo_for(dir: Option<&Path>) -> String {
    let vm = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let Some(dir) = dir else { return vm };
    let Some(max) = memory_max(dir) else {
        return vm;
    };
    let cur = read(dir, "memory.current")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let stat = read(dir, "memory.stat").unwrap_or_default();
    let swap_max = read(dir, "memory.swap.max")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let swap_cur = read(dir, "memory.swap.current")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    meminfo(&vm, max, cur, &stat, swap_max, swap_cur)
}

/// The container's cpuinfo (the VM's when unlimited).
pub fn cpuinfo_for(dir: Option<&Path>) -> String {
    let vm = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let Some(dir) = dir else { return vm };
    let max = read(dir, "cpu.max");
    let set = read(dir, "cpuset.cpus.effective");
    match cpu_limit(max.as_deref(), set.as_deref()) {
        Some(keep) => cpuinfo(&vm, &keep),
        None => vm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEM: &str = "MemTotal:        8000000 kB\nMemFree:         6000000 kB\nMemAvailable:    7000000 kB\nBuffers:           10000 kB\nCached:           500000 kB\nSwapTotal:       1000000 kB\nSwapFree:        1000000 kB\nDirty:               100 kB\n";

    #[test]
    fn meminfo_follows_the_memory_limit() {
        let out = meminfo(
            MEM,
            512 << 20,
            100 << 20,
            "anon 1\nfile 10485760\nshmem 0\n",
            0,
            0,
        );
        assert!(out.contains("MemTotal:         524288 kB"), "{out}");
        assert!(out.contains("MemFree:          421888 kB"), "{out}");
        assert!(out.contains("MemAvailable:     432128 kB"), "{out}");
        assert!(out.contains("SwapTotal:             0 kB"), "{out}");
        assert!(
            out.contains("Dirty:               100 kB"),
            "untouched lines pass: {out}"
        );
    }

    #[test]
    fn cpus_follow_quota_and_cpuset() {
        assert_eq!(cpu_limit(Some("max 100000"), None), None);
        assert_eq!(cpu_limit(Some("150000 100000"), None), Some(vec![0, 1]));
        assert_eq!(cpu_limit(Some("50000 100000"), Some("2-3")), Some(vec![2]));
        assert_eq!(cpu_limit(None, Some("0,2-3")), Some(vec![0, 2, 3]));
        let vm = "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\n";
        let out = cpuinfo(vm, &[1]);
        assert_eq!(out, "processor\t: 0\nmodel name\t: X\n\n");
    }
}
