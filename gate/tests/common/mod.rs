//! Host-tier test environment: a private dockerd (Debian's docker.io) with
//! its own data/exec roots and socket, optionally a private registry
//! (Debian's docker-registry) on loopback, and hull-gate processes with
//! settings of the test's choosing, listening on plain unix sockets.
//!
//! Needs root, dockerd, the docker CLI and busybox-static; without them
//! [`Env::start`] fails the test naming what is missing (a test that passes
//! without running proves nothing).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hull_policy::{CommandList, CommandName, Effective, ImagePattern, ListType};

fn which(name: &str) -> Option<PathBuf> {
    if name.starts_with('/') {
        return Path::new(name).exists().then(|| PathBuf::from(name));
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.exists())
    })
}

/// The docker CLI the tests drive: the first `docker` on PATH.
pub fn docker_cli() -> PathBuf {
    which("docker").expect("docker_cli() after missing_prerequisite()")
}

/// Why the host tier cannot run here, if it cannot: the missing piece and
/// the Debian package that provides it.
pub fn missing_prerequisite(registry: bool) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    let mut need = vec![
        ("dockerd", "docker.io"),
        ("containerd", "containerd"),
        ("runc", "runc"),
        ("/bin/busybox", "busybox-static"),
        ("docker", "docker.io (the docker CLI)"),
    ];
    if registry {
        need.push(("docker-registry", "docker-registry"));
    }
    for (n, package) in need {
        if which(n).is_none() {
            return Some(format!(
                "{n} not found on PATH (Debian package {package}); run `cargo xtask deps`"
            ));
        }
    }
    None
}

/// Kills a child process on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid; a stale pid is harmless here
        // because the child is not reaped until wait() below.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started gate.
pub struct GateProc {
    pub engine: PathBuf,
    pub sock: PathBuf,
    pub sockets_dir: PathBuf,
    pub audit: PathBuf,
    pub settings: PathBuf,
    pub proc: Option<Proc>,
}

impl GateProc {
    /// Starts gate number `n` of `dir` in front of `engine`.
    pub fn start(dir: &Path, n: usize, engine: &Path, settings: &Effective) -> GateProc {
        let settings_path = dir.join(format!("settings-{n}.json"));
        std::fs::write(&settings_path, settings.canonical_json()).unwrap();
        let mut g = GateProc {
            engine: engine.to_path_buf(),
            sock: dir.join(format!("gate-{n}.sock")),
            sockets_dir: dir.join(format!("sockets-{n}")),
            audit: dir.join(format!("audit-{n}.jsonl")),
            settings: settings_path,
            proc: None,
        };
        g.restart();
        g
    }

