//! The host end of vsock: vhost-device-vsock's "hybrid vsock" unix socket.
//! A connection writes `CONNECT <port>\n` and gets `OK <host-port>\n` once the
//! guest accepted. Before the guest listens the backend just closes, so
//! callers retry with back-off while the VM boots.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// One attempt: connected and acknowledged, or an error.
pub async fn connect(uds: &Path, port: u32) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(uds).await?;
    s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
    // Read the reply byte by byte: anything after the newline belongs to the guest.
    let mut line = Vec::with_capacity(32);
    let mut r = BufReader::with_capacity(1, &mut s);
    tokio::time::timeout(Duration::from_secs(10), r.read_until(b'\n', &mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to CONNECT"))??;
    drop(r);
    if line.starts_with(b"OK ") {
        Ok(s)
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

/// Blocking variant for the control client.
pub fn connect_blocking(uds: &Path, port: u32) -> io::Result<std::os::unix::net::UnixStream> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(uds)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 64 {
        match s.read(&mut b)? {
            0 => break,
            _ if b[0] == b'\n' => break,
            _ => line.push(b[0]),
        }
    }
    s.set_read_timeout(None)?;
    if line.starts_with(b"OK ") {
        Ok(s)
    } else {
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("guest vsock port {port} is not answering"),
        ))
    }
}
