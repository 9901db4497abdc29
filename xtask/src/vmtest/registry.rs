//! A registry on the host's loopback (Debian's docker-registry), reachable
//! from the VM at 10.0.2.2 through QEMU's user network: images pushed there
//! get real repository digests, which the socket-mount allow-list matches.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Registry {
    pub fn start(dir: &Path) -> Result<Registry> {
        // A free port, chosen by the kernel.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let store = dir.join("registry");
        std::fs::create_dir_all(&store)?;
        let cfg = dir.join("registry.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
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
        let mut r = Registry { child, port };
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

    /// The registry as the VM's engine sees it.
    pub fn address_in_vm(&self) -> String {
        format!("10.0.2.2:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
