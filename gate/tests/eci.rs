//! ECI behaviours §3, §6, §7 and pre-existing containers (attack 25),
//! through the real docker CLI and raw HTTP, against a private dockerd
//! behind hull-gate (host tier: needs root and docker.io, else it fails
//! naming what is missing).

mod common;

use common::*;

#[test]
fn eci_host_tier() {
    let mut env = Env::start("eci", false);
    scenarios(
        &mut env,
        &[
            ("namespaces (§3)", namespaces),
            ("runtime (§6)", runtime),
            ("security options and devices", security_options),
            ("bind mounts (§7)", bind_mounts),
            ("volumes binding VM paths", volumes),
            (
                "engine socket denied by default (§8)",
                socket_default_denied,
            ),
            ("build policy (§6)", build),
            ("raw HTTP on the host channel", raw_http),
            ("refused everywhere", refused_routes),
            ("hull API on the host channel", hull_api),
            ("pre-existing containers (attack 25)", pre_existing),
            ("audit log", audit_log),
        ],
    );
}

fn gate(env: &mut Env) -> GateProc {
    let s = env.settings();
    env.gate(&s)
}

fn namespaces(env: &mut Env) {
    let g = gate(env);
    let d = |args: &[&str]| env.docker_at(&g.sock, args);
    for (flag, ns) in [
        ("--pid=host", "[pid]"),
        ("--ipc=host", "[ipc]"),
        ("--uts=host", "[uts]"),
        ("--cgroupns=host", "[cgroup]"),
    ] {
        assert_refused(
            &d(&["run", "--rm", flag, "busybox", "true"]),
            &format!("hull containers can't share namespaces {ns} with the host (because they use the linux user-namespace for isolation)"),
        );
    }
    assert_refused(
        &d(&["run", "--rm", "--network=host", "busybox", "true"]),
        "hull containers can't share a network namespace with the host",
    );
    assert_refused(
        &d(&["create", "--net", "host", "busybox"]),
        "can't share a network namespace",
    );
    // --userns=host is ignored: the container runs, without it.
    let id = assert_ok(&d(&["create", "--userns=host", "busybox", "true"]));
    let mode = assert_ok(&d(&[
        "inspect",
        "--format",
        "{{.HostConfig.UsernsMode}}",
        id.trim(),
    ]));
    assert_eq!(mode.trim(), "");
    assert_ok(&d(&["rm", id.trim()]));
}

fn runtime(env: &mut Env) {
    let g = gate(env);
    let d = |args: &[&str]| env.docker_at(&g.sock, args);
    let id = assert_ok(&d(&[
        "run",
        "-d",
        "--runtime=runc",
        "busybox",
        "sleep",
        "30",
    ]));
    let rt = assert_ok(&d(&[
        "inspect",
        "--format",
        "{{.HostConfig.Runtime}}",
        id.trim(),
    ]));
    assert_eq!(rt.trim(), "hull");
    assert_ok(&d(&["rm", "-f", id.trim()]));
    // Streams and half-close still work (attach is hijacked).
    let out = env.docker_at_stdin(
        &g.sock,
        &["run", "--rm", "-i", "busybox", "cat"],
        Some(b"through the gate\n"),
    );
    assert_eq!(assert_ok(&out), "through the gate\n");
    // exec (hijacked) with stdin.
    let id = assert_ok(&d(&["run", "-d", "busybox", "sleep", "30"]));
    let out = env.docker_at_stdin(
        &g.sock,
        &["exec", "-i", id.trim(), "cat"],
        Some(b"exec stdin\n"),
    );
    assert_eq!(assert_ok(&out), "exec stdin\n");
    assert_ok(&d(&["rm", "-f", id.trim()]));
}

fn security_options(env: &mut Env) {
    let g = gate(env);
    let d = |args: &[&str]| env.docker_at(&g.sock, args);
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "true",
        ]),
        "seccomp can't be disabled",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--security-opt",
            "systempaths=unconfined",
            "busybox",
            "true",
        ]),
        "systempaths=unconfined",
    );
    assert_refused(
        &d(&["run", "--rm", "--device", "/dev/sda", "busybox", "true"]),
        "is a VM device",
    );
    assert_refused(
        &d(&["run", "--rm", "--device", "/dev/mem", "busybox", "true"]),
        "is a VM device",
    );
    // Allowed: privileged (confined by the user namespace in the VM) and
    // AppArmor options (no AppArmor in the VM kernel).
    let id = assert_ok(&d(&[
        "create",
        "--privileged",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "apparmor=unconfined",
        "busybox",
        "true",
    ]));
    assert_ok(&d(&["rm", id.trim()]));
}

