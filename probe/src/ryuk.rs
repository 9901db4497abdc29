//! `hull-probe ryuk`: a stand-in for testcontainers' reaper (Ryuk), for the
//! client-compatibility scenario, which has no registry to pull the real
//! one from (and no Go toolchain to build it). It speaks Ryuk's protocol:
//!
//! - it listens on TCP 8080 and logs a line ending in ` Started!` (the
//!   client waits for `.* Started!`);
//! - a client sends filter lines, each a URL query such as
//!   `label=org.testcontainers.session-id=<id>` (several `&`-joined), and
//!   reads `ACK\n` for each;
//! - once the last connection has closed and no new one came within
//!   `RYUK_RECONNECTION_TIMEOUT` (Go duration, default 10s), it removes
//!   the containers, networks, volumes and images matching each filter
//!   through `/var/run/docker.sock`, and exits.
//!
//! - on SIGTERM/SIGINT it prunes at once and exits (Ryuk waits for
//!   connected clients first; testcontainers-python closes its connection
//!   before it stops the reaper). Containers labelled
//!   `org.testcontainers.ryuk=true` (reapers) are left alone, as Ryuk does.
//!
//! It lives in the probe so that it never ships in a production binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

const SOCKET: &str = "/var/run/docker.sock";

enum Event {
    Connected,
    Filter(Vec<(String, String)>),
    Closed,
    /// SIGTERM or SIGINT (`docker stop`, which testcontainers-python sends
    /// at exit): prune now, as Ryuk does when no client is connected.
    Signal,
}

/// `10s`, `500ms`, `1m` (what testcontainers passes); `None` if malformed.
fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A filter line (`label=a=b&label=c`) as (key, value) pairs.
fn parse_filter(line: &str) -> Vec<(String, String)> {
    line.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((unescape(k), unescape(v)))
        })
        .collect()
}

