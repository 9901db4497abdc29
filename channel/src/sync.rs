//! Blocking frame I/O for message-style use (init's control port, `hull`'s
//! control client): one JSON message per data frame.

use std::io::{self, Read, Write};

use crate::frame::{encode, Decoder, Frame, HELLO, TRANSPORT_WRITE_MAX};

fn invalid(e: crate::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Reads frames from a blocking stream (after checking the peer's hello).
pub struct FrameReader<R> {
    inner: R,
    dec: Decoder,
    eof: bool,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            dec: Decoder::new(),
            eof: false,
        }
    }

    /// The next frame; `None` at a clean end of stream.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(f) = self.dec.next().map_err(invalid)? {
                return Ok(Some(f));
            }
            if self.eof {
                self.dec.finish().map_err(invalid)?;
                return Ok(None);
            }
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                self.eof = true;
            } else {
                self.dec.push(&buf[..n]);
            }
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Writes the hello that must open every channel stream.
pub fn write_hello<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(HELLO)
}

pub fn write_frame<W: Write>(w: &mut W, f: &Frame) -> io::Result<()> {
    let mut out = Vec::new();
    encode(f, &mut out);
    for chunk in out.chunks(TRANSPORT_WRITE_MAX) {
        w.write_all(chunk)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_roundtrip_over_a_byte_stream() {
        let mut wire = Vec::new();
        write_hello(&mut wire).unwrap();
        write_frame(&mut wire, &Frame::Data(b"{\"op\":\"status\"}".to_vec())).unwrap();
        write_frame(&mut wire, &Frame::Close).unwrap();
        let mut r = FrameReader::new(&wire[..]);
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Data(b"{\"op\":\"status\"}".to_vec()))
        );
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Close));
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn truncation_is_an_error_not_a_hang() {
        let mut wire = HELLO.to_vec();
        wire.extend([1, 0, 0, 1, 0, b'x']);
        let mut r = FrameReader::new(&wire[..]);
        assert_eq!(
            r.next_frame().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
