//! `hull up` -> engine ready, broken into phases for `hull status` and the
//! bench: QEMU start (host clock, state.json), then the guest's own timeline
//! (seconds since the kernel started, from init), joined by the guest's
//! uptime at the moment it answered.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// The milestone this phase ends with.
    pub phase: &'static str,
    /// Seconds from QEMU's start to the milestone.
    pub at_s: f64,
    /// Seconds from the previous milestone (the phase's own length).
    pub took_s: f64,
}

/// The milestones, in order, and the timeline event that marks each (None:
/// the kernel's start, which the host works out from the guest's uptime).
const MILESTONES: &[(&str, Option<&str>)] = &[
    ("kernel started (QEMU, firmware)", None),
    ("init started (kernel boot)", Some("init started")),
    (
        "first service started (init's setup)",
        Some("containerd started"),
    ),
    ("containerd ready", Some("containerd ready")),
    ("dockerd ready", Some("dockerd ready")),
    ("gate ready (engine ready)", Some("hull-gate ready")),
];

/// Milliseconds since the epoch on the host clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The phases of this boot. `qemu_started_ms` is QEMU's start on the host
/// clock (ms since the epoch), `answered_ms` when the guest's status
/// answered, and `guest` that status (its `uptime_s` and `timeline`). A
/// milestone not reached yet ends the list; without QEMU's start time the
/// first phase is left out and the others are counted from the kernel's.
pub fn phases(qemu_started_ms: Option<u64>, answered_ms: u64, guest: &Value) -> Vec<Phase> {
    let Some(uptime) = guest["uptime_s"].as_f64() else {
        return Vec::new();
    };
    // Where the kernel's clock started, in seconds after QEMU did.
    let kernel_at = qemu_started_ms
        .map(|q| (answered_ms as f64 - q as f64) / 1000.0 - uptime)
        .unwrap_or(0.0)
        .max(0.0);
    let events = guest["timeline"].as_array().cloned().unwrap_or_default();
    let first = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .and_then(|e| e["t"].as_f64())
    };
    let mut out = Vec::new();
    let mut prev = 0.0;
    for (phase, event) in MILESTONES {
        let at = match event {
            None if qemu_started_ms.is_none() => continue,
            None => kernel_at,
            Some(e) => match first(e) {
                Some(t) => kernel_at + t,
                None => break,
            },
        };
        out.push(Phase {
            phase,
            at_s: at,
            took_s: (at - prev).max(0.0),
        });
        prev = at;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guest() -> Value {
        json!({
            "uptime_s": 20.0,
            "timeline": [
                {"t": 1.5, "event": "init started"},
                {"t": 2.0, "event": "containerd started"},
                {"t": 2.1, "event": "hull-guard started"},
                {"t": 4.0, "event": "containerd ready"},
                {"t": 9.0, "event": "dockerd ready"},
                {"t": 9.5, "event": "hull-gate ready"},
                // A later restart does not move the first milestone.
                {"t": 15.0, "event": "dockerd ready"},
            ]
        })
    }

    #[test]
    fn phases_join_the_host_and_guest_clocks() {
        // QEMU started at 1000 s; the guest answered at 1022 s with 20 s of
        // uptime: the kernel started 2 s after QEMU.
        let p = phases(Some(1_000_000), 1_022_000, &guest());
        let got: Vec<(&str, f64, f64)> = p.iter().map(|p| (p.phase, p.at_s, p.took_s)).collect();
        let want = [
            ("kernel started (QEMU, firmware)", 2.0, 2.0),
            ("init started (kernel boot)", 3.5, 1.5),
            ("first service started (init's setup)", 4.0, 0.5),
            ("containerd ready", 6.0, 2.0),
            ("dockerd ready", 11.0, 5.0),
            ("gate ready (engine ready)", 11.5, 0.5),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.0, w.0);
            assert!(
                (g.1 - w.1).abs() < 1e-9 && (g.2 - w.2).abs() < 1e-9,
                "{g:?} vs {w:?}"
            );
        }
    }

    #[test]
    fn an_unreached_milestone_ends_the_list() {
        let mut g = guest();
        g["timeline"] = json!([{"t": 1.5, "event": "init started"}]);
        let p = phases(None, 0, &g);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].phase, "init started (kernel boot)");
        assert!(phases(None, 0, &json!({})).is_empty());
    }
}
