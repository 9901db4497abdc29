//! Red-team routes (issue 12) at the gate tier, in front of the fake
//! engine that records what reaches it: what the gate forwards after its
//! checks of other containers, and what `/hull/v1/forward` may reach.
//! Needs no root. The VM scenarios `redteam-gate/*` prove the same through
//! `docker`.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::fake::{Rig, PIN_WEB_ID};
use common::{raw, request};

fn rig() -> Rig {
    Rig::start(
        hull_policy::Effective::default(),
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
}

/// The create bodies the engine received.
fn creates(rig: &Rig) -> Vec<serde_json::Value> {
    rig.seen()
        .into_iter()
        .filter(|s| s.target.contains("/containers/create"))
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect()
}

/// The gate checks `pin-web` (a hull container, id PIN_WEB_ID) and
/// forwards that id, never the name: a rename or a new container under
/// the name between the check and the engine's create changes nothing.
#[test]
fn joins_and_volumes_from_are_pinned_to_the_checked_id() {
    let rig = rig();
    let body = r#"{"Image":"busybox","HostConfig":{"NetworkMode":"container:pin-web","PidMode":"container:pin-web","IpcMode":"container:pin-web","Cgroup":"container:pin-web","VolumesFrom":["pin-web:ro"]}}"#;
    let r = raw(
        &rig.gate,
        &request("POST", "/v1.43/containers/create", body),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.message());
    // The check happened: the engine was asked about pin-web.
    assert!(rig
        .seen()
        .iter()
        .any(|s| s.target.ends_with("/containers/pin-web/json")));
    let sent = creates(&rig);
    assert_eq!(sent.len(), 1);
    let hc = &sent[0]["HostConfig"];
    let joined = format!("container:{PIN_WEB_ID}");
    for key in ["NetworkMode", "PidMode", "IpcMode", "Cgroup"] {
        assert_eq!(hc[key], joined.as_str(), "{key}: {hc}");
    }
    assert_eq!(
        hc["VolumesFrom"],
        serde_json::json!([format!("{PIN_WEB_ID}:ro")])
    );
}

/// A join target that does not exist is refused at the gate, never left
/// for the engine to resolve after the check.
#[test]
fn a_missing_join_target_is_refused() {
    let rig = rig();
    for hc in [
        r#"{"NetworkMode":"container:pin-missing"}"#,
        r#"{"VolumesFrom":["pin-missing"]}"#,
    ] {
        let body = format!(r#"{{"Image":"busybox","HostConfig":{hc}}}"#);
        let r = raw(
            &rig.gate,
            &request("POST", "/v1.43/containers/create", &body),
        )
        .unwrap();
        assert_eq!(r.status, 400, "{hc}: {}", r.message());
        assert_eq!(r.message(), "hull: no such container: pin-missing");
    }
    assert!(creates(&rig).is_empty(), "a create reached the engine");
}

/// `/hull/v1/forward` to a loopback port a process really listens on, but
/// no container publishes (the fake engine lists no containers): 403, and
/// the listener never sees a connection.
#[test]
fn forward_reaches_only_published_ports() {
    let rig = rig();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let r = raw(
        &rig.gate,
        format!(
            "POST /hull/v1/forward?port={port} HTTP/1.1\r\nHost: hull\r\nConnection: Upgrade, close\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 403, "{} {}", r.head, r.message());
    assert_eq!(
        r.message(),
        format!(
            "hull: port {port} in the VM is not published by any container (forward reaches only published ports)"
        )
    );
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the gate connected to the unpublished port: {other:?}"),
    }
}
