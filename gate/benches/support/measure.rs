//! Gate overhead measurement: the same requests sent to dockerd's socket
//! directly and through the gate, interleaved in one run, over keep-alive
//! connections (as the docker CLI does within one command), or over a new
//! connection per request (as separate docker commands do). Only measures;
//! never asserts.
//!
//! Host tier: `cargo bench -p hull-gate --bench overhead` starts a private
//! dockerd and a release gate and prints the figures (JSON on stdout).
//! Elsewhere (`cargo xtask bench`, in the VM): call [`measure`] with
//! [`standard_probes`] and the sockets of a running engine and gate.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// One request kind's figures, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub name: String,
    pub iterations: usize,
    /// A new connection for each request (else one keep-alive connection).
    pub fresh: bool,
    pub direct_p50_ms: f64,
    pub direct_p90_ms: f64,
    pub direct_p99_ms: f64,
    pub gate_p50_ms: f64,
    pub gate_p90_ms: f64,
    pub gate_p99_ms: f64,
    /// `gate_p50 - direct_p50`.
    pub added_p50_ms: f64,
    pub added_p90_ms: f64,
    pub added_p99_ms: f64,
}

/// A raw HTTP/1.1 keep-alive client (no hyper: its own cost would blur the
/// figures).
pub struct Client {
    r: BufReader<UnixStream>,
}

impl Client {
    pub async fn connect(path: &Path) -> std::io::Result<Client> {
        Ok(Client {
            r: BufReader::new(UnixStream::connect(path).await?),
        })
    }

    /// Sends one request and reads the whole answer: status and body.
    pub async fn call(
        &mut self,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = self.r.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut len: Option<usize> = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.r.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.r.read_line(&mut line).await?;
                let n = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                let mut chunk = vec![0u8; n + 2];
                self.r.read_exact(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = len {
            out = vec![0u8; n];
            self.r.read_exact(&mut out).await?;
        }
        Ok((status, out))
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// From an answer, a target to `DELETE` afterwards.
pub type Cleanup = fn(&[u8]) -> Option<String>;

/// A request to measure.
pub struct Probe<'a> {
    pub name: &'a str,
    pub method: &'a str,
    pub target: &'a str,
    pub body: &'a [u8],
    pub expect: u16,
    /// From an answer, a target to `DELETE` afterwards (unmeasured, on the
    /// direct socket), e.g. the container a create made.
    pub cleanup: Option<Cleanup>,
}

/// For [`Probe::cleanup`] of `POST /containers/create`.
pub fn remove_created_container(answer: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(answer).ok()?;
    Some(format!("/containers/{}?force=1", v.get("Id")?.as_str()?))
}

/// Measures `probe` `n` times on each socket, alternating, after a short
/// warm-up, each over one keep-alive connection, or with `fresh` over a
/// new connection per request (its connect timed too).
pub async fn measure(
    direct: &Path,
    gate: &Path,
    probe: &Probe<'_>,
    n: usize,
    fresh: bool,
) -> std::io::Result<Figures> {
    let mut d = Client::connect(direct).await?;
    let mut g = Client::connect(gate).await?;
    let mut janitor = Client::connect(direct).await?;
    let mut times = (Vec::with_capacity(n), Vec::with_capacity(n));
    let warm = (n / 10).max(3);
    for i in 0..(n + warm) {
        for via_gate in [false, true] {
            let t = Instant::now();
            if fresh {
                let c = Client::connect(if via_gate { gate } else { direct }).await?;
                if via_gate {
                    g = c
                } else {
                    d = c
                }
            }
            let c = if via_gate { &mut g } else { &mut d };
            let (status, answer) = c.call(probe.method, probe.target, probe.body).await?;
            let el = t.elapsed();
            if status != probe.expect {
                return Err(std::io::Error::other(format!(
                    "{} answered {status}, expected {}: {}",
                    probe.name,
                    probe.expect,
                    String::from_utf8_lossy(&answer)
                )));
            }
            if let Some(target) = probe.cleanup.and_then(|f| f(&answer)) {
                janitor.call("DELETE", &target, b"").await?;
            }
            if i >= warm {
                if via_gate {
                    times.1.push(el)
                } else {
                    times.0.push(el)
                }
            }
        }
    }
    times.0.sort();
    times.1.sort();
    let f = |v: &[Duration]| (percentile(v, 0.5), percentile(v, 0.9), percentile(v, 0.99));
    let (d50, d90, d99) = f(&times.0);
    let (g50, g90, g99) = f(&times.1);
    Ok(Figures {
        name: probe.name.to_string(),
        iterations: n,
        fresh,
        direct_p50_ms: d50,
        direct_p90_ms: d90,
        direct_p99_ms: d99,
        gate_p50_ms: g50,
        gate_p90_ms: g90,
        gate_p99_ms: g99,
        added_p50_ms: g50 - d50,
        added_p90_ms: g90 - d90,
        added_p99_ms: g99 - d99,
    })
}

/// The two probes the issue asks for: `GET /_ping` and
/// `POST /containers/create` (a plain create: the policy parses,
/// re-serialises and forwards it; no engine queries).
pub fn standard_probes() -> Vec<Probe<'static>> {
    vec![
        Probe {
            name: "GET /_ping",
            method: "GET",
            target: "/v1.41/_ping",
            body: b"",
            expect: 200,
            cleanup: None,
        },
        Probe {
            name: "POST /containers/create",
            method: "POST",
            target: "/v1.41/containers/create",
            body: br#"{"Image":"busybox","Cmd":["true"],"Env":["A=1"],"Labels":{"bench":"1"},"HostConfig":{"Memory":0,"RestartPolicy":{"Name":"no"}}}"#,
            expect: 201,
            cleanup: Some(remove_created_container),
        },
    ]
}
