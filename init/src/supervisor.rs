//! Service supervision: start in dependency order, wait for readiness,
//! restart with back-off, reap every child (PID 1's duty), stop in reverse
//! order. One thread owns all state; everything else talks to it through
//! events, so there are no locks around the service table.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::Serialize;

use crate::logs::{self, LogFile};
use crate::services::{start_order, Backoff, Ready, Restart, ServiceDef};
use crate::status::Timeline;

/// Give up waiting for readiness after this long (TCG is slow; dockerd can
/// take 20 s) and report it, without killing the service.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

pub enum Event {
    Exited {
        pid: i32,
        code: String,
    },
    Ready {
        name: &'static str,
        pid: i32,
    },
    Signal(Signal),
    Control(crate::control::Request, Sender<serde_json::Value>),
    /// Benchmark (`bench-engine-floor`): `hold` stops these services and
    /// keeps them stopped (the reply: the pids signalled); `!hold` hands
    /// them back, to be started as at boot.
    #[cfg(feature = "bench")]
    Hold {
        names: Vec<&'static str>,
        hold: bool,
        reply: Sender<Vec<i32>>,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Waiting,
    Starting,
    Ready,
    Backoff,
    CrashLoop,
    Stopping,
    Stopped,
    Failed,
}

struct Svc {
    def: ServiceDef,
    state: State,
    pid: Option<i32>,
    started: Option<Instant>,
    ready_at: Option<Instant>,
    restarts: u32,
    last_exit: Option<String>,
    error: Option<String>,
    backoff: Backoff,
    next_start: Option<Instant>,
    ready_reported_late: bool,
}

#[derive(Serialize)]
pub struct SvcStatus {
    pub name: &'static str,
    pub state: State,
    pub pid: Option<i32>,
    pub ready: bool,
    pub restarts: u32,
    pub uptime_s: Option<f64>,
    pub last_exit: Option<String>,
    pub error: Option<String>,
}

pub struct Supervisor {
    svcs: Vec<Svc>,
    order: Vec<&'static str>,
    tx: Sender<Event>,
    boot: Instant,
    pub timeline: Timeline,
    all_ready_logged: bool,
    shutting_down: bool,
}

impl Supervisor {
    pub fn new(defs: Vec<ServiceDef>, tx: Sender<Event>, timeline: Timeline) -> Self {
        let order = match start_order(&defs) {
            Ok(o) => o,
            Err(e) => {
                crate::error!("service table: {e}; starting in table order");
                defs.iter().map(|d| d.name).collect()
            }
        };
        let svcs = defs
            .into_iter()
            .map(|def| Svc {
                def,
                state: State::Waiting,
                pid: None,
                started: None,
                ready_at: None,
                restarts: 0,
                last_exit: None,
                error: None,
                backoff: Backoff::default(),
                next_start: None,
                ready_reported_late: false,
            })
            .collect();
        Supervisor {
            svcs,
            order,
            tx,
            boot: Instant::now(),
            timeline,
            all_ready_logged: false,
            shutting_down: false,
        }
    }

    fn svc(&mut self, name: &str) -> Option<&mut Svc> {
        self.svcs.iter_mut().find(|s| s.def.name == name)
    }

    fn is_ready(&self, name: &str) -> bool {
        self.svcs
            .iter()
            .any(|s| s.def.name == name && s.state == State::Ready)
    }

    /// Starts whatever can start now: waiting services whose dependencies
    /// are ready, and services whose back-off delay has passed.
    fn tick(&mut self) {
        if self.shutting_down {
            return;
        }
        let now = Instant::now();
        for name in self.order.clone() {
            let deps_ready = {
                let Some(s) = self.svcs.iter().find(|s| s.def.name == name) else {
                    continue;
                };
                s.def.depends.iter().all(|d| self.is_ready(d))
            };
            let Some(s) = self.svc(name) else { continue };
            let due = match s.state {
                State::Waiting => deps_ready,
                State::Backoff | State::CrashLoop => s.next_start.is_some_and(|t| t <= now),
                _ => false,
            };
            if due {
                self.start(name);
            }
        }
        for s in &mut self.svcs {
            if s.state == State::Starting
                && !s.ready_reported_late
                && s.started.is_some_and(|t| t.elapsed() > READY_TIMEOUT)
            {
                s.ready_reported_late = true;
                s.error = Some(format!("not ready after {}s", READY_TIMEOUT.as_secs()));
                crate::error!(
                    "{} is not ready after {}s",
                    s.def.name,
                    READY_TIMEOUT.as_secs()
                );
            }
        }
        if !self.all_ready_logged && self.svcs.iter().all(|s| s.state == State::Ready) {
            self.all_ready_logged = true;
            crate::info!("all services ready");
            self.timeline.mark("all services ready");
        }
    }

