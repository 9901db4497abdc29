//! The host end of vsock: vhost-device-vsock's "hybrid vsock" unix socket.
//! A connection writes `CONNECT <port>\n` and gets `OK <host-port>\n` once the
//! guest accepted. Before the guest listens the backend just closes, so
//! callers retry with back-off while the VM boots.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long the backend may take to answer a CONNECT.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// `OK <u32>` and its newline fit; a longer answer is not the backend's.
const ANSWER_MAX: usize = 64;

/// The CONNECT handshake on a fresh connection to the backend: `Ok` once
/// the guest accepted; the stream then carries the guest's bytes.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, port: u32) -> io::Result<()> {
    s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
    // Read the reply byte by byte: anything after the newline belongs to the guest.
    let mut line = Vec::with_capacity(32);
    let read = async {
        let mut b = [0u8; 1];
        while line.len() < ANSWER_MAX {
            if s.read(&mut b).await? == 0 || b[0] == b'\n' {
                break;
            }
            line.push(b[0]);
        }
        Ok::<_, io::Error>(())
    };
    tokio::time::timeout(ANSWER_WITHIN, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to CONNECT"))??;
    if line.starts_with(b"OK ") {
        Ok(())
    } else if line.is_empty() {
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("nothing listens on guest vsock port {port} yet"),
        ))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("backend answered {:?}", String::from_utf8_lossy(&line)),
        ))
    }
}

/// One attempt: connected and acknowledged, or an error.
pub async fn connect(uds: &Path, port: u32) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(uds).await?;
    handshake(&mut s, port).await?;
    Ok(s)
}

/// Retries [`connect`] with back-off until `deadline`.
pub async fn connect_retry(uds: &Path, port: u32, within: Duration) -> io::Result<UnixStream> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        match connect(uds, port).await {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() + delay > within => return Err(e),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// [`connect`] for synchronous callers (the control client), on a private
/// current-thread runtime; the stream is handed back in blocking mode.
/// Not for use on a runtime's own threads (`spawn_blocking` is fine).
pub fn connect_blocking(uds: &Path, port: u32) -> io::Result<std::os::unix::net::UnixStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let s = rt.block_on(connect(uds, port))?.into_std()?;
    s.set_nonblocking(false)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backend's end of a socketpair: reads the request line, then
    /// writes `answer`.
    async fn backend(answer: &'static [u8]) -> (UnixStream, tokio::task::JoinHandle<Vec<u8>>) {
        let (host, mut be) = UnixStream::pair().unwrap();
        let task = tokio::spawn(async move {
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while !req.ends_with(b"\n") && be.read(&mut b).await.unwrap_or(0) == 1 {
                req.push(b[0]);
            }
            let _ = be.write_all(answer).await;
            let _ = be.shutdown().await;
            req
        });
        (host, task)
    }

    #[tokio::test]
    async fn ok_leaves_the_guests_bytes_on_the_stream() {
        let (mut s, be) = backend(b"OK 1073741824\nhello from the guest").await;
        handshake(&mut s, 2375).await.unwrap();
        assert_eq!(be.await.unwrap(), b"CONNECT 2375\n");
        let mut rest = String::new();
        s.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "hello from the guest");
    }

    #[tokio::test]
    async fn a_close_means_nothing_listens_yet() {
        let (mut s, _be) = backend(b"").await;
        let e = handshake(&mut s, 1024).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(
            e.to_string(),
            "nothing listens on guest vsock port 1024 yet"
        );
    }

    #[tokio::test]
    async fn another_answer_is_quoted() {
        let (mut s, _be) = backend(b"ERR no such port\n").await;
        let e = handshake(&mut s, 7).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), r#"backend answered "ERR no such port""#);
    }

    #[tokio::test]
    async fn an_endless_answer_stops_at_its_bound() {
        let (mut s, _be) = backend(&[b'x'; 4096]).await;
        let e = handshake(&mut s, 7).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("backend answered {:?}", "x".repeat(64))
        );
    }

    #[test]
    fn the_blocking_connect_hands_back_a_blocking_stream() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vsock.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let srv = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 13];
            c.read_exact(&mut req).unwrap();
            c.write_all(b"OK 5\n").unwrap();
            // Late, so a non-blocking stream would fail its read first.
            std::thread::sleep(Duration::from_millis(200));
            c.write_all(b"pong").unwrap();
            req
        });
        let mut s = connect_blocking(&path, 1024).unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        assert_eq!(&srv.join().unwrap(), b"CONNECT 1024\n");
    }

    #[test]
    fn the_blocking_connect_keeps_the_async_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vsock.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // The backend reads the request, then closes: the guest does not listen.
        let srv = std::thread::spawn(move || {
            use std::io::Read;
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 13];
            c.read_exact(&mut req).unwrap();
        });
        let e = connect_blocking(&path, 1024).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nothing listens on guest vsock port 1024 yet"
        );
        srv.join().unwrap();
    }
}
