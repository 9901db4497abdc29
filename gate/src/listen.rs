//! Where host requests come from: the framed vsock channel (the VM), or a
//! plain unix socket (host-tier tests, benchmarks).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hull_channel::pump::Framed;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio_vsock::{VsockAddr, VsockListener, VMADDR_CID_ANY};

use crate::proxy;
use crate::state::{Gate, Peer};

/// Host connections served at once; more wait in the kernel's backlog.
/// Bounds memory (each holds up to 64 KiB of header buffer) and file
/// descriptors; the docker CLI uses a handful.
pub const HOST_CONNECTIONS: usize = 512;

/// The host's vsock CID (`VMADDR_CID_HOST`): the only peer the vsock
/// listener serves.
pub const HOST_CID: u32 = 2;

/// Whether a vsock peer may talk to the gate: only the host. Containers
/// cannot open AF_VSOCK at all (seccomp, attacks.md #20); this keeps
/// anything else in the VM (a local or loopback CID) off the host channel,
/// which carries the host's full rights.
pub fn vsock_peer_allowed(cid: u32) -> bool {
    cid == HOST_CID
}

pub fn bind_vsock(port: u32) -> std::io::Result<VsockListener> {
    VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, port))
}

/// Binds a unix socket (mode 0600), replacing a stale one.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

pub async fn serve_vsock(listener: VsockListener, gate: Arc<Gate>) {
    let limit = Arc::new(Semaphore::new(HOST_CONNECTIONS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("vsock accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !vsock_peer_allowed(peer.cid()) {
            tracing::warn!(
                cid = peer.cid(),
                port = peer.port(),
                "vsock connection from CID {} closed: only the host (CID {HOST_CID}) may connect",
                peer.cid()
            );
            drop(stream);
            continue;
        }
        let gate = gate.clone();
        tokio::spawn(async move {
            let io = Framed::new(stream);
            if let Err(e) = proxy::serve(io, gate, Peer::host()).await {
                tracing::debug!(cid = peer.cid(), "connection ended: {e}");
            }
            drop(permit);
        });
    }
}

pub async fn serve_unix(listener: UnixListener, gate: Arc<Gate>) {
    let limit = Arc::new(Semaphore::new(HOST_CONNECTIONS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("unix accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            if let Err(e) = proxy::serve(stream, gate, Peer::host()).await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_cid_is_served() {
        assert!(vsock_peer_allowed(2));
        // VMADDR_CID_HYPERVISOR, VMADDR_CID_LOCAL, the guest's own CID,
        // other guests, VMADDR_CID_ANY.
        for cid in [0, 1, 3, 4, 42, u32::MAX] {
            assert!(!vsock_peer_allowed(cid), "{cid}");
        }
    }
}
