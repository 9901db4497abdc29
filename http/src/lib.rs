//! hull's one HTTP client (hyper 1.x, HTTP/1.1): a request on a stream the
//! caller opened (dockerd's unix socket, the user's docker socket, a framed
//! vsock stream to the gate), one request per connection.
//!
//! - [`get`]: a bounded answer, whole;
//! - [`stream`]: a stream of JSON objects, one per line (`GET /events`);
//! - [`upgrade`]: `POST` with `Upgrade:`, then the raw stream both ways
//!   (the gate's `/hull/v1/forward`);
//! - [`blocking::get`]: a GET on a unix socket from synchronous code.
//!
//! Every function spawns the connection's task with `tokio::spawn`, so it
//! must run inside a tokio runtime.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The `Host:` hull sends: every peer is reached over a unix or vsock
/// stream, where a host name means nothing, but HTTP/1.1 requires one.
const HOST: &str = "hull";
/// The most an error answer's body is read for its message.
const ERROR_BODY_MAX: usize = 4096;
/// A line of a JSON stream longer than this is an error, not something
/// to buffer (Docker's events are well under 16 KiB).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to {what}: {source}")]
    Connect { what: String, source: io::Error },
    #[error("{target}: {source}")]
    Http {
        target: String,
        source: hyper::Error,
    },
    #[error("{target:?} is not a valid request target")]
    Target { target: String },
    #[error("{target}: answered {status} {message}")]
    Status {
        target: String,
        status: StatusCode,
        message: String,
    },
    #[error("{target}: the answer broke off or is larger than {limit} bytes")]
    Body { target: String, limit: usize },
    #[error("{target}: no answer within {after:?}")]
    Timeout { target: String, after: Duration },
    #[error("{target}: a streamed line is not JSON: {source}")]
    Json {
        target: String,
        source: serde_json::Error,
    },
    #[error("{target}: a streamed line is longer than {MAX_LINE} bytes")]
    LineTooLong { target: String },
    #[error("{target}: the upgraded connection was not handed over: {source}")]
    Upgrade {
        target: String,
        source: hyper::Error,
    },
    #[error("starting the HTTP client's runtime: {0}")]
    Runtime(io::Error),
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body of a `200 OK`; any other status is an error naming it.
    pub fn ok(self, target: &str) -> Result<Bytes, Error> {
        if self.status == StatusCode::OK {
            Ok(self.body)
        } else {
            Err(Error::Status {
                target: target.to_string(),
                status: self.status,
                message: message(&self.body),
            })
        }
    }
}

/// The readable part of an error body (Docker's `{"message": ...}`).
fn message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_MAX)]);
    text.trim().to_string()
}

fn request(method: Method, target: &str) -> Result<Request<Empty<Bytes>>, Error> {
    Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, HOST)
        .body(Empty::new())
        .map_err(|_| Error::Target {
            target: target.to_string(),
        })
}

/// Sends `req` on `io` and returns the answer's head; the connection's task
/// runs until the body is read (or dropped), then closes `io`.
async fn send<T>(io: T, req: Request<Empty<Bytes>>) -> Result<Response<Incoming>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let target = req.uri().to_string();
    let http = |source| Error::Http {
        target: target.clone(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http)?;
    // The connection's errors reach the caller through the answer or its
    // body; the task only has to be driven.
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender.send_request(req).await.map_err(http)
}

/// Reads a body whole, at most `limit` bytes.
async fn collect(body: Incoming, target: &str, limit: usize) -> Result<Bytes, Error> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| Error::Body {
            target: target.to_string(),
            limit,
        })
}

/// `GET target` on `io`: the answer, its body read whole (at most `limit`
/// bytes, else an error).
pub async fn get<T>(io: T, target: &str, limit: usize) -> Result<Reply, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let resp = send(io, request(Method::GET, target)?).await?;
    let status = resp.status();
    let body = collect(resp.into_body(), target, limit).await?;
    Ok(Reply { status, body })
}

/// `GET target` on `io`, answered `200 OK` with a stream of JSON objects,
/// one per line (what dockerd's `/events` writes).
pub async fn stream<T>(io: T, target: &str) -> Result<JsonStream, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let resp = send(io, request(Method::GET, target)?).await?;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = collect(resp.into_body(), target, ERROR_BODY_MAX)
            .await
            .unwrap_or_default();
        return Err(Error::Status {
            target: target.to_string(),
            status,
            message: message(&body),
        });
    }
    Ok(JsonStream {
        target: target.to_string(),
        body: resp.into_body(),
        lines: Lines::default(),
    })
}

