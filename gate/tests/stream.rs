//! The proxy over a framed transport that drops half-close (as the VM's vsock
//! backend does), against a fake dockerd on a unix socket.

use hull_channel::pump::Framed;
use hull_gate::proxy::serve;
use hull_gate::{Config, Gate, Peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

/// A fake engine: answers every request with a chunked body of `n` bytes.
async fn fake_engine(listener: UnixListener, n: usize) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut req = vec![0u8; 4096];
            let _ = s.read(&mut req).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let chunk = vec![b'x'; 7000];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                let _ = s.write_all(format!("{k:x}\r\n").as_bytes()).await;
                let _ = s.write_all(&chunk[..k]).await;
                let _ = s.write_all(b"\r\n").await;
                left -= k;
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_chunked_response_crosses_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let n = 3_000_000;
    tokio::spawn(fake_engine(listener, n));
    let (host_end, guest_end) = tokio::io::duplex(64 * 1024);
    let cfg = Config {
        docker_sock: sock.clone(),
        settings: dir.path().join("settings.json"),
        sockets_dir: dir.path().join("sockets"),
        audit_log: dir.path().join("audit.jsonl"),
        ..Config::default()
    };
    let gate = Gate::with_settings(&cfg, hull_policy::Effective::default()).unwrap();
    tokio::spawn(async move { serve(Framed::new(guest_end), gate, Peer::host()).await });
    let mut client = Framed::new(host_end);
    client
        .write_all(b"GET /v1.45/containers/x/archive?path=/f HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        client.read_to_end(&mut got),
    )
    .await
    .expect("the response stalled")
    .unwrap();
    let text = String::from_utf8_lossy(&got[..200.min(got.len())]).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of headers")
        + 4;
    // Chunk-size lines are hex digits, so every 'x' after the headers is body.
    let body_bytes = got[head_end..].iter().filter(|b| **b == b'x').count();
    assert_eq!(body_bytes, n);
}
