//! Per-container sockets without root: an in-process gate in front of a
//! fake engine, with an allow-list of `*`. Shows what a container that
//! was granted the Docker socket can and cannot do through it (the host
//! tier, `tests/socket.rs`, does the same against a real dockerd).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::fake::Rig;
use common::{raw, request, with_commands, with_images};
use hull_policy::{Effective, ListType};

fn granted(r: &Rig) -> PathBuf {
    let reply = raw(
        &r.gate,
        &request(
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"busybox","HostConfig":{"Binds":["/var/run/docker.sock:/var/run/docker.sock:ro"]}}"#,
        ),
    )
    .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.message());
    let create = r
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.target.contains("/containers/create"))
        .expect("create forwarded");
    let body: serde_json::Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(
        body["Image"], "sha256:fake",
        "image pinned to the checked id"
    );
    assert_eq!(body["HostConfig"]["Runtime"], "hull");
    let bind = body["HostConfig"]["Binds"][0].as_str().unwrap().to_string();
    let (src, rest) = bind.split_once(':').unwrap();
    assert_eq!(rest, "/var/run/docker.sock:ro");
    let src = PathBuf::from(src);
    assert!(src.starts_with(&r.sockets_dir), "{bind}");
    src
}

#[test]
fn granted_socket_is_the_gates_and_filtered() {
    let s = with_commands(
        with_images(Effective::default(), &["*"], false),
        ListType::Deny,
        &["push", "build"],
    );
    let r = Rig::start(s, Duration::from_secs(30), Duration::from_secs(30));
    let sock = granted(&r);
    r.clear();
    assert_eq!(
        raw(&sock, &request("GET", "/_ping", "")).unwrap().status,
        200
    );
    for t in [
        "/v1.41/images/x/push",
        "/images/x/push",
        "/v1.41/build",
        "/v1.41/%69mages/x/push",
    ] {
        let reply = raw(&sock, &request("POST", t, "")).unwrap();
        assert_eq!(reply.status, 403, "{t}");
        assert!(reply.message().contains("is blocked"));
    }
    for (m, t) in [
        ("GET", "/hull/v1/settings"),
        ("GET", "/hull/v1/unprotected"),
        ("PUT", "/hull/v1/settings"),
    ] {
        let reply = raw(&sock, &request(m, t, "")).unwrap();
        assert_eq!(reply.status, 403, "{m} {t}");
    }
    // The same create policy applies on the socket.
    let reply = raw(
        &sock,
        &request(
            "POST",
            "/containers/create",
            r#"{"Image":"x","HostConfig":{"PidMode":"host"}}"#,
        ),
    )
    .unwrap();
    assert_eq!(reply.status, 403);
    let reply = raw(
        &sock,
        &request(
            "POST",
            "/containers/create",
            r#"{"Image":"x","HostConfig":{"Binds":["/etc:/x"]}}"#,
        ),
    )
    .unwrap();
    assert_eq!(reply.status, 403);
    assert!(reply.message().contains("can't mount /etc"));
    // Only the ping reached the engine.
    let seen: Vec<String> = r.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(seen, ["/_ping"]);
    // The refusals were audited with their channel.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&r.audit).unwrap_or_default();
        if text
            .lines()
            .filter(|l| l.contains("\"container-socket\""))
            .count()
            >= 9
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The host channel still serves settings.
    assert_eq!(
        raw(&r.gate, &request("GET", "/hull/v1/settings", ""))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn no_allow_list_no_socket() {
    let r = Rig::start(
        Effective::default(),
        Duration::from_secs(30),
        Duration::from_secs(30),
    );
    let reply = raw(
        &r.gate,
        &request("POST", "/v1.41/containers/create", r#"{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"bind","Source":"/run/docker.sock","Target":"/s"}]}}"#),
    )
    .unwrap();
    assert_eq!(reply.status, 403);
    assert!(reply.message().contains("docker socket mount denied"));
    assert!(r.seen().is_empty());
    assert!(std::fs::read_dir(&r.sockets_dir).unwrap().next().is_none());
}
