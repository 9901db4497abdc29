//! The control port: vsock 1024, for the host only: containers have no
//! AF_VSOCK, and a connection whose peer is not the host's CID (2) is
//! closed unanswered and logged. One JSON request per connection, in a
//! channel data frame; replies are data frames (one JSON object, or log
//! text for `logs`).

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use hull_channel::sync::{write_frame, write_hello, FrameReader};
use hull_channel::Frame;
use nix::sys::socket::{
    accept, bind, getpeername, listen, socket, AddressFamily, Backlog, SockFlag, SockType,
    VsockAddr,
};

use crate::logs;
use crate::supervisor::Event;

/// The requests (parsed in the library half of the crate, where the fuzz
/// targets reach the same code).
pub use hull_init::request::Request;

/// A connected vsock stream.
pub struct Conn(pub OwnedFd);

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(self.0.as_raw_fd(), buf).map_err(io::Error::from)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        nix::unistd::write(&self.0, buf).map_err(io::Error::from)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub fn listen_vsock(port: u32) -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, port))?;
    listen(&fd, Backlog::new(16).unwrap_or(Backlog::MAXCONN))?;
    Ok(fd)
}

/// The host's vsock CID (`VMADDR_CID_HOST`).
pub const HOST_CID: u32 = libc::VMADDR_CID_HOST;

/// Whether a control connection's peer may be served: only the host. The
/// port can stop services and read every log; containers cannot open
/// AF_VSOCK (seccomp), and this keeps anything else in the VM off it too.
pub fn peer_allowed(cid: u32) -> bool {
    cid == HOST_CID
}

/// The peer CID of a connected vsock stream.
fn peer_cid(conn: &Conn) -> io::Result<u32> {
    let addr: VsockAddr = getpeername(conn.0.as_raw_fd())?;
    Ok(addr.cid())
}

/// Accepts control connections forever, one thread each.
pub fn serve(tx: Sender<Event>) {
    let listener = match listen_vsock(hull_channel::CONTROL_PORT) {
        Ok(l) => l,
        Err(e) => {
            crate::error!("control port {}: {e}", hull_channel::CONTROL_PORT);
            return;
        }
    };
    crate::info!(
        "control port listening on vsock {}",
        hull_channel::CONTROL_PORT
    );
    let spawned = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || loop {
            match accept(listener.as_raw_fd()) {
                Ok(fd) => {
                    // SAFETY: accept returned a new descriptor that nothing else owns.
                    let conn = Conn(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) });
                    match peer_cid(&conn) {
                        Ok(cid) if peer_allowed(cid) => {}
                        Ok(cid) => {
                            crate::warn!(
                                "control connection from vsock CID {cid} closed: only the host (CID {HOST_CID}) may connect"
                            );
                            continue;
                        }
                        Err(e) => {
                            crate::warn!("control connection closed: its peer is unknown: {e}");
                            continue;
                        }
                    }
                    let tx = tx.clone();
                    let _ = std::thread::Builder::new()
                        .name("control-conn".into())
                        .spawn(move || {
                            if let Err(e) = handle(conn, tx) {
                                crate::debug!("control connection: {e}");
                            }
                            crate::status::thread_ended();
                        });
                }
                Err(e) => {
                    crate::warn!("control accept: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
    if let Err(e) = spawned {
        crate::error!("cannot start the control thread: {e}");
    }
}

fn reply_json(w: &mut Conn, v: &serde_json::Value) -> io::Result<()> {
    let text = serde_json::to_vec(v).unwrap_or_default();
    write_frame(w, &Frame::Data(text))?;
    write_frame(w, &Frame::Close)
}

fn handle(conn: Conn, tx: Sender<Event>) -> io::Result<()> {
    let fd2 = conn.0.try_clone()?;
    let mut w = Conn(fd2);
    write_hello(&mut w)?;
    let mut r = FrameReader::new(conn);
    let Some(Frame::Data(req)) = r.next_frame()? else {
        return Ok(());
    };
    let req: Request = match hull_init::request::parse(&req) {
        Ok(r) => r,
        Err(e) => {
            return reply_json(
                &mut w,
                &serde_json::json!({"error": format!("bad request: {e}")}),
            )
        }
    };
    match req {
        Request::Logs { name, follow } => send_logs(&mut w, r.get_mut(), &name, follow),
        Request::LoopbackListen { port, seconds } => {
            reply_json(&mut w, &loopback_listen(port, seconds))
        }
        // Measurements (bench image only) run here, not in the supervisor's loop.
        #[cfg(feature = "bench")]
        Request::EnginePing {
            count,
            fresh,
            create,
        } => reply_json(
            &mut w,
            &crate::bench::engine_ping(count, fresh, create.as_deref()),
        ),
        #[cfg(feature = "bench")]
        Request::Sink {
            port,
            bytes,
            framed,
        } => reply_json(&mut w, &crate::bench::sink(port, bytes, framed)),
        #[cfg(feature = "bench")]
        Request::Echo { port } => reply_json(&mut w, &crate::bench::echo(port)),
        #[cfg(feature = "bench")]
        Request::BenchRuntimes { iterations, trace } => {
            reply_json(&mut w, &crate::bench::runtimes(iterations, trace))
        }
        #[cfg(feature = "bench")]
        Request::BenchEngineRuntime { runtime } => {
            reply_json(&mut w, &crate::bench::engine_runtime(&runtime))
        }
        #[cfg(feature = "bench")]
        Request::BenchEngineFloor => reply_json(&mut w, &crate::bench::engine_floor(&tx)),
        other => {
            let (rtx, rrx) = mpsc::channel();
            if tx.send(Event::Control(other, rtx)).is_err() {
                return reply_json(&mut w, &serde_json::json!({"error": "init is stopping"}));
            }
            let v = rrx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| serde_json::json!({"error": "init did not answer"}));
            reply_json(&mut w, &v)
        }
    }
}

/// See [`Request::LoopbackListen`].
fn loopback_listen(port: u16, seconds: u64) -> serde_json::Value {
    if port < 1024 {
        return serde_json::json!({"error": format!("port {port}: only ports from 1024 up")});
    }
    let listener = match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => return serde_json::json!({"error": format!("127.0.0.1:{port}: {e}")}),
    };
    if let Err(e) = listener.set_nonblocking(true) {
        return serde_json::json!({"error": format!("127.0.0.1:{port}: {e}")});
    }
    let spawned = std::thread::Builder::new()
        .name("loopback-listen".into())
        .spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(seconds.clamp(1, 120));
            while std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        crate::info!("loopback test listener {port}: connection from {peer}");
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(b"hull-listener\n");
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        crate::warn!("loopback test listener {port}: {e}");
                        return;
                    }
                }
            }
        });
    match spawned {
        Ok(_) => serde_json::json!({"listening": port}),
        Err(e) => serde_json::json!({"error": format!("no thread for the listener: {e}")}),
    }
}

