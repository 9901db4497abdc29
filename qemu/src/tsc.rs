//! The host's TSC frequency. Under TCG the guest reads the host's TSC, and a
//! microvm guest (no PIT, no HPET) hangs in calibration unless the kernel is
//! told the frequency with `tsc_early_khz=`.

use std::time::{Duration, Instant};

/// TSC frequency in kHz, from the kernel when it says so, else measured.
pub fn khz() -> u64 {
    from_sysfs().unwrap_or_else(measure)
}

fn from_sysfs() -> Option<u64> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/tsc_freq_khz").ok()?;
    s.trim().parse().ok().filter(|&k| k > 0)
}

/// Counts TSC ticks across a short sleep; good to well under 0.1%, which is
/// all the guest's early calibration needs (it refines the value later).
pub fn measure() -> u64 {
    let mut best = u64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        let c0 = rdtsc();
        std::thread::sleep(Duration::from_millis(50));
        let c1 = rdtsc();
        let dt = t0.elapsed();
        let khz = (c1.wrapping_sub(c0) as f64 / dt.as_secs_f64() / 1000.0) as u64;
        best = best.min(khz);
    }
    best
}

#[cfg(target_arch = "x86_64")]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn rdtsc() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn plausible_frequency() {
        let k = super::khz();
        assert!((100_000..10_000_000).contains(&k), "tsc {k} kHz");
    }
}
