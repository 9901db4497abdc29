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

/// How long a connection opened ahead to the gate waits for a docker
/// client: well under the gate's header timeout (30 s), and short enough
/// that an idle VM soon has none (nothing is opened while no client
/// comes).
const SPARE_TTL: Duration = Duration::from_secs(10);

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
    let spare = Spare::new(uds.clone());
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
                    let spare = spare.clone();
                    tokio::spawn(async move { carry(client, spare).await });
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

/// One connection to the gate opened ahead of need: the docker CLI opens a
/// new connection per command, and the vsock CONNECT handshake through
/// vhost-device-vsock and the guest's accept is the largest part of a short
/// request's time. Each docker connection takes the spare (if it is still
/// fresh and open) and opens the next one in the background; while no
/// client comes, none is kept past [`SPARE_TTL`].
#[derive(Clone)]
struct Spare {
    uds: PathBuf,
    slot: std::sync::Arc<std::sync::Mutex<Option<(UnixStream, Instant)>>>,
}

impl Spare {
    fn new(uds: PathBuf) -> Spare {
        Spare {
            uds,
            slot: Default::default(),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(UnixStream, Instant)>> {
        // A poisoned lock only means a panic elsewhere; the slot is intact.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The spare if it is fresh and the gate has not closed it (the gate
    /// never speaks first, so anything readable means it is gone).
    fn take(&self) -> Option<UnixStream> {
        let (s, made) = self.slot().take()?;
        if made.elapsed() > SPARE_TTL {
            return None;
        }
        peek_idle(&s).then_some(s)
    }

    /// Opens the next spare in the background; it is dropped after
    /// [`SPARE_TTL`] unless a client took it.
    fn refill(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(s) = hvsock::connect(&me.uds, hull_channel::DOCKER_PORT).await else {
                return;
            };
            let made = Instant::now();
            // A client that raced us left its own spare: keep the newer.
            *me.slot() = Some((s, made));
            tokio::time::sleep(SPARE_TTL).await;
            let mut slot = me.slot();
            if matches!(&*slot, Some((_, t)) if *t == made) {
                *slot = None;
            }
        });
    }

    /// The spare, or a new connection (retried while the gate starts).
    async fn connect(&self) -> std::io::Result<UnixStream> {
        let got = self.take();
        self.refill();
        match got {
            Some(s) => Ok(s),
            None => hvsock::connect_retry(&self.uds, hull_channel::DOCKER_PORT, GATE_WAIT).await,
        }
    }
}

/// Whether nothing has arrived on `s` and the peer has not closed it: a
/// non-blocking peek answers from the socket itself, not from the
/// reactor's possibly older view of it.
fn peek_idle(s: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    // SAFETY: recv on a descriptor `s` owns, into a live one-byte buffer;
    // MSG_PEEK leaves any byte on the socket and MSG_DONTWAIT never blocks.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

/// One docker connection: a framed vsock stream to the gate, both ways.
async fn carry(mut client: UnixStream, spare: Spare) {
    let vs = match spare.connect().await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_spare_is_idle_until_its_peer_speaks_or_closes() {
        let (a, mut b) = UnixStream::pair().unwrap();
        assert!(peek_idle(&a));
        b.write_all(b"x").await.unwrap();
        assert!(!peek_idle(&a));
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!(!peek_idle(&a));
    }

    /// A stand-in for vhost-device-vsock's hybrid socket: answers every
    /// CONNECT with OK, then writes the connection's number and keeps it
    /// open; returns the count of connections.
    fn backend(uds: &Path) -> Arc<AtomicUsize> {
        let l = tokio::net::UnixListener::bind(uds).unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let count = n.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let i = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    while s.read(&mut b).await.unwrap_or(0) == 1 && b[0] != b'\n' {}
                    let _ = s.write_all(b"OK 1\n").await;
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest).await;
                    let _ = s.write_all(&[i as u8]).await;
                });
            }
        });
        n
    }

    async fn connections_become(n: &AtomicUsize, want: usize) {
        for _ in 0..200 {
            if n.load(Ordering::SeqCst) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "{} connections to the backend, not {want}",
            n.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn the_next_client_gets_the_connection_opened_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let n = backend(&uds);
        let spare = Spare::new(uds);
        // No spare yet: a connection of its own, and one opened ahead.
        let _first = spare.connect().await.unwrap();
        connections_become(&n, 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(spare.slot().is_some(), "no spare was kept");
        // The second client takes it, and the next one is opened ahead.
        let _second = spare.connect().await.unwrap();
        connections_become(&n, 3).await;
    }

    #[tokio::test]
    async fn a_spare_the_gate_closed_is_not_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let n = backend(&uds);
        let spare = Spare::new(uds);
        let (dead, peer) = UnixStream::pair().unwrap();
        drop(peer);
        *spare.slot() = Some((dead, Instant::now()));
        let mut s = spare.connect().await.unwrap();
        // A new connection was made for this client (and one ahead).
        connections_become(&n, 2).await;
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 1, "the client's stream is a live backend one");
    }
}
