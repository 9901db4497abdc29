//! ECI §8 (Docker socket mounts) and attack 16/23 through per-container
//! sockets: a private dockerd and registry (so images carry real
//! repository digests) behind hull-gate. Host tier: needs root, docker.io
//! and docker-registry, else it fails naming what is missing.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use hull_policy::ListType;

const DENIED: &str = "docker socket mount denied for container with image";

struct Images {
    /// `localhost:<port>/tools/cli:1`: busybox + the docker CLI, pushed.
    cli: String,
    cli_id: String,
    /// Its repository digest.
    cli_digest: String,
    /// busybox with one more file: never pushed.
    evil_id: String,
}

fn images(env: &Env) -> Images {
    let port = env.registry_port.expect("registry");
    let cli = format!("localhost:{port}/tools/cli:1");
    // The CLI on PATH, with its shared libraries if it has any (Debian's
    // docker.io links libc; a docker-ce-cli binary is static).
    let cli_bin = docker_cli();
    let mut files = vec![(
        "usr/local/bin/docker".to_string(),
        std::fs::read(&cli_bin).unwrap(),
    )];
    let ldd = std::process::Command::new("ldd")
        .arg(&cli_bin)
        .output()
        .expect("ldd (Debian package libc-bin)");
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        files.push((
            lib.trim_start_matches('/').to_string(),
            std::fs::read(lib).unwrap(),
        ));
    }
    let extra: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let cli_id = env.import_busybox(&cli, &extra);
    let out = env.docker_direct(&["push", &cli]);
    assert_ok(&out);
    let digests =
        assert_ok(&env.docker_direct(&["inspect", "--format", "{{json .RepoDigests}}", &cli]));
    let digests: Vec<String> = serde_json::from_str(digests.trim()).unwrap();
    let cli_digest = digests[0].split('@').nth(1).unwrap().to_string();
    let evil_id = env.import_busybox("evil:1", &[("evil", b"evil")]);
    Images {
        cli,
        cli_id,
        cli_digest,
        evil_id,
    }
}

fn in_container(env: &Env, g: &GateProc, image: &str, script: &str) -> std::process::Output {
    env.docker_at(
        &g.sock,
        &[
            "run",
            "--rm",
            "-e",
            "DOCKER_CONFIG=/tmp/.docker",
            "-e",
            "DOCKER_BUILDKIT=0",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            image,
            "sh",
            "-c",
            script,
        ],
    )
}

/// The per-container socket of a container (its bind source).
fn socket_of(env: &Env, g: &GateProc, id: &str) -> PathBuf {
    let binds = assert_ok(&env.docker_at(
        &g.sock,
        &["inspect", "--format", "{{json .HostConfig.Binds}}", id],
    ));
    let binds: Vec<String> = serde_json::from_str(binds.trim()).unwrap();
    let src = binds[0].split(':').next().unwrap().to_string();
    assert!(
        Path::new(&src).starts_with(&g.sockets_dir),
        "bind source {src} is not a per-container socket"
    );
    PathBuf::from(src)
}

#[test]
fn socket_mounts_host_tier() {
    let mut env = Env::start("socket", true);
    scenarios(
        &mut env,
        &[
            ("allowed image gets a per-container socket", allowed),
            ("other images are denied", denied),
            ("re-tag attack", retag),
            ("digest entries and derived images", digests_and_derived),
            ("missing images are pulled, then decided", pulled_on_demand),
            ("command list through the socket (CLI)", command_list_cli),
            (
                "command list through the socket (raw HTTP)",
                command_list_raw,
            ),
            ("hijacked streams carry no requests", hijacked),
            (
                "containers made through the socket are hardened",
                nested_hardened,
            ),
            (
                "settings are unreachable from the socket",
                settings_unreachable,
            ),
            ("sockets follow their containers", lifecycle),
            ("fail-closed command list", fail_closed_list),
        ],
    );
}