fn serve(stream: TcpStream, tx: mpsc::Sender<Event>) {
    let _ = tx.send(Event::Connected);
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => {
            let _ = tx.send(Event::Closed);
            return;
        }
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let f = parse_filter(line);
        if f.is_empty() {
            println!("ryuk: ignoring malformed filter {line:?}");
            continue;
        }
        println!("ryuk: adding filter {line}");
        let _ = tx.send(Event::Filter(f));
        if w.write_all(b"ACK\n").is_err() {
            break;
        }
    }
    let _ = tx.send(Event::Closed);
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        b = &b[eol + 2..];
        if size == 0 || size > b.len() {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// One request on the Docker socket: (status, JSON body).
fn docker(method: &str, target: &str) -> Result<(u32, serde_json::Value), String> {
    let mut s = std::os::unix::net::UnixStream::connect(SOCKET)
        .map_err(|e| format!("connect {SOCKET}: {e}"))?;
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes())
        .map_err(|e| format!("write {target}: {e}"))?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {target}: no HTTP answer"))?;
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    let raw = &resp[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Ok((code, v))
}

/// (id, is a reaper) of each listed object.
fn ids(v: &serde_json::Value, key: &str) -> Vec<(String, bool)> {
    let list = match v {
        serde_json::Value::Array(a) => a.clone(),
        // GET /volumes answers {"Volumes": [...]}.
        serde_json::Value::Object(o) => o
            .get("Volumes")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    list.iter()
        .filter_map(|e| {
            let id = e.get(key).and_then(|i| i.as_str())?.to_string();
            let reaper = e
                .pointer("/Labels/org.testcontainers.ryuk")
                .and_then(|l| l.as_str())
                == Some("true");
            Some((id, reaper))
        })
        .collect()
}

/// Removes what one filter matches; returns how many objects went.
fn prune(filter: &[(String, String)], me: &str) -> usize {
    let mut map = serde_json::Map::new();
    for (k, v) in filter {
        let e = map
            .entry(k.clone())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let Some(o) = e.as_object_mut() {
            o.insert(v.clone(), serde_json::Value::Bool(true));
        }
    }
    let q = percent(&serde_json::Value::Object(map).to_string());
    let mut n = 0;
    let kinds = [
        (
            "/containers/json?all=1&filters=",
            "Id",
            "/containers/",
            "?force=1&v=1",
        ),
        ("/networks?filters=", "Id", "/networks/", ""),
        ("/volumes?filters=", "Name", "/volumes/", "?force=1"),
        (
            "/images/json?filters=",
            "Id",
            "/images/",
            "?force=1&noprune=0",
        ),
    ];
    for (list, key, del, opts) in kinds {
        let found = match docker("GET", &format!("{list}{q}")) {
            Ok((200, v)) => ids(&v, key),
            Ok((code, v)) => {
                println!("ryuk: listing {list}: {code} {v}");
                continue;
            }
            Err(e) => {
                println!("ryuk: {e}");
                continue;
            }
        };
        for (id, reaper) in found {
            // Reapers (itself included) go with auto-remove when they exit.
            if reaper || (!me.is_empty() && id.starts_with(me)) {
                continue;
            }
            match docker("DELETE", &format!("{del}{}{opts}", percent(&id))) {
                Ok((code, _)) if code < 300 || code == 404 => n += 1,
                Ok((code, v)) => println!("ryuk: removing {del}{id}: {code} {v}"),
                Err(e) => println!("ryuk: {e}"),
            }
        }
    }
    n
}

pub fn run() -> i32 {
    let timeout = std::env::var("RYUK_RECONNECTION_TIMEOUT")
        .ok()
        .and_then(|v| go_duration(&v))
        .unwrap_or(Duration::from_secs(10));
    let me = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    // Signals are taken by one thread with sigwait: blocked here, before
    // any other thread exists, so that every thread inherits the mask.
    // SAFETY: sigset_t is plain data initialised by sigemptyset;
    // pthread_sigmask only changes this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let listener = match TcpListener::bind("0.0.0.0:8080") {
        Ok(l) => l,
        Err(e) => {
            println!("ryuk: listen 0.0.0.0:8080: {e}");
            return 2;
        }
    };
    let (tx, rx) = mpsc::channel();
    let sig = tx.clone();
    std::thread::spawn(move || {
        let mut n: libc::c_int = 0;
        // SAFETY: `set` is a valid signal set and `n` a live c_int.
        if unsafe { libc::sigwait(&set, &mut n) } == 0 {
            let _ = sig.send(Event::Signal);
        }
    });
    let acc = tx.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let tx = acc.clone();
            std::thread::spawn(move || serve(s, tx));
        }
    });
    println!("ryuk: Started!");
    let mut filters: Vec<Vec<(String, String)>> = Vec::new();
    let mut open = 0usize;
    let mut seen = false;
    loop {
        // Waits without a deadline until someone has connected and while
        // anyone is; then the reconnection timeout runs.
        let ev = if open == 0 && seen {
            match rx.recv_timeout(timeout) {
                Ok(e) => e,
                Err(_) => break,
            }
        } else {
            match rx.recv() {
                Ok(e) => e,
                Err(_) => break,
            }
        };
        match ev {
            Event::Connected => {
                open += 1;
                seen = true;
            }
            Event::Filter(f) => {
                if !filters.contains(&f) {
                    filters.push(f);
                }
            }
            Event::Closed => open = open.saturating_sub(1),
            Event::Signal => {
                println!("ryuk: signal received");
                break;
            }
        }
    }
    let n: usize = filters.iter().map(|f| prune(f, &me)).sum();
    println!("ryuk: removed {n} object(s); exiting");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_lines_parse() {
        assert_eq!(
            parse_filter("label=org.testcontainers.session-id=abc&label=x%3Dy"),
            vec![
                ("label".into(), "org.testcontainers.session-id=abc".into()),
                ("label".into(), "x=y".into())
            ]
        );
        assert!(parse_filter("garbage").is_empty());
        assert_eq!(go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("ten"), None);
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n"), b"abc");
    }
}
