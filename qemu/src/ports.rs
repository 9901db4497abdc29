//! Published ports on the host, as Docker Desktop does it: `docker run -p
//! 8080:80` makes `localhost:8080` on the host reach the container. The
//! daemon follows the engine's events, listens on 127.0.0.1:<port> for every
//! published TCP port, and carries each connection into the VM through the
//! gate's `POST /hull/v1/forward` (an upgraded, framed stream to the port
//! Docker publishes on the VM's loopback).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hull_channel::pump::{join, Framed};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::JoinHandle;

use crate::hvsock;

/// A framed connection to the gate, ready for one HTTP request.
async fn gate(uds: &Path) -> io::Result<Framed<UnixStream>> {
    let s = hvsock::connect_retry(uds, hull_channel::DOCKER_PORT, Duration::from_secs(30)).await?;
    Ok(Framed::new(s))
}

/// One HTTP/1.0 GET (the engine closes after the body): the body.
async fn get(uds: &Path, path: &str) -> io::Result<Vec<u8>> {
    let mut g = gate(uds).await?;
    g.write_all(format!("GET {path} HTTP/1.0\r\nHost: hull\r\n\r\n").as_bytes())
        .await?;
    g.flush().await?;
    let mut all = Vec::new();
    g.take(64 << 20).read_to_end(&mut all).await?;
    let Some(at) = all.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(io::Error::other("no HTTP response from the engine"));
    };
    if !all.starts_with(b"HTTP/1.0 200") && !all.starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other(
            String::from_utf8_lossy(&all[..at]).to_string(),
        ));
    }
    Ok(all[at + 4..].to_vec())
}

/// The TCP ports running containers publish (`docker ps` Ports).
pub fn published(containers: &serde_json::Value) -> BTreeSet<u16> {
    containers
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["Ports"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["Type"] == "tcp")
        .filter_map(|p| p["PublicPort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .collect()
}

struct Forwarder {
    uds: PathBuf,
    listeners: HashMap<u16, JoinHandle<()>>,
}

impl Forwarder {
    async fn reconcile(&mut self) -> io::Result<()> {
        let body = get(&self.uds, "/containers/json").await?;
        let list: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| io::Error::other(e.to_string()))?;
        let want = published(&list);
        self.listeners.retain(|port, task| {
            let keep = want.contains(port);
            if !keep {
                task.abort();
                tracing::info!(port, "no longer published: stopped forwarding");
            }
            keep
        });
        for port in want {
            if self.listeners.contains_key(&port) {
                continue;
            }
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => {
                    tracing::info!(port, "forwarding localhost:{port} into the VM");
                    let uds = self.uds.clone();
                    self.listeners
                        .insert(port, tokio::spawn(accept(l, port, uds)));
                }
                Err(e) => tracing::warn!(port, "cannot listen on localhost:{port}: {e}"),
            }
        }
        Ok(())
    }

    /// Follows the engine's container events; reconciles on each.
    async fn follow(&mut self) -> io::Result<()> {
        self.reconcile().await?;
        let mut g = gate(&self.uds).await?;
        let filters = "%7B%22type%22%3A%5B%22container%22%5D%7D";
        g.write_all(
            format!("GET /events?filters={filters} HTTP/1.0\r\nHost: hull\r\n\r\n").as_bytes(),
        )
        .await?;
        g.flush().await?;
        let mut lines = BufReader::new(g).lines();
        while let Some(line) = lines.next_line().await? {
            if line.contains("\"Action\":\"start\"")
                || line.contains("\"Action\":\"die\"")
                || line.contains("\"Action\":\"destroy\"")
            {
                self.reconcile().await?;
            }
        }
        Ok(())
    }
}

/// Runs until the task is dropped (the VM stops).
pub async fn run(uds: PathBuf) {
    let mut f = Forwarder {
        uds,
        listeners: HashMap::new(),
    };
    loop {
        if let Err(e) = f.follow().await {
            tracing::debug!("port forwarding: {e}; retrying");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn accept(l: TcpListener, port: u16, uds: PathBuf) {
    loop {
        match l.accept().await {
            Ok((tcp, _)) => {
                let uds = uds.clone();
                tokio::spawn(async move {
                    if let Err(e) = forward(tcp, port, &uds).await {
                        tracing::debug!(port, "forwarded connection: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(port, "accept: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn forward(mut tcp: TcpStream, port: u16, uds: &Path) -> io::Result<()> {
    let mut g = gate(uds).await?;
    g.write_all(
        format!(
            "POST /hull/v1/forward?port={port} HTTP/1.1\r\nHost: hull\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    g.flush().await?;
    // The response head, byte by byte: what follows belongs to the tunnel.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || g.read(&mut b).await? == 0 {
            return Err(io::Error::other("the gate did not answer the forward"));
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other(String::from_utf8_lossy(&head).to_string()));
    }
    join(&mut tcp, &mut g).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_tcp_ports_only() {
        let v = serde_json::json!([
            {"Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                       {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                       {"PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
                       {"PrivatePort": 9000, "Type": "tcp"}]},
            {"Ports": [{"PrivatePort": 5432, "PublicPort": 15432, "Type": "tcp"}]}
        ]);
        assert_eq!(
            published(&v).into_iter().collect::<Vec<_>>(),
            vec![8080, 15432]
        );
    }
}
