//! Keeping the engine's state in line with the policy, outside any request:
//!
//! - per-container sockets are removed when their container is destroyed
//!   (the `destroy` event), and at start (reconcile) sockets of containers
//!   that still exist are served again — after the socket decision is
//!   taken again under the settings now in force;
//! - a container not created under hull's policy that runs anyway (dockerd
//!   restarts containers with a restart policy by itself, without asking
//!   the gate) is stopped and its restart policy cleared.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use serde_json::Value;

use crate::audit::{Event, Verdict};
use crate::create::socket_tokens;
use crate::engine::{encode, encode_query, EngineError};
use crate::state::{Gate, HULL_RUNTIME};

/// Longest event line kept while waiting for its newline.
const MAX_EVENT_LINE: usize = 1024 * 1024;

/// Follows the engine for the gate's life: reconcile, then the event
/// stream; again (with back-off) whenever the stream ends.
pub async fn run(gate: Arc<Gate>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let started = Instant::now();
        if let Err(e) = reconcile(&gate).await {
            tracing::warn!("reconcile: {e}");
        }
        if let Err(e) = follow(&gate, since).await {
            tracing::warn!("engine events: {e}");
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn runtime_of(info: &Value) -> &str {
    info.pointer("/HostConfig/Runtime")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_running(info: &Value) -> bool {
    info.pointer("/State/Running")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Brings sockets and running containers in line with the policy (see the
/// module docs). Run at start and after the event stream broke.
pub async fn reconcile(gate: &Arc<Gate>) -> Result<(), EngineError> {
    let list = gate
        .engine
        .get_json("/containers/json?all=1")
        .await?
        .unwrap_or(Value::Null);
    let served: HashSet<String> = gate.sockets.served().into_iter().collect();
    let mut referenced = HashSet::new();
    for c in list.as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(id) = c.get("Id").and_then(Value::as_str) else {
            continue;
        };
        let Some(info) = gate.engine.inspect_container(id).await? else {
            continue;
        };
        for token in socket_tokens(gate, &info).collect::<Vec<_>>() {
            referenced.insert(token.clone());
            if served.contains(&token) {
                gate.sockets.attach(&token, id);
            } else {
                regrant(gate, id, &info, &token).await;
            }
        }
        if runtime_of(&info) != HULL_RUNTIME && is_running(&info) {
            enforce(gate, id, &info).await;
        }
    }
    for (token, container) in gate.sockets.attached() {
        if container.is_some() && !referenced.contains(&token) {
            gate.sockets.close(&token);
        }
    }
    let served: HashSet<String> = gate.sockets.served().into_iter().collect();
    for name in gate.sockets.on_disk() {
        if !served.contains(&name) {
            gate.sockets.remove_stray(&name);
        }
    }
    Ok(())
}

/// Serves an existing container's socket again if its image is still
/// allowed under the settings in force.
async fn regrant(gate: &Arc<Gate>, id: &str, info: &Value, token: &str) {
    let image = info.get("Image").and_then(Value::as_str).unwrap_or("");
    let verdict = crate::facts::decide_socket_mount(gate, image).await;
    let (verdict, reason) = match verdict {
        Ok((grant, _)) => match gate.sockets.open(gate, Some(token), Some(id.to_string())) {
            Ok(_) => (
                Verdict::SocketGranted,
                format!(
                    "per-container socket served again (allow-list entry \"{}\")",
                    grant.entry
                ),
            ),
            Err(e) => (
                Verdict::Enforced,
                format!("per-container socket could not be re-created: {e}"),
            ),
        },
        Err(rej) => (
            Verdict::Enforced,
            format!("per-container socket not re-created: {}", rej.message),
        ),
    };
    gate.audit.record(&Event::now(
        "gate",
        Some(id.to_string()),
        "",
        "",
        verdict,
        None,
        &reason,
    ));
}

/// Stops a running container that was not created under hull's policy.
async fn enforce(gate: &Gate, id: &str, info: &Value) {
    let name = info
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or(id)
        .trim_start_matches('/');
    let update = serde_json::json!({"RestartPolicy": {"Name": "no"}}).to_string();
    let e = encode(id);
    let updated = gate
        .engine
        .request(
            "POST",
            &format!("/containers/{e}/update"),
            Some(update.into_bytes()),
        )
        .await;
    let killed = gate
        .engine
        .request("POST", &format!("/containers/{e}/kill"), None)
        .await;
    let outcome = match (&updated, &killed) {
        (_, Ok(r)) if r.status.is_success() || r.status.as_u16() == 409 => "stopped".to_string(),
        (_, Ok(r)) => format!("could not be stopped (engine answered {})", r.status),
        (_, Err(e)) => format!("could not be stopped: {e}"),
    };
    gate.audit.record(&Event::now(
        "gate",
        Some(id.to_string()),
        "",
        "",
        Verdict::Enforced,
        None,
        &format!(
            "container {name} (runtime \"{}\") was not created under hull's isolation policy and was running: {outcome}; its restart policy was cleared. Remove it with `docker rm {name}`",
            runtime_of(info)
        ),
    ));
}

async fn follow(gate: &Arc<Gate>, since: u64) -> Result<(), EngineError> {
    let filters = r#"{"type":["container"],"event":["destroy","start","unpause","restart"]}"#;
    let path = format!("/events?since={since}&filters={}", encode_query(filters));
    let resp = gate.engine.stream(&path).await?;
    if !resp.status().is_success() {
        return Err(EngineError::Status {
            status: resp.status(),
            path,
            message: String::new(),
        });
    }
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buf.extend_from_slice(data);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            if let Ok(ev) = serde_json::from_slice::<Value>(&line) {
                on_event(gate, &ev).await;
            }
        }
        if buf.len() > MAX_EVENT_LINE {
            buf.clear();
        }
    }
    Ok(())
}

async fn on_event(gate: &Arc<Gate>, ev: &Value) {
    let action = ev
        .get("Action")
        .or_else(|| ev.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(id) = ev
        .pointer("/Actor/ID")
        .or_else(|| ev.get("id"))
        .and_then(Value::as_str)
    else {
        return;
    };
    match action {
        "destroy" => {
            let n = gate.sockets.close_container(id);
            if n > 0 {
                tracing::info!(container = id, "removed {n} per-container socket(s)");
            }
        }
        "start" | "unpause" | "restart" => match gate.engine.inspect_container(id).await {
            Ok(Some(info)) if runtime_of(&info) != HULL_RUNTIME && is_running(&info) => {
                enforce(gate, id, &info).await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(container = id, "inspect after {action}: {e}"),
        },
        _ => {}
    }
}