fn bind_mounts(env: &mut Env) {
    let g = gate(env);
    let share = env.share.clone();
    let s = share.to_str().unwrap();
    std::fs::write(share.join("hello.txt"), b"shared\n").unwrap();
    let _ = std::os::unix::fs::symlink("/etc", share.join("etc-link"));
    let _ = std::os::unix::fs::symlink("../../../../../../../", share.join("up"));
    let d = |args: &[&str]| env.docker_at(&g.sock, args);

    // Shared paths mount normally.
    let out = assert_ok(&d(&[
        "run",
        "--rm",
        "-v",
        &format!("{s}:/x:ro"),
        "busybox",
        "cat",
        "/x/hello.txt",
    ]));
    assert_eq!(out, "shared\n");
    let out = assert_ok(&d(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={s},dst=/x"),
        "busybox",
        "cat",
        "/x/hello.txt",
    ]));
    assert_eq!(out, "shared\n");
    // A missing path under a root: created by the engine, allowed.
    assert_ok(&d(&[
        "run",
        "--rm",
        "-v",
        &format!("{s}/new/dir:/x"),
        "busybox",
        "true",
    ]));
    assert!(share.join("new/dir").is_dir());

    let restricted =
        |p: &str| format!("can't mount {p} because it's configured as a restricted host mount");
    for p in ["/", "/etc", "/var/lib/docker", "/run/hull/settings.json"] {
        assert_refused(
            &d(&["run", "--rm", "-v", &format!("{p}:/x"), "busybox", "true"]),
            &restricted(p),
        );
    }
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            "/etc/docker/daemon.json:/mnt/daemon.json",
            "busybox",
            "true",
        ]),
        &restricted("/etc/docker/daemon.json"),
    );
    // The engine's own data and the gate's settings file.
    let data = env.data_root.to_str().unwrap().to_string();
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{data}:/x"),
            "busybox",
            "true",
        ]),
        // A temporary directory here (the VM's /var/lib/docker there): a
        // path in no share and outside the VM's system directories gets
        // Docker Desktop's answer.
        "is not shared from the host and is not known to Docker",
    );
    let settings = g.settings.to_str().unwrap().to_string();
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{settings}:/x"),
            "busybox",
            "true",
        ]),
        &format!("mounts denied: the path {settings} is not shared from the host and is not known to Docker"),
    );
    // The volume store's metadata (holds every volume's options).
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{data}/volumes/metadata.db:/x"),
            "busybox",
            "true",
        ]),
        "is not shared from the host and is not known to Docker",
    );
    // Symlinks and `..` are resolved in the VM first.
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{s}/etc-link:/x"),
            "busybox",
            "true",
        ]),
        "(it resolves to /etc in the VM)",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{s}/etc-link/passwd:/x"),
            "busybox",
            "true",
        ]),
        "(it resolves to /etc/passwd in the VM)",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{s}/up:/x"),
            "busybox",
            "true",
        ]),
        "(it resolves to / in the VM)",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{s}/../../../etc:/x"),
            "busybox",
            "true",
        ]),
        "restricted host mount",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--mount",
            &format!("type=bind,src={s}/etc-link,dst=/x"),
            "busybox",
            "true",
        ]),
        "(it resolves to /etc in the VM)",
    );
    // A missing path that climbs out of the root.
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{s}/nope/../../x:/x"),
            "busybox",
            "true",
        ]),
        "is not shared from the host and is not known to Docker",
    );
    // The rewritten source is what the engine mounted.
    let id = assert_ok(&d(&[
        "create",
        "-v",
        &format!("{s}/./new/../new/dir:/x"),
        "busybox",
        "true",
    ]));
    let binds = assert_ok(&d(&[
        "inspect",
        "--format",
        "{{json .HostConfig.Binds}}",
        id.trim(),
    ]));
    assert_eq!(binds.trim(), format!("[\"{s}/new/dir:/x\"]"));
    assert_ok(&d(&["rm", id.trim()]));
}

