//! The gate's own questions to dockerd (inspecting images, containers and
//! volumes, the event stream), as opposed to the requests it forwards.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

use crate::reject::{full, Body};

/// Largest answer the gate reads from the engine for itself.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// How long one of the gate's own engine requests may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a question to the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the Docker engine is not reachable: {0}")]
    Connect(std::io::Error),
    #[error("the Docker engine: {0}")]
    Http(#[from] hyper::Error),
    #[error("the Docker engine did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the Docker engine's answer was too large or broken")]
    Body,
    #[error("the Docker engine answered {status} to {path}: {message}")]
    Status {
        status: StatusCode,
        path: String,
        message: String,
    },
    #[error("the Docker engine's answer to {0} was not the expected JSON")]
    Json(String),
}

/// An answer from the engine.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON, if the status is 2xx.
    pub fn json(&self, path: &str) -> Result<Value, EngineError> {
        if !self.status.is_success() {
            return Err(EngineError::Status {
                status: self.status,
                path: path.to_string(),
                message: engine_message(&self.body),
            });
        }
        serde_json::from_slice(&self.body).map_err(|_| EngineError::Json(path.to_string()))
    }
}

/// The engine's `{"message": ...}`, or the body as text.
pub fn engine_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned())
}

/// Idle keep-alive connections to dockerd kept for the next request. A
/// connection carries no identity of its own (dockerd sees the gate's uid
/// on every one), and each request on it has passed the policy alone, so
/// any door's request may use any of them; HTTP/1.1 keeps them one request
/// at a time.
pub const IDLE_CONNECTIONS: usize = 16;

/// One HTTP/1.1 connection to dockerd, ready for a request.
pub type Sender = SendRequest<Body>;

/// dockerd's unix socket, and the pool of idle connections to it: a new
/// engine connection per request (a connect, and hyper's connection task)
/// costs more than the whole proxy hop under TCG.
#[derive(Debug, Clone)]
pub struct Engine {
    sock: PathBuf,
    idle: Arc<Mutex<Vec<Sender>>>,
}

