//! What every connection of the gate shares: settings, the engine, the
//! audit log, the per-container sockets, and the limits that keep one
//! client from starving the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hull_policy::{Channel, Effective};
use tokio::sync::Semaphore;

use crate::audit::{Audit, Event, Verdict};
use crate::engine::Engine;
use crate::sockets::Sockets;

/// The runtime every container must use (registered in dockerd).
pub const HULL_RUNTIME: &str = "hull";

/// Paths that name the engine socket wherever they are used as a bind
/// source (besides anything whose inode is the engine socket's).
pub const ENGINE_SOCKET_PATHS: &[&str] = &[
    "/run/hull/docker.sock",
    "/var/run/docker.sock",
    "/run/docker.sock",
];

/// Bodies the gate reads whole (create requests) that may be buffered at
/// once; with the 4 MiB body limit this bounds that memory to 64 MiB.
pub const BUFFERED_BODIES: usize = 16;

/// How long a client may take to send a body the gate must read whole.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A client must finish sending a request's headers within this time
/// (also how long a keep-alive connection may sit idle).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where things are.
#[derive(Debug, Clone)]
pub struct Config {
    /// dockerd's socket.
    pub docker_sock: PathBuf,
    /// The settings blob.
    pub settings: PathBuf,
    /// Where per-container sockets are made (one private directory each).
    pub sockets_dir: PathBuf,
    /// The audit log (JSON lines).
    pub audit_log: PathBuf,
    /// Size at which the audit log rotates.
    pub audit_max_bytes: u64,
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`BODY_TIMEOUT`].
    pub body_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            docker_sock: "/run/hull/docker.sock".into(),
            settings: "/run/hull/settings.json".into(),
            sockets_dir: "/run/hull/sockets".into(),
            audit_log: "/run/hull/log/audit.jsonl".into(),
            audit_max_bytes: crate::audit::DEFAULT_MAX_BYTES,
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
        }
    }
}

/// Which door a connection came through, and for per-container sockets,
/// whose (the container id is filled in once the engine created it).
#[derive(Debug, Clone)]
pub struct Peer {
    pub channel: Channel,
    pub container: Option<Arc<Mutex<Option<String>>>>,
}

impl Peer {
    pub fn host() -> Peer {
        Peer {
            channel: Channel::Host,
            container: None,
        }
    }

    /// The container for the audit log (`pending` before its create
    /// returned).
    pub fn container_label(&self) -> Option<String> {
        self.container.as_ref().map(|c| {
            c.lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_else(|| "pending".to_string())
        })
    }

    pub fn channel_name(&self) -> &'static str {
        match self.channel {
            Channel::Host => "host",
            Channel::ContainerSocket => "container-socket",
        }
    }
}

/// A registry digest learnt through `GET /distribution/<ref>/json`, or the
/// fact that the registry could not be asked.
#[derive(Debug, Clone)]
pub struct CachedResolution {
    pub at: Instant,
    pub digest: Option<String>,
}

/// The gate.
pub struct Gate {
    pub settings: Effective,
    /// `settings.canonical_json()`, served on the host channel.
    pub settings_json: String,
    pub engine: Engine,
    pub audit: Audit,
    pub sockets: Sockets,
    pub body_permits: Semaphore,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub registry_cache: Mutex<HashMap<String, CachedResolution>>,
}

impl Gate {
    /// Reads the settings (fail-closed on error), prepares the sockets
    /// directory and starts the audit writer.
    pub fn new(cfg: &Config) -> std::io::Result<Arc<Gate>> {
        let settings = crate::settings::load(&cfg.settings);
        Gate::with_settings(cfg, settings)
    }

    /// [`Gate::new`] with settings given (tests, benchmarks).
    pub fn with_settings(cfg: &Config, settings: Effective) -> std::io::Result<Arc<Gate>> {
        if let Some(reason) = &settings.fail_closed {
            tracing::warn!("fail-closed settings in force: {reason}");
        }
        Ok(Arc::new(Gate {
            settings_json: settings.canonical_json(),
            settings,
            engine: Engine::new(&cfg.docker_sock),
            audit: Audit::start(cfg.audit_log.clone(), cfg.audit_max_bytes),
            sockets: Sockets::new(&cfg.sockets_dir)?,
            body_permits: Semaphore::new(BUFFERED_BODIES),
            header_timeout: cfg.header_timeout,
            body_timeout: cfg.body_timeout,
            registry_cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Whether a resolved VM path names the engine socket: one of
    /// [`ENGINE_SOCKET_PATHS`], the configured socket, or the same inode
    /// (looked up now: dockerd re-creates its socket when it restarts).
    /// Blocking (two `stat`s): call from `spawn_blocking`.
    pub fn is_engine_socket(&self, resolved: &str) -> bool {
        if ENGINE_SOCKET_PATHS.contains(&resolved)
            || resolved == self.engine.socket().to_string_lossy()
        {
            return true;
        }
        let engine = crate::paths::file_id(self.engine.socket());
        engine.is_some() && crate::paths::file_id(Path::new(resolved)) == engine
    }

    /// Appends an audit event for a request.
    pub fn audit_request(
        &self,
        peer: &Peer,
        method: &str,
        target: &str,
        verdict: Verdict,
        status: Option<u16>,
        reason: &str,
    ) {
        self.audit.record(&Event::now(
            peer.channel_name(),
            peer.container_label(),
            method,
            target,
            verdict,
            status,
            reason,
        ));
    }
}