fn socket_settings(env: &Env) -> hull_policy::Effective {
    let port = env.registry_port.unwrap();
    let e = with_images(
        env.settings(),
        &[&format!("localhost:{port}/tools/cli:1")],
        true,
    );
    with_commands(e, ListType::Deny, &["push", "build"])
}

fn allowed(env: &mut Env) {
    let im = images(env);
    let s = socket_settings(env);
    let g = env.gate(&s);
    let out = in_container(
        env,
        &g,
        &im.cli,
        "docker version --format '{{.Server.Version}}'",
    );
    assert!(
        assert_ok(&out).trim().starts_with("20.10"),
        "{}",
        stdout(&out)
    );
    // The container holds a socket of the gate, never dockerd's.
    let id = assert_ok(&env.docker_at(
        &g.sock,
        &[
            "run",
            "-d",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &im.cli,
            "sleep",
            "60",
        ],
    ));
    let id = id.trim();
    let sock = socket_of(env, &g, id);
    assert_ne!(sock, env.engine_sock);
    let r = raw(&sock, &request("GET", "/_ping", "")).unwrap();
    assert_eq!(r.status, 200);
    // The image was pinned to the id that was checked.
    let image = assert_ok(&env.docker_at(&g.sock, &["inspect", "--format", "{{.Image}}", id]));
    assert_eq!(image.trim(), im.cli_id);
    g.wait_audit(|e| e["verdict"] == "socket-granted");
    assert_ok(&env.docker_at(&g.sock, &["rm", "-f", id]));
    eventually("socket removed with its container", || !sock.exists());
}

fn denied(env: &mut Env) {
    let s = socket_settings(env);
    let g = env.gate(&s);
    let out = env.docker_at(
        &g.sock,
        &[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "busybox",
            "true",
        ],
    );
    assert_refused(
        &out,
        "enhanced container isolation: docker socket mount denied for container with image \"docker.io/library/busybox\"; image is not in the allowed list",
    );
    let out = env.docker_at(
        &g.sock,
        &[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "evil:1",
            "true",
        ],
    );
    assert_refused(&out, "docker.io/library/evil:1");
    // Nothing was left behind.
    assert!(std::fs::read_dir(&g.sockets_dir).unwrap().next().is_none());
}

fn retag(env: &mut Env) {
    let im = images(env);
    let port = env.registry_port.unwrap();
    let s = socket_settings(env);
    let g = env.gate(&s);
    let any_tag = with_images(
        env.settings(),
        &[&format!("localhost:{port}/tools/cli:*")],
        false,
    );
    let g2 = env.gate(&any_tag);
    // `docker tag evil <allowed name>`: the tag moves, the digest does not.
    assert_ok(&env.docker_direct(&["tag", &im.evil_id, &im.cli]));
    for gate in [&g, &g2] {
        let out = env.docker_at(
            &gate.sock,
            &[
                "run",
                "--rm",
                "-v",
                "/var/run/docker.sock:/s",
                &im.cli,
                "true",
            ],
        );
        assert_refused(&out, DENIED);
        let out = env.docker_at(
            &gate.sock,
            &[
                "run",
                "--rm",
                "-v",
                "/var/run/docker.sock:/s",
                &im.evil_id,
                "true",
            ],
        );
        assert_refused(&out, DENIED);
    }
    assert_ok(&env.docker_direct(&["tag", &im.cli_id, &im.cli]));
    let out = env.docker_at(
        &g.sock,
        &[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/s",
            &im.cli,
            "true",
        ],
    );
    assert_ok(&out);
}

