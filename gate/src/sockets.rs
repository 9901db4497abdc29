//! Per-container sockets: what a container allowed to mount the Docker
//! socket gets instead of dockerd's socket. Each is
//! `<sockets dir>/<random token>/docker.sock`, served by the gate with the
//! container-socket channel (command list, same create policy, no
//! settings). The directory is root-only; the container reaches the socket
//! only through its bind mount.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hull_policy::Channel;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use crate::state::{Gate, Peer};

/// File name of the socket inside its token directory.
pub const SOCKET_NAME: &str = "docker.sock";

/// Connections one container may hold open on its socket at once; more
/// wait in the kernel's backlog. Keeps one container from exhausting the
/// gate's memory or file descriptors.
pub const CONNECTIONS_PER_SOCKET: usize = 64;

struct Entry {
    container: Arc<Mutex<Option<String>>>,
    task: AbortHandle,
}

/// The per-container sockets the gate serves.
pub struct Sockets {
    dir: PathBuf,
    entries: Mutex<HashMap<String, Entry>>,
}

fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn valid_token(t: &str) -> bool {
    t.len() == 32
        && t.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Sockets {
    /// Creates the directory (mode 0711: the engine and nothing else needs
    /// to traverse it; token directories are 0700).
    pub fn new(dir: &Path) -> std::io::Result<Sockets> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
        Ok(Sockets {
            dir: dir.to_path_buf(),
            entries: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The socket path of a token.
    pub fn path_of(&self, token: &str) -> PathBuf {
        self.dir.join(token).join(SOCKET_NAME)
    }

    /// The token of a path `<dir>/<token>/docker.sock`, if it is one.
    pub fn token_of(&self, path: &str) -> Option<String> {
        let rest = Path::new(path).strip_prefix(&self.dir).ok()?;
        let mut parts = rest.iter();
        let token = parts.next()?.to_str()?;
        (parts.next()? == SOCKET_NAME && parts.next().is_none() && valid_token(token))
            .then(|| token.to_string())
    }

    /// Whether a path lies in the sockets directory at all.
    pub fn contains(&self, path: &str) -> bool {
        Path::new(path).starts_with(&self.dir)
    }

    /// Makes a socket (a new token, or re-creates `token` after a gate
    /// restart) and starts serving it. Returns the token and socket path.
    pub fn open(
        &self,
        gate: &Arc<Gate>,
        token: Option<&str>,
        container: Option<String>,
    ) -> std::io::Result<(String, PathBuf)> {
        let token = match token {
            Some(t) if valid_token(t) => t.to_string(),
            Some(_) => return Err(std::io::Error::other("invalid socket token")),
            None => new_token()?,
        };
        let tdir = self.dir.join(&token);
        let _ = std::fs::remove_dir_all(&tdir);
        std::fs::DirBuilder::new().mode(0o700).create(&tdir)?;
        let path = tdir.join(SOCKET_NAME);
        let listener = UnixListener::bind(&path)?;
        // The container's root is an unprivileged id in the VM: it needs
        // write permission on the socket inode it was given.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        let label = Arc::new(Mutex::new(container));
        let peer = Peer {
            channel: Channel::ContainerSocket,
            container: Some(label.clone()),
        };
        let task = tokio::spawn(serve(listener, gate.clone(), peer)).abort_handle();
        let old = self.lock().insert(
            token.clone(),
            Entry {
                container: label,
                task,
            },
        );
        if let Some(old) = old {
            old.task.abort();
        }
        Ok((token, path))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned lock only means a panic elsewhere; the map is intact.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records which container a socket belongs to.
    pub fn attach(&self, token: &str, container: &str) {
        if let Some(e) = self.lock().get(token) {
            if let Ok(mut c) = e.container.lock() {
                *c = Some(container.to_string());
            }
        }
    }

    /// Stops serving a socket and removes its directory.
    pub fn close(&self, token: &str) {
        if let Some(e) = self.lock().remove(token) {
            e.task.abort();
        }
        if valid_token(token) {
            let _ = std::fs::remove_dir_all(self.dir.join(token));
        }
    }

    /// Closes every socket of a container (on its `destroy`).
    pub fn close_container(&self, id: &str) -> usize {
        let tokens: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.container.lock().ok().and_then(|c| c.clone()).as_deref() == Some(id))
            .map(|(t, _)| t.clone())
            .collect();
        for t in &tokens {
            self.close(t);
        }
        tokens.len()
    }

    /// Tokens being served.
    pub fn served(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Tokens being served with their container (`None` while its create
    /// is in flight).
    pub fn attached(&self) -> Vec<(String, Option<String>)> {
        self.lock()
            .iter()
            .map(|(t, e)| (t.clone(), e.container.lock().ok().and_then(|c| c.clone())))
            .collect()
    }

    /// Token directories present on disk.
    pub fn on_disk(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes a stray entry of the sockets directory (not a token we
    /// serve).
    pub fn remove_stray(&self, name: &str) {
        if name.contains('/') || name == "." || name == ".." || name.is_empty() {
            return;
        }
        let p = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
}

async fn serve(listener: UnixListener, gate: Arc<Gate>, peer: Peer) {
    let limit = Arc::new(Semaphore::new(CONNECTIONS_PER_SOCKET));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("per-container socket accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let gate = gate.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::proxy::serve(stream, gate, peer).await {
                tracing::debug!("per-container connection ended: {e}");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sockets::new(&dir.path().join("sockets")).unwrap();
        let t = new_token().unwrap();
        assert!(valid_token(&t));
        let p = s.path_of(&t);
        assert_eq!(s.token_of(p.to_str().unwrap()), Some(t.clone()));
        let base = s.dir().to_str().unwrap().to_string();
        assert_eq!(s.token_of(&format!("{base}/{t}")), None);
        assert_eq!(s.token_of(&format!("{base}/{t}/other.sock")), None);
        assert_eq!(s.token_of(&format!("{base}/../{t}/docker.sock")), None);
        assert_eq!(s.token_of(&format!("{base}/XYZ/docker.sock")), None);
        assert!(s.contains(&format!("{base}/anything")));
        assert!(!s.contains("/etc"));
    }
}
