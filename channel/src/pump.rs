//! The async side: [`Framed`] turns a framed stream back into an ordinary
//! byte stream whose `shutdown()` is a half-close, so Docker's hijacked
//! connections (`docker run -i`, `attach`, `exec`) keep their stdin EOF
//! across a transport that cannot carry one.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::frame::{
    encode, encode_data, Decoder, Frame, Span, HELLO, MAX_PAYLOAD, TRANSPORT_WRITE_MAX,
};

/// A byte stream carried in frames over `S`.
///
/// Reading yields the peer's data and ends (returns 0) at the peer's
/// half-close, close, or end of stream. `poll_shutdown` sends a half-close
/// frame and leaves the transport open for reading.
pub struct Framed<S> {
    inner: S,
    dec: Decoder,
    /// Decoded payload not yet handed to the reader: a range of the
    /// decoder's buffer (valid until its next `push`, which only happens
    /// once this is empty).
    pending: std::ops::Range<usize>,
    read_done: bool,
    /// Encoded bytes not yet written to `inner` (starts with our hello).
    out: Vec<u8>,
    out_pos: usize,
    shut_sent: bool,
    rbuf: Box<[u8]>,
}

impl<S> Framed<S> {
    pub fn new(inner: S) -> Self {
        Framed {
            inner,
            dec: Decoder::new(),
            pending: 0..0,
            read_done: false,
            out: HELLO.to_vec(),
            out_pos: 0,
            shut_sent: false,
            rbuf: vec![0u8; MAX_PAYLOAD + 5].into_boxed_slice(),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn invalid(e: crate::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: AsyncWrite + Unpin> Framed<S> {
    /// Writes out everything encoded so far.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let end = self.out.len().min(self.out_pos + TRANSPORT_WRITE_MAX);
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Framed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.pending.is_empty() {
                let n = buf.remaining().min(this.pending.len());
                let start = this.pending.start;
                buf.put_slice(this.dec.payload(start..start + n));
                this.pending.start += n;
                return Poll::Ready(Ok(()));
            }
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            match this.dec.next_span().map_err(invalid)? {
                Some(Span::Data(r)) => {
                    this.pending = r;
                    continue;
                }
                Some(Span::ShutWrite) | Some(Span::Close) => {
                    this.read_done = true;
                    continue;
                }
                None => {}
            }
            let mut rb = ReadBuf::new(&mut this.rbuf);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            if got.is_empty() {
                this.read_done = true;
                this.dec.finish().map_err(invalid)?;
                continue;
            }
            this.dec.push(got);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.shut_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after half-close",
            )));
        }
        // One frame in flight at most: bounded memory, natural back-pressure.
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_PAYLOAD);
        encode_data(&buf[..n], &mut this.out);
        // Start sending now; whatever is left goes out on the next call or flush.
        let _ = this.poll_drain(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.shut_sent {
            ready!(this.poll_drain(cx))?;
            encode(&Frame::ShutWrite, &mut this.out);
            this.shut_sent = true;
        }
        ready!(this.poll_drain(cx))?;
        // The transport stays open: the peer may still be sending to us.
        Pin::new(&mut this.inner).poll_flush(cx)
    }
}

/// Copies both ways until both directions have ended, passing each side's
/// end of stream on as the other side's half-close. Returns bytes copied
/// (a to b, b to a).
pub async fn join<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional(a, b).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The transport drops half-close (as vhost-device-vsock does): model it
    /// with a duplex pipe whose ends we never shut down.
    #[tokio::test]
    async fn half_close_survives_the_transport() {
        let (t1, t2) = tokio::io::duplex(1024);
        let mut host = Framed::new(t1);
        let mut guest = Framed::new(t2);
        host.write_all(b"hello").await.unwrap();
        host.shutdown().await.unwrap();
        let mut got = Vec::new();
        guest.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        // The other direction still works after the half-close.
        guest.write_all(b"world").await.unwrap();
        guest.shutdown().await.unwrap();
        let mut back = Vec::new();
        host.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"world");
    }

    /// `echo hello | docker run -i cat` end to end: a client that half-closes,
    /// an echo server behind the guest end, through two pumps.
    #[tokio::test]
    async fn stdin_eof_reaches_the_server_and_the_reply_comes_back() {
        let (client, host_raw) = tokio::io::duplex(64);
        let (host_vsock, guest_vsock) = tokio::io::duplex(64);
        let (guest_raw, server) = tokio::io::duplex(64);
        let host = tokio::spawn(async move {
            let mut raw = host_raw;
            let mut f = Framed::new(host_vsock);
            join(&mut raw, &mut f).await
        });
        let guest = tokio::spawn(async move {
            let mut raw = guest_raw;
            let mut f = Framed::new(guest_vsock);
            join(&mut f, &mut raw).await
        });
        let srv = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(server);
            let mut all = Vec::new();
            r.read_to_end(&mut all).await.unwrap();
            w.write_all(&all).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let (mut cr, mut cw) = tokio::io::split(client);
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let expect = big.clone();
        let writer = tokio::spawn(async move {
            cw.write_all(&big).await.unwrap();
            cw.shutdown().await.unwrap();
        });
        let mut echoed = Vec::new();
        cr.read_to_end(&mut echoed).await.unwrap();
        writer.await.unwrap();
        srv.await.unwrap();
        assert_eq!(echoed, expect);
        host.await.unwrap().unwrap();
        guest.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn garbage_from_the_peer_is_an_error() {
        let (t1, mut t2) = tokio::io::duplex(64);
        let mut f = Framed::new(t1);
        t2.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut b = [0u8; 8];
        let e = f.read(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
