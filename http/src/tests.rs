use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// A hyper server on one end of an in-memory stream; `answer` makes the
/// response (its upgrade, if any, is echoed back).
fn server(
    answer: fn(&Request<Incoming>) -> Response<Full<Bytes>>,
) -> (DuplexStream, tokio::task::JoinHandle<()>) {
    let (client, srv) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| async move {
            let resp = answer(&req);
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(up) = on.await else { return };
                    let mut up = TokioIo::new(up);
                    let mut buf = [0u8; 64];
                    while let Ok(n) = up.read(&mut buf).await {
                        if n == 0 || up.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = up.shutdown().await;
                });
            }
            Ok::<_, Infallible>(resp)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(srv), svc)
            .with_upgrades()
            .await;
    });
    (client, task)
}

fn ping(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"OK")));
    if req.uri().path() != "/_ping" || req.headers()[header::HOST] != "hull" {
        *resp.status_mut() = StatusCode::NOT_FOUND;
        *resp.body_mut() = Full::new(Bytes::from_static(b"{\"message\":\"page not found\"}"));
    }
    resp
}

#[tokio::test]
async fn get_reads_the_whole_answer() {
    let (io, _srv) = server(ping);
    let r = get(io, "/_ping", 1024).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.ok("/_ping").unwrap(), "OK");
}

#[tokio::test]
async fn get_names_a_status_other_than_200() {
    let (io, _srv) = server(ping);
    let r = get(io, "/nope", 1024).await.unwrap();
    let e = r.ok("/nope").unwrap_err().to_string();
    assert_eq!(
        e,
        "/nope: answered 404 Not Found {\"message\":\"page not found\"}"
    );
}

#[tokio::test]
async fn get_refuses_a_body_over_its_limit() {
    let (io, _srv) = server(ping);
    let e = get(io, "/_ping", 1).await.unwrap_err();
    assert!(matches!(e, Error::Body { limit: 1, .. }), "{e}");
}

#[tokio::test]
async fn a_bad_target_is_named() {
    let (io, _srv) = server(ping);
    let e = get(io, "/a b", 1024).await.unwrap_err();
    assert_eq!(e.to_string(), "\"/a b\" is not a valid request target");
}

/// A hand-written answer, so the body's chunks split objects where the
/// test chooses.
async fn raw_server(mut srv: DuplexStream, pieces: &'static [&'static [u8]]) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if srv.read(&mut b).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(b[0]);
    }
    assert!(head.starts_with(b"GET /events?filters=x HTTP/1.1\r\n"));
    let _ = srv
        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    for p in pieces {
        let _ = srv.write_all(format!("{:x}\r\n", p.len()).as_bytes()).await;
        let _ = srv.write_all(p).await;
        let _ = srv.write_all(b"\r\n").await;
        let _ = srv.flush().await;
        tokio::task::yield_now().await;
    }
    let _ = srv.write_all(b"0\r\n\r\n").await;
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Ev {
    #[serde(rename = "Action")]
    action: String,
}

#[tokio::test]
async fn a_stream_yields_one_object_per_line_across_chunks() {
    let (client, srv) = tokio::io::duplex(64 * 1024);
    tokio::spawn(raw_server(
        srv,
        &[
            b"{\"Action\":\"st",
            b"art\"}\n\n{\"Action\":\"die\"}\n{\"Act",
            b"ion\":\"destroy\"}\nnot json\n{\"Action\":\"create\"}\n",
        ],
    ));
    let mut s = stream(client, "/events?filters=x").await.unwrap();
    let mut got = Vec::new();
    while let Some(ev) = s.next::<Ev>().await {
        got.push(ev.map(|e| e.action).map_err(|e| e.to_string()));
    }
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0].as_deref(), Ok("start"));
    assert_eq!(got[1].as_deref(), Ok("die"));
    assert_eq!(got[2].as_deref(), Ok("destroy"));
    let bad = got[3].as_ref().unwrap_err();
    assert!(
        bad.starts_with("/events?filters=x: a streamed line is not JSON: expected ident"),
        "{bad}"
    );
    assert_eq!(got[4].as_deref(), Ok("create"));
}

#[tokio::test]
async fn a_stream_refused_is_an_error_with_its_message() {
    let (io, _srv) = server(ping);
    let e = stream(io, "/events").await.err().unwrap();
    assert_eq!(
        e.to_string(),
        "/events: answered 404 Not Found {\"message\":\"page not found\"}"
    );
}

#[test]
fn an_over_long_line_is_reported_once_and_skipped() {
    let mut l = Lines::default();
    l.push(&vec![b'x'; MAX_LINE + 1]);
    assert!(matches!(l.pop::<Ev>(), Some(Err(LineError::TooLong))));
    l.push(b"more of it");
    assert!(l.pop::<Ev>().is_none());
    l.push(b"\n{\"Action\":\"start\"}\n");
    assert_eq!(
        l.pop::<Ev>().unwrap().unwrap(),
        Ev {
            action: "start".into()
        }
    );
}

fn switch(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let ok = req.method() == Method::POST
        && req.uri() == "/hull/v1/forward?port=80"
        && req.headers()[header::UPGRADE] == "tcp"
        && req.headers()[header::CONNECTION] == "Upgrade"
        && req.headers()[header::CONTENT_LENGTH] == "0";
    let mut resp = Response::new(Full::new(Bytes::new()));
    if ok {
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("Upgrade"),
        );
    } else {
        *resp.status_mut() = StatusCode::FORBIDDEN;
        *resp.body_mut() = Full::new(Bytes::from_static(b"{\"message\":\"not published\"}"));
    }
    resp
}

#[tokio::test]
async fn an_upgrade_hands_over_the_stream() {
    let (io, _srv) = server(switch);
    let mut up = upgrade(io, "/hull/v1/forward?port=80", "tcp")
        .await
        .unwrap();
    up.write_all(b"hello through").await.unwrap();
    up.shutdown().await.unwrap();
    let mut back = Vec::new();
    up.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello through");
}

#[tokio::test]
async fn an_upgrade_refused_is_an_error_with_its_message() {
    let (io, _srv) = server(switch);
    let e = upgrade(io, "/hull/v1/forward?port=81", "tcp")
        .await
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "/hull/v1/forward?port=81: answered 403 Forbidden {\"message\":\"not published\"}"
    );
}

mod blocking_get {
    use super::*;

    /// A hyper server on a unix socket, in its own thread and runtime.
    fn unix_server(path: std::path::PathBuf) {
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::UnixListener::from_std(l).unwrap();
                while let Ok((s, _)) = l.accept().await {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        Ok::<_, Infallible>(ping(&req))
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc),
                    );
                }
            });
        });
    }

    #[test]
    fn a_blocking_get_on_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        unix_server(sock.clone());
        let r = blocking::get(&sock, "/_ping", 64, Duration::from_secs(5)).unwrap();
        assert_eq!(r.ok("/_ping").unwrap(), "OK");
    }

    #[test]
    fn a_blocking_get_names_the_socket_it_cannot_reach() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("absent.sock");
        let e = blocking::get(&sock, "/_ping", 64, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "connecting to {}: No such file or directory (os error 2)",
                sock.display()
            )
        );
    }

    #[test]
    fn a_blocking_get_gives_up_after_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("silent.sock");
        // Accepts (the backlog does) but never answers.
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let t = std::time::Instant::now();
        let e = blocking::get(&sock, "/_ping", 64, Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.to_string(), "/_ping: no answer within 300ms");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