impl Engine {
    pub fn new(sock: &Path) -> Engine {
        Engine {
            sock: sock.into(),
            idle: Arc::default(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Sender>> {
        // A poisoned lock only means a panic elsewhere; the list is intact.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Idle connections in the pool (tests).
    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// A new connection to dockerd, its connection task spawned (with
    /// upgrades: a hijacked request is carried on it).
    pub async fn connect(&self) -> Result<Sender, EngineError> {
        let stream = UnixStream::connect(&self.sock)
            .await
            .map_err(EngineError::Connect)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("engine connection: {e}");
            }
        });
        Ok(sender)
    }

    /// An idle connection from the pool if one is still open and ready,
    /// else a new one.
    pub async fn checkout(&self) -> Result<Sender, EngineError> {
        loop {
            let Some(s) = self.idle().pop() else { break };
            // Closed by dockerd while idle: dropped, try the next.
            if !s.is_closed() && s.is_ready() {
                return Ok(s);
            }
        }
        self.connect().await
    }

    /// Gives a connection back once its answer has been read to the end
    /// (`ready`): a streamed answer keeps it out of the pool until then, and
    /// one whose answer was abandoned is closed by hyper and never returns.
    /// Never for a connection that carried an upgrade.
    pub fn checkin(&self, mut sender: Sender) {
        let idle = self.idle.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(sender);
            }
        });
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        pooled: bool,
    ) -> Result<hyper::Response<Incoming>, EngineError> {
        let mut sender = if pooled {
            self.checkout().await?
        } else {
            self.connect().await?
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(full(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| EngineError::Json(path.to_string()))?;
        let resp = sender.send_request(req).await?;
        if pooled {
            self.checkin(sender);
        }
        Ok(resp)
    }

    /// One request, answer read whole (bounded), within [`QUERY_TIMEOUT`].
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, EngineError> {
        let work = async {
            let resp = self.send(method, path, body, true).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await
                .map_err(|_| EngineError::Body)?
                .to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(QUERY_TIMEOUT, work)
            .await
            .map_err(|_| EngineError::Timeout(QUERY_TIMEOUT))?
    }

    /// `GET path`; `Ok(None)` on 404.
    pub async fn get_json(&self, path: &str) -> Result<Option<Value>, EngineError> {
        let r = self.request("GET", path, None).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        r.json(path).map(Some)
    }

    /// A streaming `GET` (the event stream): the response, unbounded in
    /// time, on a connection of its own (it would never return to the pool).
    pub async fn stream(&self, path: &str) -> Result<hyper::Response<Incoming>, EngineError> {
        tokio::time::timeout(QUERY_TIMEOUT, self.send("GET", path, None, false))
            .await
            .map_err(|_| EngineError::Timeout(QUERY_TIMEOUT))?
    }

    /// Waits until dockerd answers `GET /_ping` with a success, for up to
    /// `wait`: at boot the gate starts beside dockerd, whose socket appears
    /// (and then answers) seconds later. A missing or refusing socket is
    /// tried again every 50 ms; a socket that exists holds the request until
    /// dockerd serves. The last failure is returned when time runs out.
    pub async fn wait_answering(&self, wait: Duration) -> Result<(), EngineError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let err = match tokio::time::timeout(left, self.request("GET", "/_ping", None)).await {
                Ok(Ok(r)) if r.status.is_success() => return Ok(()),
                Ok(Ok(r)) => EngineError::Status {
                    status: r.status,
                    path: "/_ping".into(),
                    message: engine_message(&r.body),
                },
                Ok(Err(e)) => e,
                Err(_) => EngineError::Timeout(wait),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(err);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `HostConfig.Runtime` and the inspect document of a container;
    /// `Ok(None)` if there is no such container.
    pub async fn inspect_container(&self, name: &str) -> Result<Option<Value>, EngineError> {
        self.get_json(&format!("/containers/{}/json", encode(name)))
            .await
    }
}

/// Percent-encodes a name (container, image, volume) for use as one path
/// variable: everything but unreserved characters and `:@` is escaped, so
/// the engine decodes exactly `name` and nothing in it can change the
/// route.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query-string encoding of a JSON value (for `filters=`).
pub fn encode_query(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 2);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stand-in dockerd on a unix socket that counts its connections:
    /// `/fast` answers at once, `/slow` streams its answer until `release`
    /// is notified.
    async fn fake_engine(dir: &Path) -> (Engine, Arc<AtomicUsize>, Arc<tokio::sync::Notify>) {
        let sock = dir.join("docker.sock");
        let l = tokio::net::UnixListener::bind(&sock).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let (a, r) = (accepted.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let r = r.clone();
                    async move {
                        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
                        let slow = req.uri().path() == "/slow";
                        tokio::spawn(async move {
                            if slow {
                                r.notified().await;
                            }
                            let _ = tx.send(Bytes::from("{}")).await;
                        });
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Rx(rx)))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc),
                );
            }
        });
        (Engine::new(&sock), accepted, release)
    }

    /// A streamed answer: whatever arrives on the channel, until it closes.
    struct Rx(tokio::sync::mpsc::Receiver<Bytes>);

    impl hyper::body::Body for Rx {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }

    async fn idle_becomes(e: &Engine, n: usize) {
        for _ in 0..200 {
            if e.idle_count() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "the pool holds {} idle connections, not {n}",
            e.idle_count()
        );
    }

    #[tokio::test]
    async fn the_wait_for_dockerd_ends_when_its_socket_answers() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let waiting = Engine::new(&sock);
        // No dockerd within the wait: the last failure, naming the socket's
        // absence.
        let err = waiting
            .wait_answering(Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Connect(e) if e.kind() == std::io::ErrorKind::NotFound),
            "{err}"
        );
        // dockerd's socket appears while the gate waits: the wait ends.
        let path = dir.path().to_path_buf();
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            fake_engine(&path).await
        });
        waiting
            .wait_answering(Duration::from_secs(10))
            .await
            .unwrap();
        let (_, accepted, _) = late.await.unwrap();
        assert!(accepted.load(Ordering::SeqCst) >= 1);
    }

    #[tokio::test]
    async fn one_engine_connection_serves_requests_one_after_another() {
        let dir = tempfile::tempdir().unwrap();
        let (e, accepted, _) = fake_engine(dir.path()).await;
        for _ in 0..3 {
            let r = e.request("GET", "/fast", None).await.unwrap();
            assert_eq!(r.status, StatusCode::OK);
            idle_becomes(&e, 1).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_streaming_answer_keeps_its_connection_out_of_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let (e, accepted, release) = fake_engine(dir.path()).await;
        let slow = e.send("GET", "/slow", None, true).await.unwrap();
        // Its body is still coming: the next request must not queue
        // behind it, so it gets a connection of its own.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(e.idle_count(), 0);
        e.request("GET", "/fast", None).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        idle_becomes(&e, 1).await;
        release.notify_one();
        let body = slow.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"{}");
        idle_becomes(&e, 2).await;
    }

    #[tokio::test]
    async fn an_abandoned_answer_never_returns_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (e, _, _) = fake_engine(dir.path()).await;
        let slow = e.send("GET", "/slow", None, true).await.unwrap();
        drop(slow);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(e.idle_count(), 0);
    }

    #[test]
    fn names_are_encoded() {
        assert_eq!(encode("docker:cli"), "docker:cli");
        assert_eq!(
            encode("localhost:5000/a/b@sha256:ab"),
            "localhost:5000%2Fa%2Fb@sha256:ab"
        );
        assert_eq!(encode("../x?y#z"), "..%2Fx%3Fy%23z");
        assert_eq!(
            encode_query("{\"a\":[\"b\"]}"),
            "%7B%22a%22%3A%5B%22b%22%5D%7D"
        );
    }

    #[test]
    fn engine_messages() {
        assert_eq!(
            engine_message(br#"{"message":"No such image: x"}"#),
            "No such image: x"
        );
        assert_eq!(engine_message(b"page not found"), "page not found");
    }
}
