//! The service table and the pure parts of supervision: start order and
//! restart back-off. Processes themselves are handled in `supervisor`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// A unix socket accepts connections.
    Socket(PathBuf),
    /// `GET /_ping` on a unix socket answers 200 (dockerd).
    Ping(PathBuf),
    /// The service creates this file once it serves.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub name: &'static str,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub depends: Vec<&'static str>,
    pub ready: Ready,
    pub restart: Restart,
    /// How long a stop waits between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
}

pub const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The VM's services. dockerd's socket is root-only (/run/hull is 0700) and
/// only the gate talks to it.
pub fn table() -> Vec<ServiceDef> {
    let env = vec![("PATH".to_string(), PATH_ENV.to_string())];
    vec![
        ServiceDef {
            name: "containerd",
            argv: argv(&[
                "/usr/bin/containerd",
                "--config",
                "/etc/containerd/config.toml",
            ]),
            env: env.clone(),
            depends: vec![],
            ready: Ready::Socket("/run/containerd/containerd.sock".into()),
            restart: Restart::Always,
            stop_timeout: Duration::from_secs(2),
        },
        // Every container's mount calls are vetted by hull-guard; the runtime
        // waits for it (GUARD_WAIT), then refuses to create containers
        // without it.
        ServiceDef {
            name: "hull-guard",
            argv: argv(&["/usr/bin/hull-guard"]),
            env: env.clone(),
            depends: vec![],
            ready: Ready::Socket("/run/hull/guard.sock".into()),
            restart: Restart::Always,
            stop_timeout: Duration::from_secs(2),
        },
        ServiceDef {
            name: "dockerd",
            argv: argv(&[
                "/usr/sbin/dockerd",
                "--config-file",
                crate::engine::DAEMON_JSON,
            ]),
            env: env.clone(),
            // Neither: dockerd dials containerd's socket itself and waits
            // for it (60 s), so the two start together. hull-guard starts
            // beside them too: dockerd restarts containers only seconds
            // later, and the runtime waits for the guard's socket
            // (GUARD_WAIT) before it refuses a container without it.
            depends: vec![],
            ready: Ready::Ping(crate::engine::DOCKER_SOCK.into()),
            restart: Restart::Always,
            stop_timeout: Duration::from_secs(6),
        },
        ServiceDef {
            name: "hull-gate",
            argv: argv(&["/usr/bin/hull-gate"]),
            env: env.clone(),
            // Beside dockerd: the gate waits for dockerd's first answer
            // itself and reports ready only after its first reconcile.
            depends: vec![],
            ready: Ready::File("/run/hull/gate.ready".into()),
            restart: Restart::Always,
            stop_timeout: Duration::from_secs(2),
        },
    ]
}

/// Names in an order where every service comes after what it depends on.
/// Unknown dependencies and cycles are errors (the table is ours; a test checks it).
pub fn start_order(defs: &[ServiceDef]) -> Result<Vec<&'static str>, String> {
    let mut order: Vec<&'static str> = Vec::new();
    let mut left: Vec<&ServiceDef> = defs.iter().collect();
    while !left.is_empty() {
        let before = left.len();
        let mut i = 0;
        while i < left.len() {
            let d = left[i];
            for dep in &d.depends {
                if !defs.iter().any(|x| x.name == *dep) {
                    return Err(format!("{} depends on unknown service {dep}", d.name));
                }
            }
            if d.depends.iter().all(|dep| order.contains(dep)) {
                order.push(d.name);
                left.remove(i);
            } else {
                i += 1;
            }
        }
        if left.len() == before {
            let names: Vec<_> = left.iter().map(|d| d.name).collect();
            return Err(format!("dependency cycle among {}", names.join(", ")));
        }
    }
    Ok(order)
}

/// Restart back-off: doubling delays up to a cap, reset after a stable run;
/// too many exits in a window is a crash loop, reported as such (and still
/// retried at the capped delay).
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// A run at least this long resets the doubling.
    pub stable: Duration,
    pub loop_window: Duration,
    pub loop_exits: usize,
    failures: u32,
    /// Times (as durations since boot) of recent exits.
    recent: VecDeque<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            stable: Duration::from_secs(60),
            loop_window: Duration::from_secs(120),
            loop_exits: 5,
            failures: 0,
            recent: VecDeque::new(),
        }
    }
}

impl Backoff {
    /// Records an exit at `now` after running `ran`; returns the delay before
    /// the next start and whether the service is crash-looping.
    pub fn on_exit(&mut self, now: Duration, ran: Duration) -> (Duration, bool) {
        if ran >= self.stable {
            self.failures = 0;
        }
        let factor = 1u32.checked_shl(self.failures).unwrap_or(u32::MAX);
        let delay = self.base.saturating_mul(factor).min(self.cap);
        self.failures = self.failures.saturating_add(1);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > self.loop_window)
        {
            self.recent.pop_front();
        }
        (delay, self.recent.len() >= self.loop_exits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &'static str, depends: Vec<&'static str>) -> ServiceDef {
        ServiceDef {
            name,
            argv: vec![],
            env: vec![],
            depends,
            ready: Ready::File("/x".into()),
            restart: Restart::Always,
            stop_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn every_service_starts_at_once() {
        // No serial wait at boot: dockerd waits for containerd's socket
        // itself, the runtime for the guard's, the gate for dockerd's first
        // answer. A dependency added here is boot time lost: say why.
        let t = table();
        for d in &t {
            assert!(d.depends.is_empty(), "{} waits for {:?}", d.name, d.depends);
        }
        let order = start_order(&t).unwrap();
        assert_eq!(order, ["containerd", "hull-guard", "dockerd", "hull-gate"]);
    }

    #[test]
    fn cycles_and_unknown_deps_are_errors() {
        let c = vec![def("a", vec!["b"]), def("b", vec!["a"])];
        assert!(start_order(&c).unwrap_err().contains("cycle"));
        let u = vec![def("a", vec!["nope"])];
        assert!(start_order(&u).unwrap_err().contains("unknown"));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let s = Duration::from_secs;
        let quick = Duration::from_millis(10);
        let delays: Vec<_> = (0..10)
            .map(|i| b.on_exit(s(1000 + i * 100), quick).0)
            .collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[2], Duration::from_secs(1));
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(30));
        // A long stable run starts the doubling over.
        assert_eq!(b.on_exit(s(5000), s(600)).0, Duration::from_millis(250));
    }

    #[test]
    fn crash_loop_is_detected_and_clears() {
        let mut b = Backoff::default();
        let s = Duration::from_secs;
        let q = Duration::from_millis(1);
        let looping: Vec<bool> = (0..6).map(|i| b.on_exit(s(10 + i), q).1).collect();
        assert_eq!(looping, [false, false, false, false, true, true]);
        // Long after, one exit alone is not a loop.
        assert!(!b.on_exit(s(10_000), q).1);
    }

    #[test]
    fn backoff_survives_huge_counts() {
        let mut b = Backoff::default();
        for i in 0..1000 {
            let (d, _) = b.on_exit(Duration::from_secs(i), Duration::ZERO);
            assert!(d <= b.cap);
        }
    }
}
