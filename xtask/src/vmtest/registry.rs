//! A registry on the host's loopback (Debian's docker-registry), reachable
//! from the VM as `host.docker.internal` (10.0.2.2 on QEMU's user network,
//! named in the VM's /etc/hosts): images pushed there get real repository
//! digests, which the socket-mount allow-list matches.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Registry {
    child: Child,
    pub port: u16,
    /// Where it keeps blobs and manifests on the host.
    pub store: std::path::PathBuf,
}

impl Registry {
    /// An open registry (no authentication), as the ECI suite's digests need.
    pub fn start(dir: &Path) -> Result<Registry> {
        Registry::start_with(dir, None)
    }

    /// A registry that wants HTTP basic authentication (`user`, `password`)
    /// from an htpasswd file, as `docker login` is used against.
    pub fn start_with(dir: &Path, login: Option<(&str, &str)>) -> Result<Registry> {
        // A free port, chosen by the kernel.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let store = dir.join(format!("registry-{port}"));
        std::fs::create_dir_all(&store)?;
        let auth = match login {
            None => String::new(),
            Some((user, password)) => {
                // distribution's htpasswd accepts bcrypt entries only.
                let hash = bcrypt::hash(password, 6).context("bcrypt of the test password")?;
                let file = dir.join(format!("registry-{port}.htpasswd"));
                std::fs::write(&file, format!("{user}:{hash}\n"))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: hull-test\n    path: {}\n",
                    file.display()
                )
            }
        };
        let cfg = dir.join(format!("registry-{port}.yml"));
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                store.display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (run `cargo xtask deps`)")?;
        let mut r = Registry { child, port, store };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(20) || r.child.try_wait()?.is_some() {
                bail!("docker-registry did not start on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        r.port = port;
        Ok(r)
    }

    /// The registry as the VM's engine sees it: by Docker Desktop's name
    /// for the host, so the gate resolves `imageList` digests through it.
    pub fn address_in_vm(&self) -> String {
        format!("host.docker.internal:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
