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
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::task::JoinHandle;

use crate::hvsock;

/// A framed connection to the gate, ready for one HTTP request.
async fn gate(uds: &Path) -> io::Result<Framed<UnixStream>> {
    let s = hvsock::connect_retry(uds, hull_channel::DOCKER_PORT, Duration::from_secs(30)).await?;
    Ok(Framed::new(s))
}

/// One GET through the gate: the body of a 200 answer.
async fn get(uds: &Path, path: &str) -> io::Result<bytes::Bytes> {
    hull_http::get(gate(uds).await?, path, 64 << 20)
        .await
        .and_then(|r| r.ok(path))
        .map_err(io::Error::other)
}

/// What the port forwarder reads of an engine event (`GET /events`).
#[derive(Debug, serde::Deserialize)]
struct Event {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
}

impl Event {
    /// A container started or went away: the published ports may differ.
    fn may_change_ports(&self) -> bool {
        self.kind == "container" && matches!(self.action.as_str(), "start" | "die" | "destroy")
    }
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

    /// Follows the engine's container events; reconciles on each that
    /// may change the published ports.
    async fn follow(&mut self) -> io::Result<()> {
        self.reconcile().await?;
        let filters = "%7B%22type%22%3A%5B%22container%22%5D%7D";
        let mut events = hull_http::stream(
            gate(&self.uds).await?,
            &format!("/events?filters={filters}"),
        )
        .await
        .map_err(io::Error::other)?;
        while let Some(ev) = events.next::<Event>().await {
            match ev {
                Ok(ev) if ev.may_change_ports() => self.reconcile().await?,
                Ok(_) => {}
                // One bad line is skipped; a broken stream ends the loop.
                Err(e @ (hull_http::Error::Json { .. } | hull_http::Error::LineTooLong { .. })) => {
                    tracing::debug!("port forwarding: {e}")
                }
                Err(e) => return Err(io::Error::other(e)),
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

/// One connection to `localhost:port`, carried to the VM's `port` through
/// the gate's upgraded `POST /hull/v1/forward`.
async fn forward(mut tcp: TcpStream, port: u16, uds: &Path) -> io::Result<()> {
    let g = gate(uds).await?;
    let mut tunnel = hull_http::upgrade(g, &format!("/hull/v1/forward?port={port}"), "tcp")
        .await
        .map_err(io::Error::other)?;
    join(&mut tcp, &mut tunnel).await.map(|_| ())
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

    /// dockerd's own event lines (one JSON object each), served in chunks
    /// that split them, as the forwarder reads them.
    #[tokio::test]
    async fn engine_events_that_change_published_ports() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let lines = concat!(
            r#"{"status":"create","id":"c1","from":"nginx","Type":"container","Action":"create","Actor":{"ID":"c1","Attributes":{"image":"nginx","name":"web"}},"scope":"local","time":1,"timeNano":1}"#,
            "\n",
            r#"{"status":"start","id":"c1","from":"nginx","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"image":"nginx","name":"web"}},"scope":"local","time":1,"timeNano":1}"#,
            "\n",
            r#"{"status":"exec_start: sh -c start","id":"c1","Type":"container","Action":"exec_start: sh -c start","Actor":{"ID":"c1","Attributes":{"name":"start"}},"scope":"local","time":2,"timeNano":2}"#,
            "\n",
            r#"{"Type":"network","Action":"destroy","Actor":{"ID":"n1","Attributes":{"name":"net"}},"scope":"local","time":3,"timeNano":3}"#,
            "\n",
            r#"{"status":"die","id":"c1","Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"0"}},"scope":"local","time":4,"timeNano":4}"#,
            "\n",
            r#"{"status":"destroy","id":"c1","Type":"container","Action":"destroy","Actor":{"ID":"c1","Attributes":{}},"scope":"local","time":5,"timeNano":5}"#,
            "\n",
        );
        let (client, mut srv) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && srv.read(&mut b).await.unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = srv
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            for piece in lines.as_bytes().chunks(97) {
                let _ = srv
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await;
                let _ = srv.write_all(piece).await;
                let _ = srv.write_all(b"\r\n").await;
            }
            let _ = srv.write_all(b"0\r\n\r\n").await;
        });
        let mut events = hull_http::stream(client, "/events").await.unwrap();
        let mut changes = Vec::new();
        let mut seen = 0;
        while let Some(ev) = events.next::<Event>().await {
            let ev = ev.unwrap();
            seen += 1;
            if ev.may_change_ports() {
                changes.push(ev.action);
            }
        }
        assert_eq!(seen, 6);
        assert_eq!(changes, ["start", "die", "destroy"]);
    }
}
