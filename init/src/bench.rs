//! Measurements made from inside the VM for `cargo xtask bench`, so host-side
//! figures can be compared with the same thing done locally in the same boot.
//! Only in the bench image's init (`bench` feature): the shipped init has
//! none of this on its control port.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::services::Ready;
use crate::supervisor::{ping, wait_for_path, Event};

/// Reads one HTTP/1.1 answer with a `Content-Length` (dockerd's answers
/// to `/_ping` and to a create are small and carry one); returns the
/// head's status code and the body.
pub fn read_answer(s: &mut impl Read) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| bad("no status line"))?;
            // 204 (a removal's answer) has no body and no length.
            let len: usize = match head.lines().find_map(|l| l.strip_prefix("content-length:")) {
                Some(v) => v.trim().parse().map_err(|_| bad("bad Content-Length"))?,
                None if status == 204 => 0,
                None => return Err(bad("no Content-Length")),
            };
            if got.len() >= end + 4 + len {
                return Ok((status, got[end + 4..end + 4 + len].to_vec()));
            }
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(bad("closed before the answer was complete"));
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// The request `engine_ping` times: `GET /_ping`, or a create of `image`.
pub fn ping_request(create: Option<&str>) -> Vec<u8> {
    match create {
        None => b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n".to_vec(),
        Some(image) => {
            let body = json!({"Image": image, "Cmd": ["true"]}).to_string();
            format!(
                "POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

/// `count` round trips on dockerd's own socket: `GET /_ping`, or with
/// `create` a container create (removed after, untimed); on one keep-alive
/// connection, or with `fresh` a new connection for each request (as the
/// docker CLI opens one per command).
pub fn engine_ping(count: u32, fresh: bool, create: Option<&str>) -> Value {
    let count = count.clamp(1, 10_000);
    let connect = || -> Result<UnixStream, String> {
        let s = UnixStream::connect(crate::engine::DOCKER_SOCK)
            .map_err(|e| format!("dockerd socket: {e}"))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        Ok(s)
    };
    let req = ping_request(create);
    let mut us = Vec::with_capacity(count as usize);
    let mut kept = None;
    for _ in 0..count {
        let t = Instant::now();
        let mut s = match (kept.take(), fresh) {
            (Some(s), false) => s,
            _ => match connect() {
                Ok(s) => s,
                Err(e) => return json!({"error": e}),
            },
        };
        if let Err(e) = s.write_all(&req) {
            return json!({"error": format!("write: {e}")});
        }
        let (status, body) = match read_answer(&mut s) {
            Ok(a) => a,
            Err(e) => return json!({"error": format!("read: {e}")}),
        };
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if !(200..300).contains(&status) {
            return json!({"error": format!("dockerd answered {status}: {}", String::from_utf8_lossy(&body))});
        }
        if create.is_some() {
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["Id"].as_str().map(str::to_string))
                .unwrap_or_default();
            let del = format!("DELETE /containers/{id}?force=1 HTTP/1.1\r\nHost: docker\r\n\r\n");
            if let Err(e) = s
                .write_all(del.as_bytes())
                .and_then(|_| read_answer(&mut s))
            {
                return json!({"error": format!("removing {id}: {e}")});
            }
        }
        kept = Some(s);
    }
    json!({"ok": true, "us": us})
}

/// Listens on vsock `port` (a benchmark port, never the engine's or the
/// control port) and runs `serve` on the first connection in a thread.
fn serve_once(
    port: u32,
    name: &str,
    serve: impl FnOnce(crate::control::Conn) + Send + 'static,
) -> Value {
    if port <= 1024 || port == hull_channel::DOCKER_PORT {
        return json!({"error": format!("port {port} is reserved")});
    }
    let listener = match crate::control::listen_vsock(port) {
        Ok(l) => l,
        Err(e) => return json!({"error": format!("vsock {port}: {e}")}),
    };
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let Ok(fd) = nix::sys::socket::accept(listener.as_raw_fd()) else {
                return;
            };
            // SAFETY: accept returned a new descriptor that nothing else owns.
            serve(crate::control::Conn(unsafe {
                std::os::fd::FromRawFd::from_raw_fd(fd)
            }));
        });
    match spawned {
        Ok(_) => json!({"ok": true}),
        Err(e) => json!({"error": format!("thread: {e}")}),
    }
}

/// Listens once on vsock `port`, reads exactly `bytes` bytes of payload
/// (raw, or decoded from channel frames), then answers with the nanoseconds
/// that took (8 raw bytes, big-endian).
pub fn sink(port: u32, bytes: u64, framed: bool) -> Value {
    serve_once(port, "bench-sink", move |mut conn| {
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = bytes;
        let mut start = None;
        let mut dec = hull_channel::Decoder::new();
        while left > 0 {
            let n = match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            start.get_or_insert_with(Instant::now);
            if !framed {
                left = left.saturating_sub(n as u64);
                continue;
            }
            dec.push(&buf[..n]);
            loop {
                // As the gate's reader does: the payload is used in place.
                match dec.next_span() {
                    Ok(Some(hull_channel::Span::Data(r))) => {
                        left = left.saturating_sub(dec.payload(r).len() as u64)
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
        let ns = start.map(|s| s.elapsed().as_nanos() as u64).unwrap_or(0);
        let _ = conn.write_all(&ns.to_be_bytes());
    })
}

/// Listens once on vsock `port` and echoes whatever arrives until the peer
/// closes: the bare vsock round trip, for comparison with the channel's.
pub fn echo(port: u32) -> Value {
    serve_once(port, "bench-echo", |mut conn| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    })
}

/// hull-runtime vs the reference runtimes (runc, crun) on one tiny bundle,
/// run by a helper process; its JSON report comes back as the answer.
pub fn runtimes(iterations: u32, trace: bool) -> Value {
    let hull = std::iter::once("/usr/bin/hull-runtime")
        .chain(crate::engine::RUNTIME_ARGS.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = std::process::Command::new("/usr/lib/hull/hull-runtime-bench");
    cmd.arg("--iterations")
        .arg(iterations.clamp(1, 200).to_string())
        .arg("--runtime")
        .arg(format!("hull={hull}"))
        // The same runtime without the guard, to show the guard's share.
        .arg("--runtime")
        .arg("hull-unguarded=/usr/bin/hull-runtime,--guard,none")
        .arg("--runtime")
        .arg("runc=/usr/lib/hull/reference/runc")
        .arg("--runtime")
        .arg("crun=/usr/bin/crun")
        .args(
            trace
                .then_some(["--runtime", "hull-trace=/usr/bin/hull-runtime,--debug"])
                .into_iter()
                .flatten(),
        )
        .env_clear()
        .env("PATH", crate::services::PATH_ENV)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Read its output to the end instead of waiting: init's reaper owns
    // every exit status.
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return json!({"error": format!("hull-runtime-bench: {e}")}),
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    match serde_json::from_str::<Value>(out.trim()) {
        Ok(v) => v,
        Err(_) => json!({"error": format!("hull-runtime-bench failed: {}", err.trim())}),
    }
}

/// The link dockerd's runtime `hull` runs in the bench image: hull-runtime
/// at boot, switched to crun and back by [`engine_runtime`].
const RUNTIME_LINK: &str = "/run/hull/bench-runtime";

/// Makes [`RUNTIME_LINK`] point at `path` and returns the link (or `path`
/// itself, logged, when the link cannot be made).
pub fn runtime_link(path: &str) -> String {
    let _ = std::fs::remove_file(RUNTIME_LINK);
    match std::os::unix::fs::symlink(path, RUNTIME_LINK) {
        Ok(()) => RUNTIME_LINK.to_string(),
        Err(e) => {
            crate::error!("bench runtime link {RUNTIME_LINK}: {e}; dockerd runs {path}");
            path.to_string()
        }
    }
}

/// Switches what dockerd's runtime `hull` runs: `hull` (hull-runtime) or
/// `crun`. The shim execs the binary on every call, so the next container
/// gets it; a container created by one and deleted by the other would be
/// lost, so the bench switches only while none runs.
pub fn engine_runtime(name: &str) -> Value {
    let target = match name {
        "hull" => crate::engine::RUNTIME_PATH,
        "crun" => "/usr/bin/crun",
        other => return json!({"error": format!("runtime {other:?}: use hull or crun")}),
    };
    let tmp = format!("{RUNTIME_LINK}.new");
    let _ = std::fs::remove_file(&tmp);
    // A new link renamed over the old one: never a moment without it.
    match std::os::unix::fs::symlink(target, &tmp).and_then(|_| std::fs::rename(&tmp, RUNTIME_LINK))
    {
        Ok(()) => json!({"ok": true, "runtime": name, "path": target}),
        Err(e) => json!({"error": format!("{RUNTIME_LINK} -> {target}: {e}")}),
    }
}

/// The services `bench-engine-floor` stops and hands back, in stop order.
const FLOOR_HELD: &[&str] = &["hull-gate", "dockerd", "containerd"];

/// Asks the supervisor to hold (`true`) or release the engine's services.
fn hold(tx: &Sender<Event>, hold: bool) -> Result<Vec<i32>, String> {
    let (rtx, rrx) = mpsc::channel();
    tx.send(Event::Hold {
        names: FLOOR_HELD.to_vec(),
        hold,
        reply: rtx,
    })
    .map_err(|_| "init is stopping".to_string())?;
    rrx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the supervisor did not answer".to_string())
}

/// Whether every pid in `pids` is gone (exited and reaped) within `within`.
fn gone(pids: &[i32], within: Duration) -> bool {
    let until = Instant::now() + within;
    loop {
        if pids.iter().all(|p| kill(Pid::from_raw(*p), None).is_err()) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(pids: &[i32]) -> Result<(), String> {
    for p in pids {
        let _ = kill(Pid::from_raw(*p), Signal::SIGTERM);
    }
    if gone(pids, Duration::from_secs(20)) {
        return Ok(());
    }
    for p in pids {
        let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
    }
    if gone(pids, Duration::from_secs(5)) {
        Ok(())
    } else {
        Err(format!("processes {pids:?} did not exit after SIGKILL"))
    }
}

/// `bench-engine-floor`: see [`crate::control::Request::BenchEngineFloor`].
/// The services come back (released to the supervisor) whatever happened.
pub fn engine_floor(tx: &Sender<Event>) -> Value {
    let pids = match hold(tx, true) {
        Ok(p) => p,
        Err(e) => return json!({"error": format!("holding the engine's services: {e}")}),
    };
    let measured = stop(&pids).and_then(|()| floor_run());
    let released = hold(tx, false);
    match (measured, released) {
        (Ok(v), Ok(_)) => v,
        (Err(e), _) => json!({"error": e}),
        (Ok(_), Err(e)) => json!({"error": format!("releasing the engine's services: {e}")}),
    }
}

/// containerd and dockerd alone, exec'd together as the supervisor does,
/// with no log pump (their output goes nowhere) and no readiness thread of
/// init's but this one: the floor hull's services are compared with.
fn floor_run() -> Result<Value, String> {
    // A first start, as at boot: no state of the run just stopped.
    for d in [
        "/var/lib/docker",
        "/var/lib/containerd",
        "/run/docker",
        "/run/containerd",
    ] {
        match std::fs::remove_dir_all(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("clearing {d}: {e}")),
        }
    }
    for d in ["/var/lib/docker", "/var/lib/containerd"] {
        std::fs::create_dir_all(d).map_err(|e| format!("{d}: {e}"))?;
    }
    let _ = std::fs::remove_file(crate::engine::DOCKER_SOCK);
    // Binaries and libraries read from the disk, as at boot.
    let cold = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let table = crate::services::table();
    let def = |name: &str| {
        table
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| format!("no service {name} in the table"))
    };
    let (containerd, dockerd) = (def("containerd")?, def("dockerd")?);
    let spawn = |d: &crate::services::ServiceDef| {
        std::process::Command::new(&d.argv[0])
            .args(&d.argv[1..])
            .env_clear()
            .envs(d.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map(|c| c.id() as i32)
            .map_err(|e| format!("starting {}: {e}", d.argv[0]))
    };
    let t0 = Instant::now();
    let cpid = spawn(containerd)?;
    let dpid = match spawn(dockerd) {
        Ok(p) => p,
        Err(e) => {
            let _ = stop(&[cpid]);
            return Err(e);
        }
    };
    let result = (|| {
        let until = t0 + Duration::from_secs(180);
        let csock = match &containerd.ready {
            Ready::Socket(p) => p.clone(),
            other => return Err(format!("containerd's readiness is {other:?}")),
        };
        // dockerd cannot answer before containerd serves, so one thread
        // times both, in that order.
        let c_ms = (|| {
            let alive = || kill(Pid::from_raw(cpid), None).is_ok();
            if !wait_for_path(&csock, until, &alive) {
                return None;
            }
            while alive() && Instant::now() < until {
                if UnixStream::connect(&csock).is_ok() {
                    return Some(t0.elapsed().as_secs_f64() * 1000.0);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        })();
        let alive = || kill(Pid::from_raw(dpid), None).is_ok();
        let sock = std::path::Path::new(crate::engine::DOCKER_SOCK);
        if !wait_for_path(sock, until, &alive) {
            return Err("dockerd died or never made its socket".to_string());
        }
        while alive() && Instant::now() < until {
            if ping(sock) {
                return Ok(json!({
                    "ok": true,
                    "containerd_socket_ms": c_ms,
                    "dockerd_ping_ms": t0.elapsed().as_secs_f64() * 1000.0,
                    "cold_cache": cold,
                    "state_cleared": true,
                }));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err("dockerd never answered /_ping".to_string())
    })();
    stop(&[dpid, cpid])?;
    result
}
