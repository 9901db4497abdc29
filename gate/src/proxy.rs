//! HTTP/1.1 proxying to dockerd: every request through [`crate::admit`]
//! first, then keep-alive, streamed bodies both ways, and upgraded
//! (hijacked) connections with half-close carried through.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::UPGRADE;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::admit::{admit, Admission};
use crate::engine::{EngineError, Sender};
use crate::reject::{full, Body, Reject};
use crate::state::{Gate, Peer};

/// Request heads (request line and headers) beyond this are refused with
/// 431: hyper's read buffer is capped at this size and [`crate::admit`]
/// measures every head it parsed (a head arriving in one read can pass
/// hyper's own check). At most 100 headers (hyper's default).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves one client connection until it closes.
pub async fn serve<I>(io: I, gate: Arc<Gate>, peer: Peer) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = gate.header_timeout;
    let svc = hyper::service::service_fn(move |req| handle(req, gate.clone(), peer.clone()));
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEADER_BYTES)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await
}

/// A connection to dockerd: a pooled idle one, or a new one (an upgrade
/// always gets a new one, as it never goes back).
async fn connect(gate: &Gate, fresh: bool) -> Result<Sender, Response<Body>> {
    let got = if fresh {
        gate.engine.connect().await
    } else {
        gate.engine.checkout().await
    };
    got.map_err(|e| {
        tracing::warn!("dockerd socket {}: {e}", gate.engine.socket().display());
        match e {
            EngineError::Connect(_) => Reject::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the Docker engine in the hull VM is not running (see `hull status`)",
            )
            .response(),
            e => Reject::plain(StatusCode::BAD_GATEWAY, format!("engine: {e}")).response(),
        }
    })
}

/// Connects to a published port on the VM's loopback and hands the client's
/// upgraded connection over to it, half-close included.
async fn tunnel(port: u16, client_upgrade: Option<hyper::upgrade::OnUpgrade>) -> Response<Body> {
    let Some(client_upgrade) = client_upgrade else {
        return Reject::plain(StatusCode::BAD_REQUEST, "hull: forward needs Upgrade: tcp")
            .response();
    };
    let tcp = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(t) => t,
        Err(e) => {
            return Reject::plain(
                StatusCode::BAD_GATEWAY,
                format!("hull: port {port} in the VM: {e}"),
            )
            .response()
        }
    };
    tokio::spawn(async move {
        match client_upgrade.await {
            Ok(up) => {
                let mut up = TokioIo::new(up);
                let mut tcp = tcp;
                if let Err(e) = hull_channel::pump::join(&mut up, &mut tcp).await {
                    tracing::debug!(port, "forwarded connection: {e}");
                }
            }
            Err(e) => tracing::debug!(port, "forward upgrade failed: {e}"),
        }
    });
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    r.headers_mut()
        .insert(UPGRADE, hyper::header::HeaderValue::from_static("tcp"));
    r
}

async fn handle(
    mut req: Request<Incoming>,
    gate: Arc<Gate>,
    peer: Peer,
) -> Result<Response<Body>, Infallible> {
    let wants_upgrade = req.headers().contains_key(UPGRADE);
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let (req, socket) = match admit(&gate, &peer, req).await {
        Admission::Answer(r) => return Ok(r),
        Admission::Tunnel(port) => return Ok(tunnel(port, client_upgrade).await),
        Admission::Forward { req, socket } => (req, socket),
    };
    if let Some(token) = socket {
        // Finished in its own task: the socket must be attached to its
        // container (or closed) even if the client goes away meanwhile.
        let job = tokio::spawn(create_with_socket(gate, req, token));
        return Ok(job.await.unwrap_or_else(|e| {
            Reject::plain(StatusCode::INTERNAL_SERVER_ERROR, format!("hull: {e}")).response()
        }));
    }
    // Upgraded connections are handed over whole and never reused.
    let mut sender = match connect(&gate, wants_upgrade).await {
        Ok(s) => s,
        Err(resp) => return Ok(resp),
    };
    let sent = sender.send_request(req).await;
    if !wants_upgrade && sent.is_ok() {
        gate.engine.checkin(sender);
    }
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return Ok(Reject::plain(StatusCode::BAD_GATEWAY, format!("engine: {e}")).response())
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((c, u)) => {
                        let mut c = TokioIo::new(c);
                        let mut u = TokioIo::new(u);
                        if let Err(e) = hull_channel::pump::join(&mut c, &mut u).await {
                            tracing::debug!("hijacked stream: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("upgrade failed: {e}"),
                }
            });
        }
    }
    Ok(resp.map(|b| b.boxed()))
}

/// Forwards a create that was granted a per-container socket, then ties
/// the socket to the new container's id, or closes it if the engine
/// refused the create.
async fn create_with_socket(gate: Arc<Gate>, req: Request<Body>, token: String) -> Response<Body> {
    let answer = async {
        let mut sender = connect(&gate, false).await?;
        let resp = sender.send_request(req).await.map_err(|e| {
            Reject::plain(StatusCode::BAD_GATEWAY, format!("engine: {e}")).response()
        })?;
        gate.engine.checkin(sender);
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, crate::engine::MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|_| {
                Reject::plain(StatusCode::BAD_GATEWAY, "engine: broken create answer").response()
            })?
            .to_bytes();
        Ok::<_, Response<Body>>((parts, bytes))
    }
    .await;
    let (parts, bytes): (_, Bytes) = match answer {
        Ok(x) => x,
        Err(resp) => {
            gate.sockets.close(&token);
            return resp;
        }
    };
    let id = parts
        .status
        .is_success()
        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
        .flatten()
        .and_then(|v| v.get("Id").and_then(Value::as_str).map(str::to_string));
    match id {
        Some(id) => {
            gate.sockets.attach(&token, &id);
            tracing::info!(container = %id, "per-container socket {token} attached");
        }
        None => {
            gate.sockets.close(&token);
            tracing::info!(
                status = parts.status.as_u16(),
                "create refused by the engine; per-container socket {token} removed"
            );
        }
    }
    Response::from_parts(parts, full(bytes))
}