fn digests_and_derived(env: &mut Env) {
    let im = images(env);
    let port = env.registry_port.unwrap();
    let by_digest = with_images(
        env.settings(),
        &[&format!("localhost:{port}/tools/cli@{}", im.cli_digest)],
        false,
    );
    let g = env.gate(&by_digest);
    assert_ok(&env.docker_at(
        &g.sock,
        &[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/s",
            &im.cli,
            "true",
        ],
    ));
    assert_refused(
        &env.docker_at(
            &g.sock,
            &[
                "run",
                "--rm",
                "-v",
                "/var/run/docker.sock:/s",
                "busybox",
                "true",
            ],
        ),
        DENIED,
    );

    // Derived images (committed from a container of the allowed image).
    let s = socket_settings(env);
    let g = env.gate(&s);
    let c = assert_ok(&env.docker_at(&g.sock, &["create", &im.cli, "true"]));
    assert_ok(&env.docker_at(&g.sock, &["commit", c.trim(), "derived:1"]));
    let c2 = assert_ok(&env.docker_at(&g.sock, &["create", "evil:1", "true"]));
    assert_ok(&env.docker_at(&g.sock, &["commit", c2.trim(), "evil-derived:1"]));
    assert_ok(&env.docker_at(&g.sock, &["rm", c.trim(), c2.trim()]));
    assert_ok(&env.docker_at(
        &g.sock,
        &[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/s",
            "derived:1",
            "true",
        ],
    ));
    assert_refused(
        &env.docker_at(
            &g.sock,
            &[
                "run",
                "--rm",
                "-v",
                "/var/run/docker.sock:/s",
                "evil-derived:1",
                "true",
            ],
        ),
        DENIED,
    );
    let no_derived = with_images(env.settings(), &[&im.cli], false);
    let g2 = env.gate(&no_derived);
    assert_refused(
        &env.docker_at(
            &g2.sock,
            &[
                "run",
                "--rm",
                "-v",
                "/var/run/docker.sock:/s",
                "derived:1",
                "true",
            ],
        ),
        DENIED,
    );
}

fn command_list_cli(env: &mut Env) {
    let im = images(env);
    let s = socket_settings(env);
    let g = env.gate(&s);
    let blocked = "enhanced container isolation: docker command";
    let out = in_container(env, &g, &im.cli, &format!("docker push {}", im.cli));
    assert_refused(&out, blocked);
    assert!(stderr(&out).contains("/push"));
    let out = in_container(
        env,
        &g,
        &im.cli,
        "mkdir -p /tmp/ctx && echo 'FROM busybox' > /tmp/ctx/Dockerfile && docker build /tmp/ctx",
    );
    assert_refused(&out, blocked);
    // Other commands pass.
    let out = in_container(env, &g, &im.cli, "docker images -q | wc -l");
    assert_ok(&out);
    // The host channel is not subject to the command list.
    assert_ok(&env.docker_at(&g.sock, &["push", &im.cli]));
    let e = g.wait_audit(|e| e["channel"] == "container-socket" && e["verdict"] == "refused");
    assert!(e["container"].as_str().unwrap_or("").len() == 64, "{e}");
}

/// A long-running container of the allowed image; returns (id, socket).
fn holder(env: &Env, g: &GateProc, image: &str) -> (String, PathBuf) {
    let id = assert_ok(&env.docker_at(
        &g.sock,
        &[
            "run",
            "-d",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            image,
            "sleep",
            "300",
        ],
    ));
    let id = id.trim().to_string();
    let sock = socket_of(env, g, &id);
    (id, sock)
}

