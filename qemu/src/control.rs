//! Client of hull-init's control port (vsock 1024).

use std::io::{self, Write};
use std::path::Path;

use hull_channel::sync::{write_frame, write_hello, FrameReader};
use hull_channel::Frame;
use serde_json::Value;

use crate::hvsock;

fn send(
    uds: &Path,
    req: &Value,
    timeout: Option<std::time::Duration>,
) -> io::Result<FrameReader<std::os::unix::net::UnixStream>> {
    let mut s = hvsock::connect_blocking(uds, hull_channel::CONTROL_PORT)?;
    // A request never waits forever on a VM that stopped answering.
    s.set_read_timeout(timeout)?;
    write_hello(&mut s)?;
    write_frame(
        &mut s,
        &Frame::Data(serde_json::to_vec(req).unwrap_or_default()),
    )?;
    Ok(FrameReader::new(s))
}

/// One request, one JSON reply.
pub fn request(uds: &Path, req: &Value) -> io::Result<Value> {
    request_within(uds, req, std::time::Duration::from_secs(60))
}

/// [`request`] for answers that take long to compute (benchmarks).
pub fn request_within(uds: &Path, req: &Value, within: std::time::Duration) -> io::Result<Value> {
    let mut r = send(uds, req, Some(within))?;
    match r.next_frame()? {
        Some(Frame::Data(d)) => {
            serde_json::from_slice(&d).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "init closed the control connection without answering",
        )),
    }
}

/// Streams a log from the VM to `out` (until it ends, or forever with `follow`).
pub fn logs(uds: &Path, name: &str, follow: bool, out: &mut dyn Write) -> io::Result<()> {
    let timeout = (!follow).then(|| std::time::Duration::from_secs(60));
    let mut r = send(
        uds,
        &serde_json::json!({"op": "logs", "name": name, "follow": follow}),
        timeout,
    )?;
    match r.next_frame()? {
        Some(Frame::Data(d)) => {
            let v: Value = serde_json::from_slice(&d).unwrap_or(Value::Null);
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return Err(io::Error::other(e.to_string()));
            }
        }
        _ => return Err(io::Error::other("no answer from init")),
    }
    while let Some(f) = r.next_frame()? {
        match f {
            Frame::Data(d) => {
                out.write_all(&d)?;
                out.flush()?;
            }
            Frame::ShutWrite | Frame::Close => break,
        }
    }
    Ok(())
}
