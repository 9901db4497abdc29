//! One request's way through the policy, before anything reaches dockerd:
//! hull's own endpoints, `hull_policy::classify` + `check_request`, then
//! the checks that need a body or the engine's view (create, volume
//! create, start of containers made outside the policy).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hull_policy::endpoint::{ApiRequest, Endpoint, RouteId};
use hull_policy::json::Limits;
use hull_policy::{check_request, classify, BodyPolicy};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode, Uri};

use crate::audit::Verdict;
use crate::reject::{full, Body, Reject};
use crate::state::{Gate, Peer};

/// Largest body the gate reads whole (create requests): the policy's own
/// JSON limit, 4 MiB.
pub const MAX_BODY_BYTES: usize = Limits::API_BODY.max_bytes;

/// What to do with a request.
pub enum Admission {
    /// Answer it here.
    Answer(Response<Body>),
    /// Host channel only: join the upgraded connection to a TCP port on the
    /// VM's loopback (how published ports reach the host).
    Tunnel(u16),
    /// Send it to the engine; `socket` is a per-container socket made for
    /// the container this request creates.
    Forward {
        req: Request<Body>,
        socket: Option<String>,
    },
}

/// Runs the policy on one request.
pub async fn admit(gate: &Arc<Gate>, peer: &Peer, req: Request<Incoming>) -> Admission {
    let method = req.method().as_str().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    match decide(gate, peer, parts, &mut body, &method, &target).await {
        Ok(a) => a,
        Err(rej) => {
            if rej.audit {
                gate.audit_request(
                    peer,
                    &method,
                    &target,
                    Verdict::Refused,
                    Some(rej.status.as_u16()),
                    &rej.message,
                );
            }
            if let Some(b) = body {
                drain(b).await;
            }
            Admission::Answer(rej.response())
        }
    }
}

/// Most of a refused request's body read (and dropped) before answering.
pub const DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// Longest time spent reading a refused request's body.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads what is left of a refused request's body, within [`DRAIN_BYTES`]
/// and [`DRAIN_TIME`]: a client still writing (a build context, a create
/// body) otherwise meets a closed connection and reports a broken pipe
/// instead of the refusal. Past either limit the connection is closed.
async fn drain(mut body: Incoming) {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return;
    }
    let work = async {
        let mut n = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            n += frame.data_ref().map_or(0, |d| d.len());
            if n > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, work).await;
}

fn bad(message: &str) -> Reject {
    Reject::refused(StatusCode::BAD_REQUEST, message)
}

async fn decide(
    gate: &Arc<Gate>,
    peer: &Peer,
    parts: hyper::http::request::Parts,
    body: &mut Option<Incoming>,
    method: &str,
    target: &str,
) -> Result<Admission, Reject> {
    // hyper bounds its read buffer, but a head that arrives in one read may
    // exceed it; the limit on what is forwarded is enforced here.
    let head_bytes = method.len()
        + target.len()
        + parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head_bytes > crate::proxy::MAX_HEADER_BYTES {
        return Err(Reject::refused(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "hull: request headers larger than {} bytes",
                crate::proxy::MAX_HEADER_BYTES
            ),
        ));
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        return Err(bad("hull: the request target must be a path (origin form)"));
    }
    let mut content_types = parts.headers.get_all(CONTENT_TYPE).iter();
    let content_type = match (content_types.next(), content_types.next()) {
        (None, _) => None,
        (Some(ct), None) => Some(
            ct.to_str()
                .map_err(|_| bad("hull: the Content-Type header is not ASCII"))?
                .to_string(),
        ),
        (Some(_), Some(_)) => return Err(bad("hull: more than one Content-Type header")),
    };

    if let Some(port) = crate::hull_api::tunnel_port(peer, method, target, &parts.headers)? {
        crate::hull_api::check_published(gate, port).await?;
        return Ok(Admission::Tunnel(port));
    }
    if target == "/hull" || target.starts_with("/hull/") || target.starts_with("/hull?") {
        return crate::hull_api::answer(gate, peer, method, target)
            .await
            .map(Admission::Answer);
    }

    if cfg!(feature = "weaken-gate") {
        // The gate-bypassed build (`cargo xtask vm-test --weaken gate`,
        // never shipped): the request goes to dockerd unchecked.
        let body = body.take().ok_or_else(|| bad("hull: request body gone"))?;
        return Ok(Admission::Forward {
            req: forwardable(parts, body),
            socket: None,
        });
    }
    let ep = classify(&ApiRequest {
        method,
        target,
        content_type: content_type.as_deref(),
    })?;
    check_request(&gate.settings, &ep, peer.channel)?;

    match ep.body_policy() {
        BodyPolicy::ContainerCreate => {
            let (bytes, _permit) = read_body(gate, &parts.headers, body).await?;
            let plan = crate::create::container_create(gate, peer, method, target, &bytes).await?;
            Ok(Admission::Forward {
                req: rebuild(parts, plan.body),
                socket: plan.socket,
            })
        }
        BodyPolicy::VolumeCreate => {
            let (bytes, _permit) = read_body(gate, &parts.headers, body).await?;
            let out = crate::create::volume_create(gate, &bytes).await?;
            Ok(Admission::Forward {
                req: rebuild(parts, out),
                socket: None,
            })
        }
        _ => {
            check_existing_container(gate, &ep).await?;
            let body = body.take().ok_or_else(|| bad("hull: request body gone"))?;
            Ok(Admission::Forward {
                req: forwardable(parts, body),
                socket: None,
            })
        }
    }
}