fn command_list_raw(env: &mut Env) {
    let im = images(env);
    let s = socket_settings(env);
    let g = env.gate(&s);
    let (id, sock) = holder(env, &g, &im.cli);
    for target in [
        "/v1.41/images/busybox/push",
        "/images/busybox/push",
        "/v1.12/images/busybox/push",
        "/v1.99/images/busybox/push",
        "/v1.41/%69mages/busybox/push",
        "/v1.41/images/busybox%2Fx/push",
        "/v1.41/images/busybox/push?tag=latest",
        "/v1.41/images/busybox/push/",
        "/v1.41/build",
        "/build?t=x",
        "/v1.41/build/cancel",
        "/session",
    ] {
        let r = raw(&sock, &request("POST", target, "")).unwrap();
        assert_eq!(r.status, 403, "{target}: {}", r.message());
        assert!(
            r.message().contains("is blocked"),
            "{target}: {}",
            r.message()
        );
    }
    for target in [
        "//images/busybox/push",
        "/V1.41/images/busybox/push",
        "/v1.41/images/busybox/%2e%2e/x/push",
        "/v1.41/images/busybox/push%23",
        "/v1.41/images/busybox/push;x",
    ] {
        // Refused as ambiguous, or not a route of the engine at all (404):
        // never a push.
        let r = raw(&sock, &request("POST", target, "")).unwrap();
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{target}: {} {}",
            r.status,
            r.message()
        );
    }
    // Keep-alive: a blocked request after an allowed one on one
    // connection.
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nPOST /v1.41/images/busybox/push HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 403"), "{text}");
    assert_ok(&env.docker_at(&g.sock, &["rm", "-f", &id]));
}

