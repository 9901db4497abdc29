//! Hostile HTTP input: oversized heads and bodies, request smuggling,
//! invalid JSON, slow and idle clients. The gate runs in-process on its
//! own current-thread runtime (as in the VM) in front of a fake engine
//! that records every request it receives, so each test can show what did
//! — and did not — reach the engine. Needs no root.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::fake::Rig;
use common::{parse_reply, raw, request};

fn default_rig() -> Rig {
    rig(Duration::from_secs(30), Duration::from_secs(30))
}

fn rig(header_timeout: Duration, body_timeout: Duration) -> Rig {
    Rig::start(
        hull_policy::Effective::default(),
        header_timeout,
        body_timeout,
    )
}

fn connect(p: &Path) -> UnixStream {
    let s = UnixStream::connect(p).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_all(mut s: UnixStream) -> String {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn ping_ms(gate: &Path) -> u128 {
    let t = Instant::now();
    let r = raw(
        gate,
        b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    t.elapsed().as_millis()
}

#[test]
fn oversized_head_is_refused_and_others_unaffected() {
    let r = default_rig();
    let mut s = connect(&r.gate);
    let big = "a".repeat(70 * 1024);
    let _ =
        s.write_all(format!("GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let text = read_all(s);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:.100}");
    assert!(r.seen().is_empty());
    ping_ms(&r.gate);
    r.clear();
    // Far larger: hyper's own buffer limit.
    let mut s = connect(&r.gate);
    let big = "a".repeat(300 * 1024);
    let _ =
        s.write_all(format!("GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let text = read_all(s);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text:.100}"
    );
    assert!(r.seen().is_empty());
    // Many headers.
    let mut s = connect(&r.gate);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let _ = s.write_all(format!("GET /_ping HTTP/1.1\r\nHost: d\r\n{many}\r\n").as_bytes());
    let text = read_all(s);
    assert!(
        text.starts_with("HTTP/1.1 431") || text.starts_with("HTTP/1.1 400"),
        "{text:.100}"
    );
}

#[test]
fn conflicting_length_and_chunked_cannot_smuggle() {
    let r = default_rig();
    // Content-Length says the smuggled create is body; chunked says the
    // body is empty and the create is a second request. hyper takes
    // chunked (RFC 9112), drops Content-Length and closes the connection
    // after the answer, so the create is never read at all.
    let smuggled = r#"POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{"HostConfig":{"PidMode":"host","Binds":["/:/h"]}}"#.replace("\\r\\n", "\r\n");
    let req = format!(
        "POST /v1.41/images/x/tag?repo=y HTTP/1.1\r\nHost: d\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        5 + smuggled.len()
    );
    let mut s = connect(&r.gate);
    s.write_all(req.as_bytes()).unwrap();
    let text = read_all(s);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    let seen = r.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].target.starts_with("/v1.41/images/x/tag"));
    assert!(seen[0].body.is_empty());
    // The engine got framing of the gate's own making: never both.
    let names: Vec<&str> = seen[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !(names.contains(&"content-length") && names.contains(&"transfer-encoding")),
        "{names:?}"
    );

    // The other order of the same headers.
    r.clear();
    let req = format!(
        "POST /v1.41/images/x/tag?repo=y HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let mut s = connect(&r.gate);
    s.write_all(req.as_bytes()).unwrap();
    let text = read_all(s);
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    assert!(!r.seen().iter().any(|s| s.target.contains("create")));
}

#[test]
fn malformed_framing_is_refused() {
    let r = default_rig();
    for req in [
        // Two different lengths.
        "POST /v1.41/images/x/tag HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        // A coding other than chunked last.
        "POST /v1.41/images/x/tag HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /v1.41/images/x/tag HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        // Signs and junk in lengths.
        "POST /v1.41/images/x/tag HTTP/1.1\r\nHost: d\r\nContent-Length: +1\r\n\r\na",
        "POST /v1.41/images/x/tag HTTP/1.1\r\nHost: d\r\nContent-Length: 1 1\r\n\r\na",
        // Bad chunk sizes.
        "POST /v1.41/images/x/tag HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        // Not HTTP/1.x.
        "GET /_ping HTTP/2.0\r\nHost: d\r\n\r\n",
        // Whitespace before the colon.
        "GET /_ping HTTP/1.1\r\nHost : d\r\n\r\n",
        // Bare LF line endings with an obs-fold.
        "GET /_ping HTTP/1.1\r\nHost: d\r\nX: a\r\n b\r\n\r\n",
    ] {
        let mut s = connect(&r.gate);
        let _ = s.write_all(req.as_bytes());
        let text = read_all(s);
        let status = text.split_whitespace().nth(1).unwrap_or("closed");
        assert!(
            !status.starts_with('2'),
            "{req:?} was accepted: {text:.200}"
        );
    }
    assert!(
        r.seen().iter().all(|s| s.target != "/v1.41/images/x/tag"),
        "{:?}",
        r.seen()
    );
}

#[test]
fn body_limits_and_invalid_json() {
    let r = default_rig();
    let limit = hull_gate::admit::MAX_BODY_BYTES;
    // Declared too large: refused before reading.
    let mut s = connect(&r.gate);
    s.write_all(format!("POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", limit + 1).as_bytes()).unwrap();
    let text = read_all(s);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:.200}");
    assert!(text.contains("request body larger than"));
    // Chunked, too large: refused while reading.
    let mut s = connect(&r.gate);
    s.write_all(b"POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent <= limit {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let text = read_all(s);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:.200}");
    // Invalid JSON and wrong shapes.
    for body in [
        "{",
        "[]",
        "{\"Image\": \"x\"} trailing",
        "\u{feff}{}",
        "{\"Image\":\"a\",\"Image\":\"b\"}",
    ] {
        let reply = raw(&r.gate, &request("POST", "/v1.41/containers/create", body)).unwrap();
        assert_eq!(reply.status, 400, "{body:?}: {}", reply.message());
        assert!(reply.message().starts_with("hull: "), "{}", reply.message());
    }
    let reply = raw(
        &r.gate,
        &request("POST", "/v1.41/volumes/create", "{\"Name\":"),
    )
    .unwrap();
    assert_eq!(reply.status, 400);
    assert!(r.seen().is_empty(), "{:?}", r.seen());
    // A good body is forwarded re-serialised, runtime forced.
    let reply = raw(
        &r.gate,
        &request(
            "POST",
            "/v1.41/containers/create?name=a",
            r#"{"Image":"busybox",  "HostConfig":{"Runtime":"runc"}}"#,
        ),
    )
    .unwrap();
    assert_eq!(reply.status, 201);
    let seen = r.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/v1.41/containers/create?name=a");
    let fwd: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(fwd["HostConfig"]["Runtime"], "hull");
    let len = seen[0]
        .headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.clone());
    assert_eq!(len, Some(seen[0].body.len().to_string()));
}

#[test]
fn odd_targets_and_headers() {
    let r = default_rig();
    for req in [
        "POST http://docker/v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_string(),
        "GET * HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".to_string(),
        "GET /_ping%00 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".to_string(),
        "GET /v1.41/containers/json\u{e9} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".to_string(),
        "POST /v1.41/build HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
        "BREW /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".to_string(),
        "get /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".to_string(),
    ] {
        let mut s = connect(&r.gate);
        let _ = s.write_all(req.as_bytes());
        let text = read_all(s);
        assert!(text.starts_with("HTTP/1.1 400"), "{req:?}: {text:.200}");
    }
    assert!(r.seen().is_empty(), "{:?}", r.seen());
}

#[test]
fn pipelined_requests_are_each_checked() {
    let r = default_rig();
    let mut s = connect(&r.gate);
    let create = r#"{"Image":"x","HostConfig":{"PidMode":"host"}}"#;
    s.write_all(
        format!(
            "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nPOST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{create}GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
            create.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let text = read_all(s);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "403", "200"], "{text}");
    assert!(!r.seen().iter().any(|s| s.target.contains("create")));
}

#[test]
fn slow_clients_do_not_block_others() {
    let r = rig(Duration::from_millis(800), Duration::from_millis(800));
    // A client that never finishes its head.
    let mut slow_head = connect(&r.gate);
    slow_head.write_all(b"GET /_ping HTTP/1.1\r\nHo").unwrap();
    // A create whose body never arrives.
    let mut slow_body = connect(&r.gate);
    slow_body
        .write_all(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Ima")
        .unwrap();
    // Many idle connections.
    let idle: Vec<UnixStream> = (0..200).map(|_| connect(&r.gate)).collect();
    for _ in 0..20 {
        assert!(ping_ms(&r.gate) < 500);
    }
    // The slow body gets a clear 408, the slow head is closed.
    let text = read_all(slow_body);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:.200}");
    let t = Instant::now();
    let text = read_all(slow_head);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!text.contains("200 OK"), "{text}");
    drop(idle);
    assert!(ping_ms(&r.gate) < 500);
    assert!(
        r.seen().iter().all(|s| s.target == "/_ping"),
        "{:?}",
        r.seen()
    );
}

#[test]
fn refusals_are_read_by_clients_still_sending() {
    let r = default_rig();
    // A refused build with a large context: the gate reads the body before
    // answering, so the client sees the refusal, not a broken pipe.
    let body = vec![b'x'; 2 * 1024 * 1024];
    let mut s = connect(&r.gate);
    s.write_all(format!("POST /v1.41/build?networkmode=host HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let reply = parse_reply(&got).unwrap();
    assert_eq!(reply.status, 403);
    assert!(reply.message().contains("--network=host"));
    assert!(r.seen().is_empty());
}
