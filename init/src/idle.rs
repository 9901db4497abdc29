//! A modest page cache once the engine is idle.
//!
//! Guest RAM is a shared memfd on the host, and free page reporting hands
//! back only *free* guest pages. After a workload, most of what the VM
//! still holds on the host is the guest's clean page cache: image layers,
//! and binaries read from the verified root. Docker Desktop users expect
//! an idle VM to shrink, so when no container has run for a while and the
//! cache has grown since the last drop (or since boot: boot's own reads
//! count), init drops the clean page cache once (`vm.drop_caches = 1`). Dirty and mapped pages are never touched
//! by the kernel here, so running services keep their code.
//!
//! The check is a read of two small files every [`CHECK`]: cheaper than
//! wiring inotify into kernfs for a decision that need not be prompt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use procfs::Current;

/// How often the idle check runs.
const CHECK: Duration = Duration::from_secs(10);
/// The containers' cgroup parent (dockerd's cgroupfs driver, see the
/// manifest's `exec-opts`); absent until the first container runs.
const CONTAINERS: &str = "/sys/fs/cgroup/docker/cgroup.events";
/// Growth of the page cache since the last drop that makes a drop worth
/// its cost (the next container re-reads what it needs).
const GROWTH_KIB: u64 = 32 * 1024;

/// What one check saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// A container process is alive under the containers' cgroup parent.
    pub busy: bool,
    /// The guest's droppable page cache, KiB: `Cached` less `Shmem` in
    /// /proc/meminfo (tmpfs pages are counted as cache but cannot go).
    pub cached_kib: u64,
}

/// The drop decision, apart from the files it reads (unit-tested).
#[derive(Debug, Default)]
pub struct Policy {
    /// The page cache right after the last drop (None: no drop yet, and
    /// all of the cache counts as growth).
    baseline_kib: Option<u64>,
    /// The previous check saw no container either.
    idle_before: bool,
}

impl Policy {
    /// True when the cache should be dropped now: two checks in a row saw
    /// no container (idle for at least one [`CHECK`]), and the cache grew by
    /// [`GROWTH_KIB`] since the last drop.
    pub fn decide(&mut self, s: Sample) -> bool {
        // No drop yet: everything boot read counts as growth (mkfs and
        // e2fsck, the engine's start-up reads), so the first idle spell
        // after boot drops it once.
        let baseline = self.baseline_kib.unwrap_or(0);
        let idle_twice = !s.busy && self.idle_before;
        self.idle_before = !s.busy;
        // A cache that shrank on its own (memory pressure) lowers the bar.
        if self.baseline_kib.is_some() && s.cached_kib < baseline {
            self.baseline_kib = Some(s.cached_kib);
        }
        idle_twice && s.cached_kib >= baseline + GROWTH_KIB
    }

    /// Records the cache as read after a drop.
    pub fn dropped(&mut self, cached_kib: u64) {
        self.baseline_kib = Some(cached_kib);
    }
}

/// `populated 1` in a cgroup.events file.
pub fn populated(events: &str) -> bool {
    events
        .lines()
        .any(|l| l.split_whitespace().eq(["populated", "1"]))
}

fn sample() -> Option<Sample> {
    // No cgroup parent yet: no container has ever run.
    let busy = std::fs::read_to_string(CONTAINERS)
        .map(|s| populated(&s))
        .unwrap_or(false);
    let m = procfs::Meminfo::current().ok()?;
    let cached_kib = m.cached.saturating_sub(m.shmem.unwrap_or(0)) / 1024;
    Some(Sample { busy, cached_kib })
}

/// Drops so far, and the cache before and after the last one (KiB).
static DROPS: AtomicU64 = AtomicU64::new(0);
static LAST_BEFORE_KIB: AtomicU64 = AtomicU64::new(0);
static LAST_AFTER_KIB: AtomicU64 = AtomicU64::new(0);

/// What `hull status` shows under `guest.idle_cache`.
pub fn status() -> serde_json::Value {
    serde_json::json!({
        "drops": DROPS.load(Ordering::Relaxed),
        "last_before_kib": LAST_BEFORE_KIB.load(Ordering::Relaxed),
        "last_after_kib": LAST_AFTER_KIB.load(Ordering::Relaxed),
        "check_s": CHECK.as_secs(),
        "min_growth_kib": GROWTH_KIB,
    })
}

/// Starts the idle check on a thread of its own.
pub fn start() {
    let spawned = std::thread::Builder::new()
        .name("idle-cache".into())
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut policy = Policy::default();
            loop {
                std::thread::sleep(CHECK);
                let Some(s) = sample() else { continue };
                if !policy.decide(s) {
                    continue;
                }
                match std::fs::write("/proc/sys/vm/drop_caches", "1") {
                    Ok(()) => {
                        let after = sample().map_or(s.cached_kib, |a| a.cached_kib);
                        crate::info!(
                            "engine idle: dropped the clean page cache ({} -> {} MiB)",
                            s.cached_kib / 1024,
                            after / 1024
                        );
                        policy.dropped(after);
                        LAST_BEFORE_KIB.store(s.cached_kib, Ordering::Relaxed);
                        LAST_AFTER_KIB.store(after, Ordering::Relaxed);
                        DROPS.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        crate::warn!("engine idle: cannot drop the page cache: {e}");
                        policy.dropped(s.cached_kib);
                    }
                }
            }
        });
    match spawned {
        Ok(_) => crate::debug!("idle page-cache check started"),
        Err(e) => crate::warn!("cannot start the idle page-cache check: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(busy: bool, mib: u64) -> Sample {
        Sample {
            busy,
            cached_kib: mib * 1024,
        }
    }

    #[test]
    fn drops_only_after_two_idle_checks_and_real_growth() {
        let mut p = Policy::default();
        assert!(!p.decide(s(false, 100)), "idle once is not idle yet");
        assert!(
            p.decide(s(false, 100)),
            "idle twice: boot's 100 MiB goes once"
        );
        p.dropped(60 * 1024);
        assert!(!p.decide(s(true, 300)), "a container is running");
        assert!(!p.decide(s(false, 300)), "idle once again is not idle yet");
        assert!(p.decide(s(false, 300)), "idle twice, grown by 240 MiB");
        p.dropped(110 * 1024);
        assert!(!p.decide(s(false, 120)), "10 MiB of growth is not worth it");
        assert!(!p.decide(s(false, 120)));
        assert!(p.decide(s(false, 150)), "40 MiB of growth while idle");
    }

    #[test]
    fn a_small_boot_cache_is_left_alone() {
        let mut p = Policy::default();
        assert!(!p.decide(s(false, 20)));
        assert!(
            !p.decide(s(false, 20)),
            "20 MiB since boot is not worth a drop"
        );
    }

    #[test]
    fn a_cache_that_shrank_lowers_the_baseline() {
        let mut p = Policy::default();
        p.decide(s(false, 200));
        assert!(p.decide(s(false, 200)));
        p.dropped(200 * 1024);
        p.decide(s(false, 50));
        assert!(p.decide(s(false, 90)), "grown 40 MiB over the new low");
    }

    #[test]
    fn reads_populated_from_cgroup_events() {
        assert!(populated("populated 1\nfrozen 0\n"));
        assert!(!populated("populated 0\nfrozen 0\n"));
        assert!(!populated(""));
    }
}