    /// (Re)starts the process with the same paths.
    pub fn restart(&mut self) {
        self.proc = None;
        let ready = self.sock.with_extension("ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.sock.with_extension("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hull-gate"))
            .arg("--docker-sock")
            .arg(&self.engine)
            .arg("--settings")
            .arg(&self.settings)
            .arg("--sockets-dir")
            .arg(&self.sockets_dir)
            .arg("--audit-log")
            .arg(&self.audit)
            .arg("--listen-unix")
            .arg(&self.sock)
            .arg("--ready-file")
            .arg(&ready)
            .env(
                "HULL_LOG",
                std::env::var("HULL_LOG").unwrap_or("hull_gate=debug,info".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting hull-gate");
        self.proc = Some(Proc {
            child,
            name: "hull-gate".into(),
        });
        wait_for("hull-gate", Duration::from_secs(20), || ready.exists());
    }

    /// Audit log lines as JSON.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until an audit event satisfies `f` (the writer is a thread).
    pub fn wait_audit(&self, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.audit_events().into_iter().find(|e| f(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no matching audit event in {:?}",
                self.audit_events()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        self.proc = None;
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub engine_sock: PathBuf,
    pub data_root: PathBuf,
    pub share: PathBuf,
    pub registry_port: Option<u16>,
    dockerd: Option<Proc>,
    registry: Option<Proc>,
    gates: usize,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Containers first, so dockerd stops quickly and leaves no mounts.
        if self.dockerd.is_some() {
            let ids = self.docker_direct(&["ps", "-aq"]);
            let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.docker_direct(&args);
            }
        }
        self.dockerd = None;
        self.registry = None;
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Env {
    /// Starts a private dockerd (and registry if asked); fails the test,
    /// naming what is missing, when this machine cannot.
    pub fn start(test: &str, registry: bool) -> Env {
        if let Some(why) = missing_prerequisite(registry) {
            panic!(
                "{test}: host-tier test needs root, docker.io, busybox-static{}: {why}",
                if registry { ", docker-registry" } else { "" }
            );
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("hgt-{test}-"))
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path().to_path_buf();
        let engine_sock = d.join("docker.sock");
        let data_root = d.join("data");
        let share = d.join("share");
        std::fs::create_dir_all(&share).unwrap();
        // The runtime named `hull` is runc here; the default runtime is
        // hull too, as in the VM (build containers use it).
        let daemon_json = serde_json::json!({
            "runtimes": {"hull": {"path": which("runc").unwrap()}},
            "default-runtime": "hull",
            "bridge": "none",
            "iptables": false,
            "ip6tables": false,
            "ip-masq": false,
        });
        std::fs::write(d.join("daemon.json"), daemon_json.to_string()).unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new(which("dockerd").unwrap())
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", engine_sock.display()))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let mut env = Env {
            dir,
            engine_sock,
            data_root,
            share,
            registry_port: None,
            dockerd: Some(Proc {
                child,
                name: "dockerd".into(),
            }),
            registry: None,
            gates: 0,
        };
        let sock = env.engine_sock.clone();
        wait_for("dockerd", Duration::from_secs(30), || {
            raw(
                &sock,
                b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
            )
            .map(|r| r.status == 200)
            .unwrap_or(false)
        });
        if registry {
            let port = free_port();
            let cfg = format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                d.join("registry").display()
            );
            std::fs::write(d.join("registry.yml"), cfg).unwrap();
            let log = std::fs::File::create(d.join("registry.log")).unwrap();
            let child = Command::new(which("docker-registry").unwrap())
                .arg("serve")
                .arg(d.join("registry.yml"))
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            env.registry = Some(Proc {
                child,
                name: "registry".into(),
            });
            wait_for("docker-registry", Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            env.registry_port = Some(port);
        }
        env.import_busybox("busybox:latest", &[]);
        env
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn docker_config(&self) -> PathBuf {
        let p = self.path("docker-config");
        let _ = std::fs::create_dir_all(&p);
        p
    }

    /// The docker CLI against `host` (a unix socket).
    pub fn docker_at(&self, host: &Path, args: &[&str]) -> Output {
        self.docker_at_stdin(host, args, None)
    }

    pub fn docker_at_stdin(&self, host: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(docker_cli());
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", host.display()))
            .env("DOCKER_CONFIG", self.docker_config())
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("docker CLI");
        if let Some(input) = stdin {
            let mut i = child.stdin.take().unwrap();
            i.write_all(input).unwrap();
        }
        child.wait_with_output().expect("docker CLI output")
    }

    /// The docker CLI straight at dockerd (for setting up what the gate
    /// would refuse: pre-existing containers and volumes).
    pub fn docker_direct(&self, args: &[&str]) -> Output {
        self.docker_at(&self.engine_sock.clone(), args)
    }

    /// Imports a busybox image with extra files `(path, content)`.
    pub fn import_busybox(&self, tag: &str, extra: &[(&str, &[u8])]) -> String {
        let root = self.path(&format!("rootfs-{}", tag.replace(['/', ':'], "_")));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
            }
        }
        for (p, content) in extra {
            let f = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, content).unwrap();
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let tar = root.with_extension("tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let out = self.docker_direct(&["import", tar.to_str().unwrap(), tag]);
        assert!(out.status.success(), "import: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// Starts a gate with `settings` on its own socket.
    pub fn gate(&mut self, settings: &Effective) -> GateProc {
        self.gates += 1;
        GateProc::start(self.dir.path(), self.gates, &self.engine_sock, settings)
    }

    /// (Re)starts a gate process with the same paths.
    pub fn restart_gate(&self, g: &mut GateProc) {
        g.restart();
    }

    /// Settings for tests: defaults, the test's share and the engine's
    /// volume data as the mount roots, nothing shared from a host.
    pub fn settings(&self) -> Effective {
        let mut e = Effective::default();
        e.shared_directories.clear();
        e.mount_roots.value = vec![
            self.share.to_str().unwrap().to_string(),
            format!("{}/volumes/*/_data", self.data_root.display()),
        ];
        e
    }
}

pub fn with_images(mut e: Effective, images: &[&str], derived: bool) -> Effective {
    e.socket_mount_images.value = images
        .iter()
        .map(|i| ImagePattern::parse(i).unwrap())
        .collect();
    e.allow_derived_images.value = derived;
    e
}

pub fn with_commands(mut e: Effective, kind: ListType, commands: &[&str]) -> Effective {
    e.command_list.value = CommandList {
        kind,
        commands: commands
            .iter()
            .map(|c| CommandName::parse(c).unwrap())
            .collect(),
    };
    e
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the CLI failed with `Error response from daemon: <message>`
/// containing `want`.
#[track_caller]
pub fn assert_refused(o: &Output, want: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a refusal containing {want:?}, but it succeeded: {}{}",
        stdout(o),
        err
    );
    assert!(
        err.contains("Error response from daemon") && err.contains(want),
        "expected {want:?} in: {err}"
    );
}

#[track_caller]
pub fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "docker failed: {}{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// An HTTP answer read off a raw connection.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Writes `request` as is and reads one answer (the request should carry
/// `Connection: close`; reading stops at EOF or after 20 s).
pub fn raw(sock: &Path, request: &[u8]) -> std::io::Result<RawReply> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request)?;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    parse_reply(&got)
}

pub fn parse_reply(got: &[u8]) -> std::io::Result<RawReply> {
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "no HTTP head in {:?}",
                String::from_utf8_lossy(got)
            ))
        })?;
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = got[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(RawReply { status, head, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if n == 0 || b.len() < nl + 2 + n {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[(nl + 4 + n).min(b.len())..];
    }
}

/// A request with a JSON body and `Connection: close`.
pub fn request(method: &str, target: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Waits until `f` holds.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(15), &mut f)
}

/// A named scenario sharing one environment.
pub type Scenario = (&'static str, fn(&mut Env));

/// Runs each scenario, reporting every failure rather than the first.
pub fn scenarios(env: &mut Env, list: &[Scenario]) {
    let mut failed = Vec::new();
    for (name, f) in list {
        eprintln!("--- {name}");
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(env))).is_err() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}

/// A fake engine: records every request and answers at once (`[]` for
/// container lists, `201 {"Id":...}` for creates, `200 {}` otherwise).
pub mod fake {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    /// The full id of the fake engine's container `pin-web`.
    pub const PIN_WEB_ID: &str = "5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5";
    const PIN_WEB: &str = r#"{"Id":"5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5eb5","Name":"/pin-web","HostConfig":{"Runtime":"hull"},"Mounts":[]}"#;

    /// What the fake engine received.
    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub target: String,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    pub type Log = Arc<Mutex<Vec<Seen>>>;

    pub async fn serve(listener: tokio::net::UnixListener, log: Log) {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let method = req.method().to_string();
                        let target = req.uri().to_string();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|c| c.to_bytes().to_vec())
                            .unwrap_or_default();
                        if let Ok(mut l) = log.lock() {
                            // Bounded: a benchmark sends many.
                            if l.len() < 100_000 {
                                l.push(Seen {
                                    method: method.clone(),
                                    target: target.clone(),
                                    headers,
                                    body,
                                });
                            }
                        }
                        let (status, text) = if target.starts_with("/containers/json") {
                            (200, "[]")
                        } else if target.ends_with("/containers/pin-web/json") {
                            // A hull container other requests join (tests/redteam.rs).
                            (200, PIN_WEB)
                        } else if target.ends_with("/containers/pin-missing/json") {
                            (404, r#"{"message":"No such container: pin-missing"}"#)
                        } else if target.starts_with("/images/") && method == "GET" {
                            (
                                200,
                                r#"{"Id":"sha256:fake","RepoTags":["busybox:latest"],"RepoDigests":[]}"#,
                            )
                        } else if target.contains("/containers/create") {
                            (201, r#"{"Id":"0123","Warnings":[]}"#)
                        } else {
                            (200, "{}")
                        };
                        let mut r = Response::new(Full::new(Bytes::from(text)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    }

    /// A gate running in-process on its own current-thread runtime (as in
    /// the VM), in front of a fake engine.
    pub struct Rig {
        pub dir: tempfile::TempDir,
        pub gate: std::path::PathBuf,
        pub sockets_dir: std::path::PathBuf,
        pub audit: std::path::PathBuf,
        pub log: Log,
    }

    impl Rig {
        pub fn start(
            settings: hull_policy::Effective,
            header_timeout: std::time::Duration,
            body_timeout: std::time::Duration,
        ) -> Rig {
            let dir = tempfile::Builder::new()
                .prefix("hgt-fake-")
                .tempdir_in("/tmp")
                .unwrap();
            let engine = dir.path().join("engine.sock");
            let gate = dir.path().join("gate.sock");
            let log: Log = Arc::new(Mutex::new(Vec::new()));
            let cfg = hull_gate::Config {
                docker_sock: engine.clone(),
                settings: dir.path().join("settings.json"),
                sockets_dir: dir.path().join("sockets"),
                audit_log: dir.path().join("audit.jsonl"),
                header_timeout,
                body_timeout,
                ..hull_gate::Config::default()
            };
            let ready = dir.path().join("ready");
            let opts = hull_gate::Options {
                config: cfg.clone(),
                vsock_port: None,
                listen_unix: Some(gate.clone()),
                ready_file: Some(ready.clone()),
            };
            let l = log.clone();
            let gate_cfg = cfg.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::UnixListener::bind(&engine).unwrap();
                    tokio::spawn(serve(listener, l));
                    let g = hull_gate::Gate::with_settings(&gate_cfg, settings).unwrap();
                    hull_gate::run_with(g, opts).await.unwrap();
                });
            });
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !ready.exists() {
                assert!(std::time::Instant::now() < deadline, "gate did not start");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // The gate's own start-up (its wait for the engine's first
            // `/_ping`, the first reconcile) is not a test's traffic.
            log.lock().unwrap().clear();
            Rig {
                sockets_dir: cfg.sockets_dir.clone(),
                audit: cfg.audit_log.clone(),
                dir,
                gate,
                log,
            }
        }

        /// Requests the engine saw, minus the gate's own housekeeping.
        pub fn seen(&self) -> Vec<Seen> {
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|s| {
                    !s.target.starts_with("/events") && !s.target.starts_with("/containers/json")
                })
                .cloned()
                .collect()
        }

        pub fn clear(&self) {
            self.log.lock().unwrap().clear();
        }
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            // The gate's thread lives on until the test process ends; let
            // its audit writer finish before the directory goes, or it
            // would create it again.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Starts a fake engine on its own thread.
    pub fn spawn(sock: &std::path::Path) -> Log {
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let sock = sock.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&sock).unwrap();
                let _ = tx.send(());
                serve(listener, l).await;
            });
        });
        let _ = rx.recv();
        log
    }
}
