//! The gate's own questions to dockerd (inspecting images, containers and
//! volumes, the event stream), as opposed to the requests it forwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

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

/// dockerd's unix socket.
#[derive(Debug, Clone)]
pub struct Engine {
    sock: PathBuf,
}

impl Engine {
    pub fn new(sock: &Path) -> Engine {
        Engine { sock: sock.into() }
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<Incoming>, EngineError> {
        let stream = UnixStream::connect(&self.sock)
            .await
            .map_err(EngineError::Connect)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("engine query connection: {e}");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "docker");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| EngineError::Json(path.to_string()))?;
        Ok(sender.send_request(req).await?)
    }

    /// One request, answer read whole (bounded), within [`QUERY_TIMEOUT`].
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, EngineError> {
        let work = async {
            let resp = self.send(method, path, body).await?;
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
    /// time.
    pub async fn stream(&self, path: &str) -> Result<hyper::Response<Incoming>, EngineError> {
        tokio::time::timeout(QUERY_TIMEOUT, self.send("GET", path, None))
            .await
            .map_err(|_| EngineError::Timeout(QUERY_TIMEOUT))?
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
