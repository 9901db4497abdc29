//! `Framed` streams on hostile input, both directions, over a transport
//! that hands out bytes in fuzzer-chosen pieces and sometimes is not ready:
//! - reading yields exactly the data frames' payloads up to the peer's
//!   half-close or close, fails where the decoder fails, never panics and
//!   never hands out more than was sent;
//! - whatever is written comes out as hello, data frames and one half-close
//!   that decode back to the same bytes.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use hull_channel::pump::Framed;
use hull_channel::{Decoder, Frame};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The transport: reads come from `data`, writes go to `written`; each
/// call takes the next size from `sizes` (0: not ready this time).
struct Peer {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<u8>,
    turn: usize,
    written: Vec<u8>,
}

impl Peer {
    fn step(&mut self) -> Option<usize> {
        let s = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        (s != 0).then_some(s as usize * 61)
    }
}

impl AsyncRead for Peer {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(n) = self.step() else {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let n = n.min(buf.remaining()).min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Peer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(n) = self.step() else {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let n = n.min(buf.len());
        self.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a reader must see: the data payloads up to the first half-close or
/// close, and whether the stream was well formed up to there.
fn expected(stream: &[u8]) -> (Vec<u8>, bool) {
    let mut d = Decoder::new();
    d.push(stream);
    let mut out = Vec::new();
    loop {
        match d.next() {
            Ok(Some(Frame::Data(p))) => out.extend_from_slice(&p),
            Ok(Some(_)) => return (out, true),
            Ok(None) => return (out, d.finish().is_ok()),
            Err(_) => return (out, false),
        }
    }
}

fn peer(data: Vec<u8>, sizes: &[u8]) -> Peer {
    // At least one ready step per round, or the loops below never end.
    let mut sizes = sizes.to_vec();
    sizes.push(1);
    Peer {
        data,
        pos: 0,
        sizes,
        turn: 0,
        written: Vec::new(),
    }
}

fuzz_target!(|input: &[u8]| {
    // [read buffer size] [n] [n transport sizes] [stream...]
    let Some((&rsize, rest)) = input.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = (n as usize % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let mut cx = Context::from_waker(Waker::noop());

    // Reading.
    let mut f = Framed::new(peer(stream.to_vec(), sizes));
    let mut rb = vec![0u8; rsize as usize * 7 + 1];
    let mut got = Vec::new();
    let read_ok = loop {
        let mut buf = ReadBuf::new(&mut rb);
        match Pin::new(&mut f).poll_read(&mut cx, &mut buf) {
            Poll::Pending => continue,
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                break false;
            }
            Poll::Ready(Ok(())) if buf.filled().is_empty() => break true,
            Poll::Ready(Ok(())) => got.extend_from_slice(buf.filled()),
        }
    };
    let (want, want_ok) = expected(stream);
    assert_eq!(read_ok, want_ok);
    if read_ok {
        assert_eq!(got, want);
    } else {
        assert!(want.starts_with(&got));
    }

    // Writing the same bytes, in pieces of the read buffer's size.
    let mut f = Framed::new(peer(Vec::new(), sizes));
    for piece in stream.chunks(rb.len()) {
        let mut off = 0;
        while off < piece.len() {
            match Pin::new(&mut f).poll_write(&mut cx, &piece[off..]) {
                Poll::Pending => continue,
                Poll::Ready(Ok(w)) => {
                    assert!(w > 0 && w <= piece.len() - off);
                    off += w;
                }
                Poll::Ready(Err(e)) => panic!("write: {e}"),
            }
        }
    }
    while let Poll::Pending = Pin::new(&mut f).poll_shutdown(&mut cx) {}
    let wire = &f.get_ref().written;
    let mut d = Decoder::new();
    d.push(wire);
    let mut back = Vec::new();
    let mut shut = 0;
    while let Some(fr) = d.next().expect("our own frames decode") {
        match fr {
            Frame::Data(p) => {
                assert_eq!(shut, 0, "data after the half-close");
                back.extend_from_slice(&p);
            }
            Frame::ShutWrite => shut += 1,
            Frame::Close => panic!("a half-close was sent as a close"),
        }
    }
    d.finish().expect("nothing left over");
    assert_eq!(shut, 1);
    assert_eq!(back, stream);
});
