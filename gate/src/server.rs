//! The gate's life: settings, listeners, the first reconcile, readiness,
//! then serving until the process ends.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::listen;
use crate::state::{Config, Gate};

/// What to listen on, besides [`Config`].
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Config,
    /// vsock port for the host's framed channel.
    pub vsock_port: Option<u32>,
    /// A plain unix socket (no framing) for host-tier tests.
    pub listen_unix: Option<PathBuf>,
    /// Created once the gate serves.
    pub ready_file: Option<PathBuf>,
}

/// Longest the first reconcile may delay readiness.
const FIRST_RECONCILE: Duration = Duration::from_secs(10);
/// Longest the gate waits for dockerd's first answer before it reports
/// ready anyway (dockerd took up to 20 s under a loaded TCG host).
const ENGINE_START: Duration = Duration::from_secs(120);

/// Runs the gate (on the caller's runtime; the binary uses a
/// current-thread one).
pub async fn run(opts: Options) -> std::io::Result<()> {
    let gate = Gate::new(&opts.config)?;
    run_with(gate, opts).await
}

/// [`run`] with a gate already made (tests and benchmarks pass settings).
pub async fn run_with(gate: Arc<Gate>, opts: Options) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    if let Some(port) = opts.vsock_port {
        let l = listen::bind_vsock(port)
            .map_err(|e| std::io::Error::new(e.kind(), format!("vsock port {port}: {e}")))?;
        tracing::info!(port, "listening on vsock");
        tasks.push(tokio::spawn(listen::serve_vsock(l, gate.clone())));
    }
    if let Some(path) = &opts.listen_unix {
        let l = listen::bind_unix(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("unix socket {}: {e}", path.display()))
        })?;
        tracing::info!(path = %path.display(), "listening on unix socket");
        tasks.push(tokio::spawn(listen::serve_unix(l, gate.clone())));
    }
    if tasks.is_empty() {
        return Err(std::io::Error::other("nothing to listen on"));
    }
    // The gate starts beside dockerd, not after it (its own start-up then
    // overlaps dockerd's): readiness waits for dockerd's first answer and
    // the first reconcile, so containers dockerd restarted on its own are
    // vetted before the engine is reported ready.
    match gate.engine.wait_answering(ENGINE_START).await {
        Err(e) => tracing::warn!(
            "dockerd did not answer within {ENGINE_START:?} ({e}); serving anyway, the watcher reconciles once it does"
        ),
        Ok(()) => {
            match tokio::time::timeout(FIRST_RECONCILE, crate::watch::reconcile(&gate)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("first reconcile: {e}"),
                Err(_) => tracing::warn!("first reconcile took longer than {FIRST_RECONCILE:?}"),
            }
        }
    }
    tokio::spawn(crate::watch::run(gate.clone()));
    if let Some(ready) = &opts.ready_file {
        std::fs::write(ready, b"")
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", ready.display())))?;
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