/// The container named by `/containers/<id>/<action>`.
fn container_in_path<'a>(path: &'a str, action: &str) -> Option<&'a str> {
    path.strip_prefix("/containers/")?
        .strip_suffix(action)?
        .strip_suffix('/')
        .filter(|id| !id.is_empty())
}

/// Starting (or entering) a container that was not created under hull's
/// policy is refused: it may hold host namespaces or VM binds.
async fn check_existing_container(gate: &Gate, ep: &Endpoint) -> Result<(), Reject> {
    let action = match ep.route {
        Some(RouteId::ContainerStart) => "start",
        Some(RouteId::ContainerRestart) => "restart",
        Some(RouteId::ContainerUnpause) => "unpause",
        Some(RouteId::ExecCreate) => "exec",
        _ => return Ok(()),
    };
    let Some(id) = container_in_path(&ep.path, action) else {
        return Ok(());
    };
    // No such container: the engine answers that itself.
    crate::create::inspect_hull_created(gate, id).await?;
    Ok(())
}

/// Reads a body the gate must see whole, within [`MAX_BODY_BYTES`] and
/// the body timeout, holding one of the gate's buffered-body permits.
async fn read_body<'a>(
    gate: &'a Gate,
    headers: &hyper::HeaderMap,
    slot: &mut Option<Incoming>,
) -> Result<(Bytes, tokio::sync::SemaphorePermit<'a>), Reject> {
    let too_large = || {
        Reject::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("hull: request body larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| bad("hull: invalid Content-Length"))?;
        if len > MAX_BODY_BYTES as u64 {
            // Not drained: the connection closes after the answer.
            slot.take();
            return Err(too_large());
        }
    }
    let timeout = gate.body_timeout;
    let permit = tokio::time::timeout(timeout, gate.body_permits.acquire())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| Reject::plain(StatusCode::SERVICE_UNAVAILABLE, "hull: the gate is busy"))?;
    let body = slot.take().ok_or_else(|| bad("hull: request body gone"))?;
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect())
        .await
        .map_err(|_| {
            Reject::refused(
                StatusCode::REQUEST_TIMEOUT,
                format!("hull: the request body did not arrive within {timeout:?}"),
            )
        })?;
    match collected {
        Ok(c) => Ok((c.to_bytes(), permit)),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(bad(&format!("hull: reading the request body: {e}"))),
    }
}

/// Headers that describe the client's framing, not the request: the
/// engine gets framing hyper derives from the body actually sent.
fn strip_framing(headers: &mut hyper::HeaderMap) {
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(EXPECT);
}

/// Origin-form target (what the engine routes on, unchanged).
fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query()
        .and_then(|pq| Uri::builder().path_and_query(pq.clone()).build().ok())
        .unwrap_or_else(|| Uri::from_static("/"))
}

/// The request as received, body streamed.
fn forwardable(mut parts: hyper::http::request::Parts, body: Incoming) -> Request<Body> {
    strip_framing(&mut parts.headers);
    parts.uri = origin_form(&parts.uri);
    Request::from_parts(parts, body.boxed())
}

/// The request with the body the policy produced.
fn rebuild(mut parts: hyper::http::request::Parts, body: Vec<u8>) -> Request<Body> {
    strip_framing(&mut parts.headers);
    parts.uri = origin_form(&parts.uri);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Request::from_parts(parts, full(Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_in_paths() {
        assert_eq!(
            container_in_path("/containers/abc/start", "start"),
            Some("abc")
        );
        assert_eq!(
            container_in_path("/containers/a/b/start", "start"),
            Some("a/b")
        );
        assert_eq!(container_in_path("/containers//start", "start"), None);
        assert_eq!(container_in_path("/containers/xstart", "start"), None);
        assert_eq!(container_in_path("/images/x/start", "start"), None);
    }

    #[test]
    fn targets_become_origin_form() {
        let u: Uri = "http://docker/v1.41/_ping?x=1".parse().unwrap();
        assert_eq!(origin_form(&u).to_string(), "/v1.41/_ping?x=1");
    }
}