fn volumes(env: &mut Env) {
    let g = gate(env);
    let s = env.share.to_str().unwrap().to_string();
    let d = |args: &[&str]| env.docker_at(&g.sock, args);
    assert_refused(
        &d(&[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            "device=/etc",
            "bad1",
        ]),
        "can't mount /etc because it's configured as a restricted host mount",
    );
    assert_refused(
        &d(&[
            "volume",
            "create",
            "-o",
            "type=ext4",
            "-o",
            "device=/dev/sda",
            "bad2",
        ]),
        "only tmpfs and bind volumes",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,dst=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/etc",
            "busybox",
            "true",
        ]),
        "can't mount /etc",
    );
    // Plain and bind volumes under a root are fine.
    assert_ok(&d(&["volume", "create", "plain1"]));
    assert_ok(&d(&[
        "run",
        "--rm",
        "-v",
        "plain1:/v",
        "busybox",
        "sh",
        "-c",
        "echo v > /v/f",
    ]));
    assert_ok(&d(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &format!("device={s}"),
        "sharevol",
    ]));
    let out = assert_ok(&d(&[
        "run",
        "--rm",
        "-v",
        "sharevol:/v",
        "busybox",
        "cat",
        "/v/hello.txt",
    ]));
    assert_eq!(out, "shared\n");
    // A volume made before the gate (straight on the engine) that binds a
    // VM path is refused when used.
    assert_ok(&env.docker_direct(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        "device=/etc",
        "preexisting",
    ]));
    assert_refused(
        &d(&["run", "--rm", "-v", "preexisting:/x", "busybox", "true"]),
        "can't mount /etc",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=preexisting,dst=/x",
            "busybox",
            "true",
        ]),
        "can't mount /etc",
    );
    assert_ok(&env.docker_direct(&["volume", "rm", "preexisting", "plain1", "sharevol"]));
}

fn socket_default_denied(env: &mut Env) {
    let g = gate(env);
    let engine = env.engine_sock.to_str().unwrap().to_string();
    let d = |args: &[&str]| env.docker_at(&g.sock, args);
    let msg = "enhanced container isolation: docker socket mount denied for container with image \"docker.io/library/busybox\"; image is not in the allowed list";
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "busybox",
            "true",
        ]),
        msg,
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            "/run/docker.sock:/s",
            "busybox",
            "true",
        ]),
        msg,
    );
    // Whatever path resolves to the engine's socket.
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{engine}:/s"),
            "busybox",
            "true",
        ]),
        msg,
    );
    let link = env.share.join("engine-link");
    let _ = std::os::unix::fs::symlink(&engine, &link);
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "-v",
            &format!("{}:/s", link.display()),
            "busybox",
            "true",
        ]),
        msg,
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--mount",
            "type=bind,src=/var/run/docker.sock,dst=/s",
            "busybox",
            "true",
        ]),
        msg,
    );
    // Never as a volume, whatever the image.
    assert_refused(
        &d(&[
            "volume",
            "create",
            "-o",
            "o=bind",
            "-o",
            "device=/var/run/docker.sock",
            "sockvol",
        ]),
        "restricted host mount",
    );
}

