//! One container may not flood the shared audit log: a token budget, and a
//! summary of what was left out.

use super::*;

pub(super) const AUDIT_BATCH: usize = 64;

/// One container may not flood the shared, bounded audit log (and rotate
/// the other containers' records away): past a budget, lines are counted
/// and summarised once per second instead of written.
pub(super) struct AuditBudget {
    tokens: f64,
    last: std::time::Instant,
    suppressed_allow: u64,
    suppressed_other: u64,
    last_summary: std::time::Instant,
}

pub(super) const AUDIT_RATE: f64 = 100.0;
pub(super) const AUDIT_BURST: f64 = 10_000.0;

impl AuditBudget {
    pub(super) fn new() -> Self {
        let now = std::time::Instant::now();
        AuditBudget {
            tokens: AUDIT_BURST,
            last: now,
            suppressed_allow: 0,
            suppressed_other: 0,
            last_summary: now,
        }
    }

    /// May this line be written?
    pub(super) fn take(&mut self, verdict: &str) -> bool {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * AUDIT_RATE).min(AUDIT_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        if verdict == "allow" {
            self.suppressed_allow += 1;
        } else {
            self.suppressed_other += 1;
        }
        false
    }

    pub(super) fn pending(&self) -> bool {
        self.suppressed_allow + self.suppressed_other > 0
    }

    /// A line saying how much was left out, at most once a second (or now,
    /// when `force`d: the worker is going quiet or away).
    pub(super) fn summary(&mut self, container: &str, force: bool) -> Option<String> {
        let n = self.suppressed_allow + self.suppressed_other;
        if n == 0 || (!force && self.last_summary.elapsed() < std::time::Duration::from_secs(1)) {
            return None;
        }
        self.last_summary = std::time::Instant::now();
        let line = json!({"ts": now_rfc3339(), "event": "suppressed", "container": container,
                          "allow": self.suppressed_allow, "deny_or_error": self.suppressed_other})
        .to_string();
        self.suppressed_allow = 0;
        self.suppressed_other = 0;
        Some(line)
    }
}
pub(super) const AUDIT_LINGER_MS: i32 = 50;

#[cfg(test)]
mod tests {
    use super::AuditBudget;

    #[test]
    fn a_flooding_container_is_summarised_not_written() {
        let mut b = AuditBudget::new();
        assert!((0..10_000).all(|_| b.take("allow")));
        let refused = (0..100).filter(|_| !b.take("deny")).count();
        assert!(refused >= 90, "{refused}");
        let s = b.summary("c1", true).unwrap();
        assert!(s.contains("\"suppressed\"") && s.contains("\"c1\""), "{s}");
        assert!(b.summary("c1", true).is_none());
    }
}
