//! The background half of `hull up`: owns vhost-device-vsock and QEMU for the
//! VM's whole life, and carries every connection to `$HULL_HOME/docker.sock`
//! into the VM as one framed vsock stream. It exits when QEMU does.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hull_channel::pump::{join, Framed};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

use crate::home::Home;
use crate::hvsock;
use crate::machine::{Console, Machine};
use crate::shares::{self, ShareFs};
use crate::state::{self, ShareState, VmState};

/// How long one docker connection waits for the guest's gate (it may be
/// restarting, or the VM still booting).
const GATE_WAIT: Duration = Duration::from_secs(60);

pub struct Config {
    pub machine: Machine,
    /// System mode: the docker socket is the group `hull`'s too (0660);
    /// otherwise only its owner's (0600).
    pub group_socket: bool,
}

fn log_file(home: &Home) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.daemon_log())
        .with_context(|| format!("opening {}", home.daemon_log().display()))
}

/// Children die with the daemon: a VM must never outlive the process that
/// serves its socket and cleans up after it.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

fn remove_stale(paths: &[PathBuf]) {
    for p in paths {
        let _ = fs::remove_file(p);
    }
}

fn wait_for_path(p: &Path, child: &mut Child, what: &str, within: Duration) -> Result<()> {
    let start = Instant::now();
    while !p.exists() {
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited ({st}) before creating {}", p.display());
        }
        if start.elapsed() > within {
            bail!("{} did not appear within {within:?}", p.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn run(home: &Home, cfg: Config) -> Result<()> {
    let _lock = state::lock(home).map_err(anyhow::Error::msg)?;
    remove_stale(&[
        home.docker_sock(),
        home.vhost_sock(),
        home.vsock_uds(),
        home.qmp_sock(),
        home.qemu_pid(),
    ]);
    let log = log_file(home)?;

    let mut vhost_cmd = Command::new("vhost-device-vsock");
    vhost_cmd
        .arg("--vm")
        .arg(format!(
            "guest-cid=3,socket={},uds-path={}",
            home.vhost_sock().display(),
            home.vsock_uds().display()
        ))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    die_with_parent(&mut vhost_cmd);
    let mut vhost = vhost_cmd
        .spawn()
        .context("starting vhost-device-vsock (run `cargo xtask deps`)")?;
    wait_for_path(
        &home.vhost_sock(),
        &mut vhost,
        "vhost-device-vsock",
        Duration::from_secs(10),
    )?;
    let mut children = Children(vec![vhost]);
    let mut shares = Vec::new();
    for (i, d) in cfg.machine.shares.iter().enumerate() {
        if d.share.fs != ShareFs::Virtiofs {
            shares.push(ShareState::of(d, None));
            continue;
        }
        let sock = home.share_sock(i);
        let _ = fs::remove_file(&sock);
        let mut cmd = Command::new("virtiofsd");
        cmd.args(shares::virtiofsd_args(
            &d.share.path,
            &sock,
            shares::HostUser::current(),
        ))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .context("starting virtiofsd (run `cargo xtask deps`)")?;
        let what = format!("virtiofsd for {}", d.share.path.display());
        let waited = wait_for_path(&sock, &mut child, &what, Duration::from_secs(10));
        shares.push(ShareState::of(d, Some(child.id())));
        children.0.push(child);
        waited?;
    }

    let mut m = cfg.machine.clone();
    m.vsock = Some(home.vhost_sock());
    m.console = Console::File(home.console_log());
    m.qmp = Some(home.qmp_sock());
    m.pidfile = Some(home.qemu_pid());
    let qemu_bin = m.arch.qemu_binary();
    let mut qemu_cmd = Command::new(qemu_bin);
    qemu_cmd
        .args(m.argv())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    die_with_parent(&mut qemu_cmd);
    let qemu_started_ms = crate::phases::now_ms();
    let mut qemu = qemu_cmd
        .spawn()
        .with_context(|| format!("starting {qemu_bin}"))?;
    let st = VmState {
        daemon_pid: std::process::id(),
        qemu_pid: qemu.id(),
        vhost_pid: children.0[0].id(),
        shares,
        accel: m.accel.as_str().into(),
        machine: format!("{:?}", m.kind).to_lowercase(),
        cpus: m.cpus,
        memory_mib: m.memory_mib,
        image: m.root.parent().map(Path::to_path_buf).unwrap_or_default(),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        qemu_started_ms: Some(qemu_started_ms),
    };
    st.save(home)?;
    tracing::info!(qemu = qemu.id(), "VM started");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mode = if cfg.group_socket { 0o660 } else { 0o600 };
    let exit = rt.block_on(serve(home, &mut qemu, mode));
    drop(children);
    for i in 0..cfg.machine.shares.len() {
        let _ = fs::remove_file(home.share_sock(i));
    }
    remove_stale(&[
        home.docker_sock(),
        home.vhost_sock(),
        home.vsock_uds(),
        home.qmp_sock(),
        home.state_file(),
    ]);
    tracing::info!("VM stopped: {exit}");
    Ok(())
}

/// Serves docker.sock until QEMU exits; returns how it exited.
async fn serve(home: &Home, qemu: &mut Child, sock_mode: u32) -> String {
    let sock = home.docker_sock();
    let listener = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("binding {}: {e}", sock.display());
            let _ = qemu.kill();
            return format!("could not bind {}", sock.display());
        }
    };
    // The socket is the engine: only its owner (and in system mode the
    // group `hull`) may use it.
    let _ = fs::set_permissions(&sock, fs::Permissions::from_mode(sock_mode));
    let uds = home.vsock_uds();
    // Published container ports appear on the host's loopback.
    let ports = tokio::spawn(crate::ports::run(uds.clone()));
    let _stop_ports = AbortOnDrop(ports);
    let qemu_pid = qemu.id();
    let mut exited = tokio::task::spawn_blocking(move || {
        // SAFETY: waitpid on our own child; status is a valid out-pointer.
        let mut status = 0;
        let r = unsafe { libc::waitpid(qemu_pid as i32, &mut status, 0) };
        if r < 0 {
            "wait failed".to_string()
        } else if libc::WIFEXITED(status) {
            format!("qemu exited with status {}", libc::WEXITSTATUS(status))
        } else {
            format!("qemu killed by signal {}", libc::WTERMSIG(status))
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        tokio::select! {
            r = &mut exited => return r.unwrap_or_else(|e| e.to_string()),
            acc = listener.accept() => match acc {
                Ok((client, _)) => {
                    let uds = uds.clone();
                    tokio::spawn(async move { carry(client, uds).await });
                }
                Err(e) => tracing::warn!("accept on docker.sock: {e}"),
            },
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {
                // Asked to stop: a clean guest shutdown, then QEMU exits by
                // itself; if the guest cannot be asked, or does not finish,
                // QEMU is stopped (the data disk's journal covers that).
                tracing::info!("SIGTERM: asking the VM to shut down");
                let uds = home.vsock_uds();
                let asked = tokio::task::spawn_blocking(move || {
                    crate::control::request(&uds, &serde_json::json!({"op": "shutdown"}))
                }).await;
                let grace = if matches!(asked, Ok(Ok(_))) { 30 } else { 0 };
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(grace)).await;
                    // SAFETY: kill(2) on our own child's pid; ESRCH if it already exited.
                    unsafe { libc::kill(qemu_pid as i32, libc::SIGTERM) };
                });
                term = None;
            }
        }
    }
}

/// The VM's helper processes (vhost-device-vsock, virtiofsd): killed and
/// reaped when the daemon is done with them, also on an early error.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One docker connection: a framed vsock stream to the gate, both ways.
async fn carry(mut client: UnixStream, uds: PathBuf) {
    let vs = match hvsock::connect_retry(&uds, hull_channel::DOCKER_PORT, GATE_WAIT).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("gate unreachable: {e}");
            let body = r#"{"message":"the hull VM's engine is not reachable (see `hull status`)"}"#;
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(resp.as_bytes()).await;
            return;
        }
    };
    let mut framed = Framed::new(vs);
    if let Err(e) = join(&mut client, &mut framed).await {
        tracing::debug!("docker connection: {e}");
    }
}