fn build(env: &mut Env) {
    let g = gate(env);
    let dir = env.path("buildctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN echo built > /built\n",
    )
    .unwrap();
    let ctx = dir.to_str().unwrap();
    let d = |args: &[&str]| env.docker_at(&g.sock, args);
    assert_refused(
        &d(&["build", "--network=host", "-t", "b1", ctx]),
        "docker build --network=host is not allowed",
    );
    let out = assert_ok(&d(&["build", "-q", "-t", "b1", ctx]));
    assert!(!out.trim().is_empty());
    // RUN steps ran with the hardened (default) runtime, through no gate:
    // the image exists and the build container was not stopped as
    // unprotected.
    assert_eq!(
        assert_ok(&d(&["run", "--rm", "b1", "cat", "/built"])),
        "built\n"
    );
    for q in ["networkmode=host", "NetworkMode=host", "networkmode=%68ost"] {
        let r = raw(&g.sock, &request("POST", &format!("/v1.41/build?{q}"), "")).unwrap();
        assert_eq!(r.status, 403, "{q}: {}", r.message());
    }
    let r = raw(
        &g.sock,
        &request("POST", "/build?entitlements=security.insecure", ""),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    assert!(r.message().contains("security.insecure"));
}

fn raw_http(env: &mut Env) {
    let g = gate(env);
    let bad_body = r#"{"Image":"busybox","HostConfig":{"Privileged":true,"Binds":["/:/host"]}}"#;
    for target in [
        "/containers/create",
        "/v1.41/containers/create",
        "/v1.12/containers/create",
        "/v1.99/containers/create",
        "/v1.41/%63ontainers/create",
        "/v1.41/containers/create/",
        "/v1.41/containers/create?name=x",
        // Decoded once, as the engine routes it.
        "/v1.41/containers%2Fcreate",
    ] {
        let r = raw(&g.sock, &request("POST", target, bad_body)).unwrap();
        assert_eq!(r.status, 403, "{target}: {}", r.message());
        assert!(
            r.message().contains("can't mount / because"),
            "{target}: {}",
            r.message()
        );
    }
    // Ambiguous encodings are refused outright.
    for target in [
        "//containers/create",
        "/v1.41//containers/create",
        "/V1.41/containers/create",
        "/v1.41/containers/%2e%2e/containers/create",
        "/v1.41/x/../containers/create",
        "/v1.41/containers/create%00",
        "/v1.41/%2563ontainers/create",
    ] {
        let r = raw(&g.sock, &request("POST", target, bad_body)).unwrap();
        assert_eq!(r.status, 400, "{target}: {} {}", r.status, r.message());
    }
    // The same with curl, as a user would try it.
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "--path-as-is",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--unix-socket",
            ])
            .arg(&g.sock)
            .args([
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                bad_body,
            ])
            .arg(format!("http://docker{path}"))
            .output();
        out.map(|o| stdout(&o)).unwrap_or_default()
    };
    if std::path::Path::new("/usr/bin/curl").exists() {
        for (path, want) in [
            ("/containers/create", "403"),
            ("/v1.41/containers/create", "403"),
            ("/v1.41/%63ontainers/create", "403"),
            ("//containers/create", "400"),
            ("/v1.41/containers/%2e%2e/containers/create", "400"),
            ("/v1.41/./containers/create", "400"),
        ] {
            assert_eq!(curl(path), want, "curl {path}");
        }
    }
    // Body tricks Go's decoder would honour.
    for body in [
        r#"{"Image":"busybox","HostConfig":{"binds":["/:/host"]}}"#,
        r#"{"Image":"busybox","HostConfig":{"Binds":[],"Binds":["/:/host"]}}"#,
        r#"{"Image":"busybox","Binds":["/:/host"]}"#,
        r#"{"Image":"busybox","HostConfig":{"PidMode":"host"}"#,
        "not json",
    ] {
        let r = raw(&g.sock, &request("POST", "/v1.41/containers/create", body)).unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.message());
    }
    let r = raw(
        &g.sock,
        &request(
            "POST",
            "/v1.41/containers/create",
            r#"{"Image":"busybox","HostConfig":{"PidMode":"host"}}"#,
        ),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    // Form bodies would be read as parameters by the engine.
    let r = raw(
        &g.sock,
        b"POST /v1.41/build HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 16\r\nConnection: close\r\n\r\nnetworkmode=host",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    // exec with Privileged into a hull container is allowed (confined by
    // the container's user namespace); the exec create is checked.
    let id = assert_ok(&env.docker_at(&g.sock, &["run", "-d", "busybox", "sleep", "30"]));
    let r = raw(
        &g.sock,
        &request(
            "POST",
            &format!("/v1.41/containers/{}/exec", id.trim()),
            r#"{"Cmd":["true"],"Privileged":true}"#,
        ),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.message());
    assert_ok(&env.docker_at(&g.sock, &["rm", "-f", id.trim()]));
}

fn refused_routes(env: &mut Env) {
    let g = gate(env);
    for (m, t) in [
        ("POST", "/v1.41/plugins/pull?remote=vieux/sshfs"),
        ("POST", "/v1.41/swarm/init"),
        ("POST", "/v1.41/services/create"),
        ("GET", "/debug/pprof/"),
    ] {
        let r = raw(&g.sock, &request(m, t, "")).unwrap();
        assert_eq!(r.status, 403, "{m} {t}: {}", r.message());
    }
    assert_refused(
        &env.docker_at(
            &g.sock,
            &[
                "plugin",
                "install",
                "--grant-all-permissions",
                "vieux/sshfs",
            ],
        ),
        "plugins",
    );
    assert_refused(&env.docker_at(&g.sock, &["swarm", "init"]), "swarm");
}

fn hull_api(env: &mut Env) {
    let mut g = gate(env);
    let r = raw(&g.sock, &request("GET", "/hull/v1/settings", "")).unwrap();
    assert_eq!(r.status, 200);
    let written = std::fs::read_to_string(&g.settings).unwrap();
    assert_eq!(String::from_utf8_lossy(&r.body), written);
    assert!(r
        .head
        .to_ascii_lowercase()
        .contains("x-hull-settings-digest"));
    for m in ["POST", "PUT", "DELETE"] {
        let r = raw(&g.sock, &request(m, "/hull/v1/settings", "{}")).unwrap();
        assert_eq!(r.status, 405, "{m}");
    }
    assert_eq!(
        raw(&g.sock, &request("GET", "/hull/v1/nothing", ""))
            .unwrap()
            .status,
        404
    );
    // No Docker endpoint touches the settings file.
    assert_eq!(std::fs::read_to_string(&g.settings).unwrap(), written);

    // Unreadable or broken settings: fail closed (no mount roots, load
    // refused), reported by the settings endpoint.
    std::fs::write(&g.settings, b"{\"format\":1").unwrap();
    env.restart_gate(&mut g);
    let r = raw(&g.sock, &request("GET", "/hull/v1/settings", "")).unwrap();
    assert!(r.json()["failClosed"].is_string(), "{:?}", r.json());
    let s = env.share.to_str().unwrap().to_string();
    assert_refused(
        &env.docker_at(
            &g.sock,
            &["run", "--rm", "-v", &format!("{s}:/x"), "busybox", "true"],
        ),
        "(filesharingDirectories: none",
    );
    assert_refused(
        &env.docker_at(&g.sock, &["load", "-i", "/dev/null"]),
        "blockDockerLoad",
    );
}

fn pre_existing(env: &mut Env) {
    let g = gate(env);
    // Made straight on the engine, as if isolation had been off.
    let out = env.docker_direct(&[
        "create",
        "--name",
        "legacy",
        "--runtime",
        "runc",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_ok(&out);
    let d = |args: &[&str]| env.docker_at(&g.sock, args);
    let msg = "hull: container legacy was not created under hull's isolation policy (runtime \"runc\"); remove it with `docker rm legacy` and create it again";
    assert_refused(&d(&["start", "legacy"]), msg);
    assert_refused(&d(&["restart", "legacy"]), "docker rm legacy");
    let id = stdout(&env.docker_direct(&["inspect", "--format", "{{.Id}}", "legacy"]))
        .trim()
        .to_string();
    let r = raw(
        &g.sock,
        &request("POST", &format!("/containers/{id}/start"), ""),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    let r = raw(
        &g.sock,
        &request(
            "POST",
            &format!("/v1.41/containers/{}/start", &id[..12]),
            "",
        ),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    // Joining or inheriting from it is refused too.
    assert_refused(
        &d(&["run", "--rm", "--volumes-from", "legacy", "busybox", "true"]),
        "docker rm legacy",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--network",
            "container:legacy",
            "busybox",
            "true",
        ]),
        "docker rm legacy",
    );
    assert_refused(
        &d(&[
            "run",
            "--rm",
            "--pid",
            "container:legacy",
            "busybox",
            "true",
        ]),
        "docker rm legacy",
    );
    // hull status lists it.
    let r = raw(&g.sock, &request("GET", "/hull/v1/unprotected", "")).unwrap();
    assert_eq!(r.status, 200);
    let list = r.json();
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "legacy"))
        .unwrap_or_else(|| panic!("legacy not listed: {list}"));
    assert_eq!(entry["runtime"], "runc");
    assert_eq!(entry["remedy"], "docker rm legacy");
    // Started behind the gate's back (as dockerd does for restart
    // policies): the gate stops it and clears the restart policy.
    assert_ok(&env.docker_direct(&["update", "--restart", "always", "legacy"]));
    assert_ok(&env.docker_direct(&["start", "legacy"]));
    eventually("legacy stopped by the gate", || {
        stdout(&env.docker_direct(&["inspect", "--format", "{{.State.Running}}", "legacy"])).trim()
            == "false"
    });
    let policy = stdout(&env.docker_direct(&[
        "inspect",
        "--format",
        "{{.HostConfig.RestartPolicy.Name}}",
        "legacy",
    ]));
    assert_eq!(policy.trim(), "no");
    g.wait_audit(|e| {
        e["verdict"] == "enforced"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("container legacy")
    });
    assert_ok(&d(&["rm", "legacy"]));
    let r = raw(&g.sock, &request("GET", "/hull/v1/unprotected", "")).unwrap();
    assert!(!r.json().to_string().contains("legacy"));
}

fn audit_log(env: &mut Env) {
    let g = gate(env);
    assert_refused(
        &env.docker_at(&g.sock, &["run", "--rm", "--pid=host", "busybox", "true"]),
        "[pid]",
    );
    let e = g.wait_audit(|e| e["verdict"] == "refused");
    assert_eq!(e["channel"], "host");
    assert_eq!(e["method"], "POST");
    assert_eq!(e["status"], 403);
    assert!(e["path"].as_str().unwrap().ends_with("/containers/create"));
    assert!(e["reason"]
        .as_str()
        .unwrap()
        .contains("can't share namespaces [pid]"));
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    assert!(e.get("container").is_none());
}