    fn start(&mut self, name: &'static str) {
        let tx = self.tx.clone();
        let since_boot = self.boot.elapsed();
        let Some(s) = self.svc(name) else { return };
        let def = s.def.clone();
        let log = LogFile::open(def.name);
        // stdout and stderr share one pipe: one pump thread per service.
        let (out, err, reader) = match output_pipe() {
            Ok(p) => p,
            Err(e) => {
                crate::error!(
                    "{}: no pipe for its output ({e}); it goes nowhere",
                    def.name
                );
                (Stdio::null(), Stdio::null(), None)
            }
        };
        let mut cmd = Command::new(&def.argv[0]);
        cmd.args(&def.argv[1..])
            .env_clear()
            .envs(def.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Own process group: a service's signals never reach init. Without a
        // pre_exec hook std uses posix_spawn (no fork of init's address
        // space: measured ~100 ms per start under TCG with fork) and resets
        // the child's signal mask, which init's sigwait thread relies on.
        cmd.process_group(0);
        let spawned = cmd.spawn();
        // The write ends go with `cmd`: the pump sees EOF when the service
        // (and whatever inherited them) is gone.
        drop(cmd);
        match spawned {
            Ok(child) => {
                let pid = child.id() as i32;
                if let Some(r) = reader {
                    logs::pump(def.name.to_string(), std::fs::File::from(r), log);
                }
                // The reaper collects the exit; dropping Child does not wait.
                drop(child);
                s.pid = Some(pid);
                s.state = State::Starting;
                s.started = Some(Instant::now());
                s.ready_at = None;
                s.ready_reported_late = false;
                crate::info!("started {} (pid {pid})", def.name);
                self.timeline.mark(&format!("{} started", def.name));
                watch_ready(def.name, pid, def.ready.clone(), tx);
            }
            Err(e) => {
                let msg = format!("cannot start {}: {e}", def.argv[0]);
                crate::error!("{}: {msg}", def.name);
                s.error = Some(msg);
                s.state = State::Failed;
                // Retry later: the binary may be on a disk that is not there yet.
                let (delay, looping) = s.backoff.on_exit(since_boot, Duration::ZERO);
                s.next_start = Some(Instant::now() + delay);
                s.state = if looping {
                    State::CrashLoop
                } else {
                    State::Backoff
                };
            }
        }
    }

    fn on_exit(&mut self, pid: i32, code: String) {
        let shutting_down = self.shutting_down;
        let boot = self.boot.elapsed();
        let Some(s) = self.svcs.iter_mut().find(|s| s.pid == Some(pid)) else {
            crate::debug!("reaped orphan {pid} ({code})");
            return;
        };
        let ran = s.started.map(|t| t.elapsed()).unwrap_or_default();
        s.pid = None;
        s.last_exit = Some(code.clone());
        if shutting_down || s.state == State::Stopping {
            s.state = State::Stopped;
            crate::info!("{} stopped ({code})", s.def.name);
            return;
        }
        if s.def.restart == Restart::Never {
            s.state = State::Stopped;
            crate::warn!("{} exited ({code}); not restarting", s.def.name);
            return;
        }
        let (delay, looping) = s.backoff.on_exit(boot, ran);
        s.restarts += 1;
        s.next_start = Some(Instant::now() + delay);
        s.state = if looping {
            State::CrashLoop
        } else {
            State::Backoff
        };
        if looping {
            crate::error!(
                "{} is crash-looping ({code} after {:.1}s); next start in {:.1}s",
                s.def.name,
                ran.as_secs_f64(),
                delay.as_secs_f64()
            );
        } else {
            crate::warn!(
                "{} exited ({code} after {:.1}s); restarting in {:.1}s",
                s.def.name,
                ran.as_secs_f64(),
                delay.as_secs_f64()
            );
        }
    }

    fn on_ready(&mut self, name: &'static str, pid: i32) {
        let Some(s) = self.svc(name) else { return };
        if s.pid != Some(pid) || s.state != State::Starting {
            return;
        }
        s.state = State::Ready;
        s.ready_at = Some(Instant::now());
        s.error = None;
        let took = s.started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        crate::info!("{name} ready ({took:.2}s)");
        self.timeline.mark(&format!("{name} ready"));
    }

    pub fn status(&self) -> Vec<SvcStatus> {
        self.svcs
            .iter()
            .map(|s| SvcStatus {
                name: s.def.name,
                state: s.state.clone(),
                pid: s.pid,
                ready: s.state == State::Ready,
                restarts: s.restarts,
                uptime_s: s.pid.and(s.started).map(|t| t.elapsed().as_secs_f64()),
                last_exit: s.last_exit.clone(),
                error: s.error.clone(),
            })
            .collect()
    }

    /// Sends `sig` to a service's main process (host-side debugging and the
    /// restart test). Returns an error text when there is no such process.
    pub fn signal(&self, name: &str, sig: Signal) -> Result<i32, String> {
        let s = self
            .svcs
            .iter()
            .find(|s| s.def.name == name)
            .ok_or_else(|| format!("no service named {name:?}"))?;
        let pid = s.pid.ok_or_else(|| format!("{name} is not running"))?;
        kill(Pid::from_raw(pid), sig).map_err(|e| format!("kill {pid}: {e}"))?;
        Ok(pid)
    }

    /// Runs the event loop until a shutdown has stopped every service.
    pub fn run(
        &mut self,
        rx: &Receiver<Event>,
        on_control: &dyn Fn(&mut Self, crate::control::Request) -> serde_json::Value,
    ) {
        loop {
            self.tick();
            let wait = self.next_wakeup();
            match rx.recv_timeout(wait) {
                Ok(Event::Exited { pid, code }) => self.on_exit(pid, code),
                Ok(Event::Ready { name, pid }) => self.on_ready(name, pid),
                Ok(Event::Signal(sig)) => {
                    crate::info!("received {sig}: shutting down");
                    return;
                }
                Ok(Event::Control(req, reply)) => {
                    let shutdown = matches!(req, crate::control::Request::Shutdown);
                    let v = on_control(self, req);
                    let _ = reply.send(v);
                    if shutdown {
                        crate::info!("shutdown requested over the control port");
                        return;
                    }
                }
                #[cfg(feature = "bench")]
                Ok(Event::Hold { names, hold, reply }) => {
                    let _ = reply.send(self.hold(&names, hold));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// See [`Event::Hold`]. A held service is `Stopping`, then `Stopped`,
    /// which `tick` never restarts; released, it is `Waiting` again.
    #[cfg(feature = "bench")]
    fn hold(&mut self, names: &[&'static str], hold: bool) -> Vec<i32> {
        let mut pids = Vec::new();
        for name in names {
            let Some(s) = self.svc(name) else { continue };
            if !hold {
                if s.state == State::Stopped {
                    s.state = State::Waiting;
                }
                continue;
            }
            match s.pid {
                Some(pid) => {
                    s.state = State::Stopping;
                    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                    pids.push(pid);
                }
                None => s.state = State::Stopped,
            }
        }
        crate::info!(
            "bench: {} {}",
            if hold { "holding" } else { "releasing" },
            names.join(", ")
        );
        pids
    }

    /// How long the loop may sleep: until the next restart is due, at most
    /// 1 s while a service is still starting (its readiness deadline), and
    /// without end when nothing is pending: an idle init wakes for events
    /// only.
    fn next_wakeup(&self) -> Duration {
        let now = Instant::now();
        let starting = self.svcs.iter().any(|s| s.state == State::Starting);
        let idle = if starting {
            Duration::from_secs(1)
        } else {
            IDLE_WAIT
        };
        self.svcs
            .iter()
            .filter_map(|s| s.next_start)
            .filter(|t| *t > now)
            .map(|t| t - now)
            .min()
            .unwrap_or(idle)
            .min(idle)
    }

    /// Stops services in reverse start order: SIGTERM, wait, SIGKILL.
    pub fn stop_all(&mut self, rx: &Receiver<Event>) {
        self.shutting_down = true;
        for name in self.order.clone().into_iter().rev() {
            let Some(s) = self.svc(name) else { continue };
            let Some(pid) = s.pid else {
                s.state = State::Stopped;
                continue;
            };
            s.state = State::Stopping;
            let timeout = s.def.stop_timeout;
            crate::info!("stopping {name} (pid {pid})");
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + timeout;
            while self.svc(name).is_some_and(|s| s.pid.is_some()) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    crate::warn!("{name} did not stop in {}s: SIGKILL", timeout.as_secs());
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    // The kernel delivers SIGKILL promptly; wait briefly for the reap.
                    self.drain_exits(rx, Duration::from_secs(1));
                    break;
                }
                self.drain_exits(rx, left.min(Duration::from_millis(100)));
            }
        }
        // Whatever is left (shims, containers, orphans) gets the same treatment.
        let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
        self.drain_exits(rx, Duration::from_millis(500));
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        self.drain_exits(rx, Duration::from_millis(200));
    }

    fn drain_exits(&mut self, rx: &Receiver<Event>, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Event::Exited { pid, code }) => {
                    self.on_exit(pid, code);
                    if self.svcs.iter().all(|s| s.pid.is_none()) {
                        return;
                    }
                }
                Ok(Event::Control(_, reply)) => {
                    let _ = reply.send(serde_json::json!({"error": "shutting down"}));
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

/// Waits for a service's readiness in its own thread, woken by the kernel
/// (inotify, a blocked read) rather than by a timer: polling every 100 ms
/// cost init ~400 ms of CPU per boot under TCG (a tokio runtime per
/// `/_ping`) and up to 100 ms of latency per service.
fn watch_ready(name: &'static str, pid: i32, ready: Ready, tx: Sender<Event>) {
    let spawned = std::thread::Builder::new()
        .name(format!("ready-{name}"))
        .spawn(move || {
            watch(name, pid, &ready, &tx);
            crate::status::thread_ended();
        });
    if let Err(e) = spawned {
        crate::error!("cannot watch {name}'s readiness: {e}");
    }
}

fn watch(name: &'static str, pid: i32, ready: &Ready, tx: &Sender<Event>) {
    let until = Instant::now() + READY_TIMEOUT * 2;
    // A dead process is never ready; the reaper reports the exit.
    let alive = || kill(Pid::from_raw(pid), None).is_ok();
    let path = match ready {
        Ready::Socket(p) | Ready::Ping(p) | Ready::File(p) => p,
    };
    let found = wait_for_path(path, until, &alive);
    crate::status::thread_part("waiting for the path");
    if !found {
        return;
    }
    // The path exists; a socket may not listen yet (bound, not yet
    // listening, or left by an earlier run of the service).
    let mut pause = RETRY;
    while alive() && Instant::now() < until {
        let ok = match ready {
            Ready::Socket(p) => UnixStream::connect(p).is_ok(),
            Ready::Ping(p) => ping(p),
            Ready::File(_) => true,
        };
        if ok {
            let _ = tx.send(Event::Ready { name, pid });
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// The loop's sleep when nothing is pending (events wake it sooner).
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// First pause (doubling to 0.5 s) between attempts once a readiness path exists but does not answer.
const RETRY: Duration = Duration::from_millis(20);

/// Blocks until `path` exists, `alive()` turns false (-> false) or `until`
/// passes (-> false). An inotify watch on the nearest existing ancestor
/// wakes it when something is created there; a 1 s timeout re-checks
/// `alive` and moves the watch down as directories appear.
pub fn wait_for_path(path: &std::path::Path, until: Instant, alive: &dyn Fn() -> bool) -> bool {
    use nix::poll::{poll, PollFd, PollFlags};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd;
    // One inotify instance for the whole wait: making and closing one per
    // wake-up was most of a watcher's CPU under TCG.
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok();
    let mut watching = None;
    loop {
        if path.exists() {
            return true;
        }
        if !alive() || Instant::now() >= until {
            return false;
        }
        let dir = path.ancestors().skip(1).find(|a| a.is_dir());
        let watched = match (&ino, dir) {
            (Some(ino), Some(dir)) => {
                if watching
                    .as_ref()
                    .map(|(d, _): &(std::path::PathBuf, _)| d.as_path())
                    != Some(dir)
                {
                    if let Some((_, wd)) = watching.take() {
                        let _ = ino.rm_watch(wd);
                    }
                    watching = ino
                        .add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
                        .ok()
                        .map(|wd| (dir.to_path_buf(), wd));
                }
                watching.is_some().then_some(ino)
            }
            _ => None,
        };
        let Some(ino) = watched else {
            // No inotify (or no ancestor at all): fall back to a slow poll.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        // Made between the check above and the watch: no event will come.
        if !path.exists() {
            let mut fds = [PollFd::new(ino.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, 1000u16);
            // Drained, or the next poll returns at once.
            while ino.read_events().is_ok_and(|e| !e.is_empty()) {}
        }
    }
}

/// dockerd answers `GET /_ping` with `200 OK` and the body `OK` once its
/// API is up. Its socket listens long before that and queues the request,
/// so one request waits out the start instead of a request every 100 ms.
pub fn ping(sock: &std::path::Path) -> bool {
    hull_http::blocking::get(sock, "/_ping", 64, Duration::from_secs(60))
        .and_then(|r| r.ok("/_ping"))
        .is_ok_and(|body| body == "OK")
}

/// A pipe for a service's stdout and stderr: (its stdout, its stderr,
/// init's read end).
fn output_pipe() -> nix::Result<(Stdio, Stdio, Option<std::os::fd::OwnedFd>)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let w2 = w
        .try_clone()
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)))?;
    Ok((Stdio::from(w), Stdio::from(w2), Some(r)))
}

/// Reaps every exited child, services and orphans alike.
pub fn reap(tx: &Sender<Event>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                let _ = tx.send(Event::Exited {
                    pid: pid.as_raw(),
                    code: format!("exit {code}"),
                });
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                let _ = tx.send(Event::Exited {
                    pid: pid.as_raw(),
                    code: format!("killed by {sig}"),
                });
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// Summary of states for the log.
pub fn summary(st: &[SvcStatus]) -> String {
    let m: BTreeMap<&str, String> = st
        .iter()
        .map(|s| (s.name, format!("{:?}", s.state).to_lowercase()))
        .collect();
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::table;

    #[test]
    fn a_path_made_later_below_a_missing_folder_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/sock");
        let made = target.clone();
        let maker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::create_dir(made.parent().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(&made, b"").unwrap();
        });
        let t = Instant::now();
        let until = t + Duration::from_secs(10);
        assert!(wait_for_path(&target, until, &|| true));
        // Woken by the events, not by the 1 s timeout of each poll.
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        maker.join().unwrap();
        // A dead service is never waited for.
        let never = dir.path().join("never");
        assert!(!wait_for_path(&never, until, &|| false));
    }

    #[test]
    fn an_idle_loop_sleeps_until_an_event_or_a_due_restart() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut sup = Supervisor::new(table(), tx, Timeline::default());
        // Nothing starting, nothing to restart: no timer at all.
        assert_eq!(sup.next_wakeup(), IDLE_WAIT);
        // A service starting: its readiness deadline is checked each second.
        sup.svcs[0].state = State::Starting;
        assert_eq!(sup.next_wakeup(), Duration::from_secs(1));
        // A restart due soon wakes the loop for it.
        sup.svcs[0].state = State::Backoff;
        sup.svcs[0].next_start = Some(Instant::now() + Duration::from_millis(300));
        let w = sup.next_wakeup();
        assert!(
            w <= Duration::from_millis(300) && w > Duration::from_millis(200),
            "{w:?}"
        );
    }
}
