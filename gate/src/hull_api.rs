//! hull's own read-only endpoints, on the host channel only:
//!
//! - `GET /hull/v1/settings`: the settings in force (canonical JSON of
//!   `hull_policy::Effective`, header `X-Hull-Settings-Digest`);
//! - `GET /hull/v1/unprotected`: containers not created under hull's
//!   policy (runtime other than hull), for `hull status`;
//! - `POST /hull/v1/forward?port=N` with `Upgrade: tcp`: a byte stream to
//!   127.0.0.1:N in the VM, where Docker publishes container ports; the host
//!   CLI uses it to make published ports reachable on the host. Only a TCP
//!   port a running container publishes is reached, never any other
//!   loopback port of the VM (403).
//!
//! Nothing here changes anything, and per-container sockets get a refusal
//! for every `/hull/` path.

use hull_policy::Channel;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::engine::encode;
use crate::reject::{json_response, Body, Reject};
use crate::state::{Gate, Peer, HULL_RUNTIME};

/// The port of a forward request, after checking it may be made here.
pub fn tunnel_port(
    peer: &Peer,
    method: &str,
    target: &str,
    headers: &hyper::HeaderMap,
) -> Result<Option<u16>, Reject> {
    let Some(query) = target.strip_prefix("/hull/v1/forward?") else {
        return Ok(None);
    };
    if peer.channel != Channel::Host {
        return Err(Reject::refused(
            StatusCode::FORBIDDEN,
            "hull: the hull API is not available from containers",
        ));
    }
    if method != "POST" || !headers.contains_key(hyper::header::UPGRADE) {
        return Err(Reject::plain(
            StatusCode::BAD_REQUEST,
            "hull: forward needs POST with Upgrade: tcp",
        ));
    }
    let port = query
        .strip_prefix("port=")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| Reject::plain(StatusCode::BAD_REQUEST, "hull: forward?port=<1-65535>"))?;
    Ok(Some(port))
}

/// The message of a forward to a port no container publishes.
pub const NOT_PUBLISHED: &str = "is not published by any container";

/// TCP ports that running containers publish (`PublicPort` of
/// `GET /containers/json`), the only ones forward reaches.
pub fn published_tcp_ports(containers: &Value) -> std::collections::BTreeSet<u16> {
    containers
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.get("Ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|p| p.get("Type").and_then(Value::as_str) == Some("tcp"))
        .filter_map(|p| p.get("PublicPort").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .collect()
}

/// Refuses a forward to a port no running container publishes: the VM's
/// loopback holds nothing else the host may reach.
pub async fn check_published(gate: &Gate, port: u16) -> Result<(), Reject> {
    let list = gate
        .engine
        .get_json("/containers/json")
        .await
        .map_err(|e| Reject::engine(&e))?
        .unwrap_or(Value::Null);
    if published_tcp_ports(&list).contains(&port) {
        return Ok(());
    }
    Err(Reject::refused(
        StatusCode::FORBIDDEN,
        format!(
            "hull: port {port} in the VM {NOT_PUBLISHED} (forward reaches only published ports)"
        ),
    ))
}

pub async fn answer(
    gate: &Gate,
    peer: &Peer,
    method: &str,
    target: &str,
) -> Result<Response<Body>, Reject> {
    if peer.channel != Channel::Host {
        return Err(Reject::refused(
            StatusCode::FORBIDDEN,
            "hull: the hull API (settings included) is not available from containers",
        ));
    }
    match (method, target) {
        ("GET", "/hull/v1/settings") => {
            let mut r = json_response(StatusCode::OK, gate.settings_json.clone());
            if let Ok(v) = HeaderValue::from_str(&gate.settings.digest()) {
                r.headers_mut().insert("x-hull-settings-digest", v);
            }
            Ok(r)
        }
        ("GET", "/hull/v1/unprotected") => {
            let list = unprotected(gate).await?;
            Ok(json_response(StatusCode::OK, Value::Array(list).to_string()))
        }
        (_, "/hull/v1/settings" | "/hull/v1/unprotected") => Err(Reject::refused(
            StatusCode::METHOD_NOT_ALLOWED,
            "hull: this endpoint is read-only (GET)",
        )),
        _ => Err(Reject::plain(
            StatusCode::NOT_FOUND,
            "hull: no such endpoint (hull serves GET /hull/v1/settings and GET /hull/v1/unprotected)",
        )),
    }
}

/// Every container whose `HostConfig.Runtime` is not hull's.
pub async fn unprotected(gate: &Gate) -> Result<Vec<Value>, Reject> {
    let list = gate
        .engine
        .get_json("/containers/json?all=1")
        .await
        .map_err(|e| Reject::engine(&e))?
        .unwrap_or(Value::Null);
    let mut out = Vec::new();
    for c in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(id) = c.get("Id").and_then(Value::as_str) else {
            continue;
        };
        let info = match gate
            .engine
            .get_json(&format!("/containers/{}/json", encode(id)))
            .await
        {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => return Err(Reject::engine(&e)),
        };
        let runtime = info
            .pointer("/HostConfig/Runtime")
            .and_then(Value::as_str)
            .unwrap_or("");
        if runtime == HULL_RUNTIME {
            continue;
        }
        out.push(json!({
            "id": id,
            "name": info.get("Name").and_then(Value::as_str).unwrap_or("").trim_start_matches('/'),
            "image": info.pointer("/Config/Image").and_then(Value::as_str).unwrap_or(""),
            "runtime": runtime,
            "state": info.pointer("/State/Status").and_then(Value::as_str).unwrap_or(""),
            "remedy": format!("docker rm {}", info.get("Name").and_then(Value::as_str).unwrap_or(id).trim_start_matches('/')),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_tcp_ports_count() {
        let list = json!([
            {"Ports": [
                {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                {"PrivatePort": 443, "Type": "tcp"},
                {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"}
            ]},
            {"Ports": [{"IP": "127.0.0.1", "PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"}]},
            {"Ports": null},
            {}
        ]);
        let ports = published_tcp_ports(&list);
        assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![2222, 8080]);
        assert!(published_tcp_ports(&Value::Null).is_empty());
    }
}