fn hijacked(env: &mut Env) {
    let im = images(env);
    let s = socket_settings(env);
    let g = env.gate(&s);
    let (id, sock) = holder(env, &g, &im.cli);
    // docker exec through the per-container socket works, stdin included.
    let out = env.docker_at_stdin(&sock, &["exec", "-i", &id, "cat"], Some(b"via socket\n"));
    assert_eq!(assert_ok(&out), "via socket\n");
    // Bytes after an upgrade are the process's stdin, not requests: a push
    // written there is echoed back by cat and never reaches the engine.
    let create = raw(
        &sock,
        &request(
            "POST",
            &format!("/v1.41/containers/{id}/exec"),
            r#"{"AttachStdin":true,"AttachStdout":true,"Tty":true,"Cmd":["cat"]}"#,
        ),
    )
    .unwrap();
    assert_eq!(create.status, 201, "{}", create.message());
    let exec = create.json()["Id"].as_str().unwrap().to_string();
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = r#"{"Detach":false,"Tty":true}"#;
    conn.write_all(format!("POST /v1.41/exec/{exec}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    let smuggled = "POST /v1.41/images/smuggled/push HTTP/1.1\r\nHost: d\r\n\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = false;
    while !String::from_utf8_lossy(&got).contains("smuggled/push") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if !sent && String::from_utf8_lossy(&got).contains("101") {
            conn.write_all(smuggled.as_bytes()).unwrap();
            sent = true;
        }
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 101"));
    drop(conn);
    assert!(!g
        .audit_events()
        .iter()
        .any(|e| e["path"].as_str().unwrap_or("").contains("smuggled")));
    // A command list denying exec blocks the hijacked endpoints too.
    let deny_exec = with_commands(socket_settings(env), ListType::Deny, &["exec"]);
    let g2 = env.gate(&deny_exec);
    let (id2, sock2) = holder(env, &g2, &im.cli);
    assert_refused(
        &env.docker_at(&sock2, &["exec", &id2, "true"]),
        "is blocked",
    );
    let r = raw(
        &sock2,
        &request("POST", &format!("/v1.41/exec/{exec}/start"), "{}"),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert_ok(&env.docker_at(&g.sock, &["rm", "-f", &id, &id2]));
}

fn nested_hardened(env: &mut Env) {
    let im = images(env);
    let s = socket_settings(env);
    let g = env.gate(&s);
    let out = in_container(env, &g, &im.cli, "docker run --rm --pid=host busybox true");
    assert_refused(&out, "can't share namespaces [pid]");
    let out = in_container(
        env,
        &g,
        &im.cli,
        "docker run --rm --network=host busybox true",
    );
    assert_refused(&out, "can't share a network namespace");
    let out = in_container(env, &g, &im.cli, "docker run --rm -v /etc:/x busybox true");
    assert_refused(
        &out,
        "can't mount /etc because it's configured as a restricted host mount",
    );
    let out = in_container(
        env,
        &g,
        &im.cli,
        "docker run --rm --privileged -v /:/host busybox true",
    );
    assert_refused(&out, "can't mount / because");
    let out = in_container(
        env,
        &g,
        &im.cli,
        "docker run --rm -v /var/run/docker.sock:/s busybox true",
    );
    assert_refused(&out, DENIED);
    let out = in_container(
        env,
        &g,
        &im.cli,
        "docker run -d --name nested1 --runtime=runc busybox sleep 60",
    );
    assert_ok(&out);
    let rt = assert_ok(&env.docker_at(
        &g.sock,
        &["inspect", "--format", "{{.HostConfig.Runtime}}", "nested1"],
    ));
    assert_eq!(rt.trim(), "hull");
    // An allowed image may get its own socket through a socket.
    let out = in_container(
        env,
        &g,
        &im.cli,
        &format!(
            "docker run --rm -v /var/run/docker.sock:/var/run/docker.sock {} docker ps -q",
            im.cli
        ),
    );
    assert_ok(&out);
    // Raw create on the socket with Privileged and VM binds.
    let (id, sock) = holder(env, &g, &im.cli);
    let r = raw(
        &sock,
        &request(
            "POST",
            "/containers/create",
            r#"{"Image":"busybox","HostConfig":{"Privileged":true,"Binds":["/:/host"]}}"#,
        ),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert!(r.message().contains("can't mount /"));
    let r = raw(
        &sock,
        &request("POST", "/v1.41/containers/create", r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Runtime":"runc","Privileged":true}}"#),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.message());
    let nid = r.json()["Id"].as_str().unwrap().to_string();
    let rt = assert_ok(&env.docker_at(
        &g.sock,
        &["inspect", "--format", "{{.HostConfig.Runtime}}", &nid],
    ));
    assert_eq!(rt.trim(), "hull");
    // --volumes-from a socket holder would hand its socket on.
    let out = env.docker_at(
        &sock,
        &["run", "--rm", "--volumes-from", &id, "busybox", "true"],
    );
    assert_refused(&out, "holds a Docker socket");
    assert_ok(&env.docker_at(&g.sock, &["rm", "-f", &id, &nid, "nested1"]));
}

fn settings_unreachable(env: &mut Env) {
    let im = images(env);
    let s = socket_settings(env);
    let g = env.gate(&s);
    let (id, sock) = holder(env, &g, &im.cli);
    for (m, t) in [
        ("GET", "/hull/v1/settings"),
        ("GET", "/hull/v1/unprotected"),
        ("PUT", "/hull/v1/settings"),
        ("POST", "/hull/v1/settings"),
        ("GET", "/hull"),
    ] {
        let r = raw(&sock, &request(m, t, "{}")).unwrap();
        assert_eq!(r.status, 403, "{m} {t}");
        assert!(r.message().contains("not available from containers"));
    }
    // Prefixed or encoded: not hull's endpoint, the engine has none.
    for t in ["/v1.41/hull/v1/settings", "/%68ull/v1/settings"] {
        let r = raw(&sock, &request("GET", t, "")).unwrap();
        assert_ne!(r.status, 200, "{t}");
        assert!(!String::from_utf8_lossy(&r.body).contains("commandList"));
    }
    // Nor through a bind mount, from the socket or the host channel.
    let path = g.settings.to_str().unwrap().to_string();
    let out = env.docker_at(
        &sock,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{path}:/s"),
            "busybox",
            "cat",
            "/s",
        ],
    );
    // Temporary paths here: Docker Desktop's answer (see eci.rs).
    assert_refused(&out, "is not shared from the host");
    let dir = g.settings.parent().unwrap().to_str().unwrap().to_string();
    let out = env.docker_at(
        &sock,
        &["run", "--rm", "-v", &format!("{dir}:/s"), "busybox", "true"],
    );
    assert_refused(&out, "is not shared from the host");
    let e = g.wait_audit(|e| e["path"] == "/hull/v1/settings");
    assert_eq!(e["channel"], "container-socket");
    assert_eq!(e["container"], id.as_str());
    assert_ok(&env.docker_at(&g.sock, &["rm", "-f", &id]));
}

fn lifecycle(env: &mut Env) {
    let im = images(env);
    let s = socket_settings(env);
    let mut g = env.gate(&s);
    let (id, sock) = holder(env, &g, &im.cli);
    std::fs::create_dir_all(g.sockets_dir.join("stray")).unwrap();
    // A gate restart serves existing containers' sockets again and sweeps
    // what no container uses.
    env.restart_gate(&mut g);
    assert!(sock.exists());
    assert_eq!(
        raw(&sock, &request("GET", "/_ping", "")).unwrap().status,
        200
    );
    assert!(!g.sockets_dir.join("stray").exists());
    // Restarted under settings that no longer allow the image: not served.
    let strict = env.settings();
    std::fs::write(&g.settings, strict.canonical_json()).unwrap();
    env.restart_gate(&mut g);
    assert!(!sock.exists());
    g.wait_audit(|e| {
        e["verdict"] == "enforced"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("not re-created")
    });
    // Destroyed while the gate was down: swept at start.
    std::fs::write(&g.settings, s.canonical_json()).unwrap();
    env.restart_gate(&mut g);
    assert!(sock.exists());
    g.stop();
    assert_ok(&env.docker_direct(&["rm", "-f", &id]));
    env.restart_gate(&mut g);
    assert!(!sock.exists());
    assert!(std::fs::read_dir(&g.sockets_dir).unwrap().next().is_none());
}

fn fail_closed_list(env: &mut Env) {
    let im = images(env);
    let s = with_commands(socket_settings(env), ListType::Allow, &[]);
    let g = env.gate(&s);
    let (id, sock) = holder(env, &g, &im.cli);
    assert_eq!(
        raw(&sock, &request("GET", "/_ping", "")).unwrap().status,
        200
    );
    for t in [
        "/v1.41/containers/json",
        "/v1.41/info",
        "/v1.41/nonexistent",
    ] {
        assert_eq!(
            raw(&sock, &request("GET", t, "")).unwrap().status,
            403,
            "{t}"
        );
    }
    let only_ps = with_commands(socket_settings(env), ListType::Allow, &["ps"]);
    let g2 = env.gate(&only_ps);
    let (id2, sock2) = holder(env, &g2, &im.cli);
    assert_ok(&env.docker_at(&sock2, &["ps"]));
    assert_refused(&env.docker_at(&sock2, &["images"]), "is blocked");
    assert_ok(&env.docker_at(&g.sock, &["rm", "-f", &id, &id2]));
}

fn pulled_on_demand(env: &mut Env) {
    let port = env.registry_port.unwrap();
    let name = format!("localhost:{port}/tools/pulled:1");
    env.import_busybox(&name, &[("pulled", b"1")]);
    assert_ok(&env.docker_direct(&["push", &name]));
    assert_ok(&env.docker_direct(&["rmi", &name]));
    let s = with_images(env.settings(), &[&name], false);
    let g = env.gate(&s);
    // The gate answers the create like the engine would (404 No such
    // image), so the CLI pulls and retries; the retry is decided.
    let out = env.docker_at(
        &g.sock,
        &[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/s",
            &name,
            "cat",
            "/pulled",
        ],
    );
    assert_eq!(assert_ok(&out), "1");
    assert!(
        stderr(&out).contains("Unable to find image"),
        "{}",
        stderr(&out)
    );
    let r = raw(
        &g.sock,
        &request(
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"nothing-here:1","HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}"#,
        ),
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.message(), "No such image: nothing-here:1");
}