/// The stream an upgrade hands over: the same connection, after the
/// answer's head (bytes the server sent early included).
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// `POST target` with `Connection: Upgrade` and `Upgrade: protocol` on
/// `io`; once answered `101 Switching Protocols`, the connection itself.
pub async fn upgrade<T>(io: T, target: &str, protocol: &str) -> Result<Upgraded, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut req = request(Method::POST, target)?;
    let h = req.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    // No body, said explicitly: hyper leaves a bodiless POST without a
    // length header, which some servers refuse (411).
    h.insert(
        header::CONTENT_LENGTH,
        header::HeaderValue::from_static("0"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_str(protocol).map_err(|_| Error::Target {
            target: format!("{target} (Upgrade: {protocol})"),
        })?,
    );
    let resp = send(io, req).await?;
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = collect(resp.into_body(), target, ERROR_BODY_MAX)
            .await
            .unwrap_or_default();
        return Err(Error::Status {
            target: target.to_string(),
            status,
            message: message(&body),
        });
    }
    hyper::upgrade::on(resp)
        .await
        .map(TokioIo::new)
        .map_err(|source| Error::Upgrade {
            target: target.to_string(),
            source,
        })
}

/// A streamed answer read as JSON objects, one per line.
pub struct JsonStream {
    target: String,
    body: Incoming,
    lines: Lines,
}

impl JsonStream {
    /// The next object; `None` when the stream ends. A line that is not a
    /// `D` is an error for that line only: the next call goes on with the
    /// line after it.
    pub async fn next<D: serde::de::DeserializeOwned>(&mut self) -> Option<Result<D, Error>> {
        loop {
            match self.lines.pop::<D>() {
                Some(Ok(v)) => return Some(Ok(v)),
                Some(Err(LineError::Json(source))) => {
                    return Some(Err(Error::Json {
                        target: self.target.clone(),
                        source,
                    }))
                }
                Some(Err(LineError::TooLong)) => {
                    return Some(Err(Error::LineTooLong {
                        target: self.target.clone(),
                    }))
                }
                None => {}
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        self.lines.push(data);
                    }
                }
                Err(source) => {
                    return Some(Err(Error::Http {
                        target: self.target.clone(),
                        source,
                    }))
                }
            }
        }
    }
}

#[derive(Debug)]
enum LineError {
    Json(serde_json::Error),
    TooLong,
}

/// Splits bytes as they arrive into lines, each parsed as one JSON value.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    /// The rest of an over-long line is being dropped.
    skipping: bool,
}

impl Lines {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn pop<D: serde::de::DeserializeOwned>(&mut self) -> Option<Result<D, LineError>> {
        loop {
            let Some(nl) = self.buf.iter().position(|b| *b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    self.buf.clear();
                    if !self.skipping {
                        self.skipping = true;
                        return Some(Err(LineError::TooLong));
                    }
                }
                return None;
            };
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(serde_json::from_slice(&line).map_err(LineError::Json));
        }
    }
}

pub mod blocking {
    //! The client from synchronous code: each call runs on its own
    //! current-thread runtime (a few KiB, no thread), so it must not be
    //! called from inside a tokio runtime.

    use std::path::Path;
    use std::time::Duration;

    use super::{Error, Reply};

    /// `GET target` on the unix socket `sock`, answered whole (at most
    /// `limit` bytes) within `within`, connecting included.
    pub fn get(sock: &Path, target: &str, limit: usize, within: Duration) -> Result<Reply, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(Error::Runtime)?;
        rt.block_on(async {
            let work = async {
                let s = tokio::net::UnixStream::connect(sock)
                    .await
                    .map_err(|source| Error::Connect {
                        what: sock.display().to_string(),
                        source,
                    })?;
                super::get(s, target, limit).await
            };
            tokio::time::timeout(within, work)
                .await
                .map_err(|_| Error::Timeout {
                    target: target.to_string(),
                    after: within,
                })?
        })
    }
}

#[cfg(test)]
mod tests;