fn send_logs(w: &mut Conn, peer: &mut Conn, name: &str, follow: bool) -> io::Result<()> {
    if !logs::valid_name(name) {
        return reply_json(
            w,
            &serde_json::json!({"error": format!("bad log name {name:?}")}),
        );
    }
    let path = if name == "audit" {
        std::path::PathBuf::from(logs::DIR).join("audit.jsonl")
    } else {
        logs::path(name)
    };
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            return reply_json(
                w,
                &serde_json::json!({"error": format!("no log {name:?}: {e}")}),
            )
        }
    };
    // The first frame tells the client that log text follows.
    write_frame(w, &Frame::Data(b"{\"ok\":true}".to_vec()))?;
    let mut buf = vec![0u8; 32 * 1024];
    let mut pos = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n > 0 {
            pos += n as u64;
            write_frame(w, &Frame::Data(buf[..n].to_vec()))?;
            continue;
        }
        if !follow {
            break;
        }
        if peer_gone(peer) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
        // Rotation: the file we hold was renamed away; follow the new one.
        let len_now = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len_now < pos {
            if let Ok(nf) = std::fs::File::open(&path) {
                f = nf;
                pos = 0;
            }
        } else {
            f.seek(SeekFrom::Start(pos))?;
        }
    }
    write_frame(w, &Frame::Close)
}

/// Whether the host closed its end (the backend turns any close into EOF).
fn peer_gone(peer: &mut Conn) -> bool {
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&peer.0),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => {
            // Readable or hung up: a close frame or EOF; either way the
            // client is done with this request.
            let mut b = [0u8; 64];
            let _ = peer.read(&mut b);
            true
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_may_use_the_control_port() {
        assert!(peer_allowed(2));
        // VMADDR_CID_HYPERVISOR, VMADDR_CID_LOCAL, the guest's own CID,
        // other guests, VMADDR_CID_ANY.
        for cid in [0, 1, 3, 4, 42, u32::MAX] {
            assert!(!peer_allowed(cid), "{cid}");
        }
    }

    #[test]
    fn the_test_listener_op_parses() {
        let r: Request =
            serde_json::from_str(r#"{"op": "loopback-listen", "port": 28082, "seconds": 20}"#)
                .unwrap();
        assert!(matches!(
            r,
            Request::LoopbackListen {
                port: 28082,
                seconds: 20
            }
        ));
    }
}
