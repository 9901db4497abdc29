//! Frame encoding and an incremental decoder.

/// The largest payload one frame may carry. Big enough to keep the per-frame
/// overhead under 0.01%, small enough to bound memory per connection.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Largest single write to the transport. vhost-device-vsock (0.3) drops
/// guest packets whose data spans more than one descriptor, which the guest
/// kernel produces for large sends, and the stream then stalls for good.
/// Measured: 8 and 16 KiB writes stream fine, 32 and 64 KiB writes lose
/// packets. Every writer (async and blocking) cuts its writes to this.
pub const TRANSPORT_WRITE_MAX: usize = 16 * 1024;

/// Sent first by both sides: magic and protocol version.
pub const HELLO: &[u8; 8] = b"HULLCH\x00\x01";

const HEADER: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Data = 1,
    ShutWrite = 2,
    Close = 3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data(Vec<u8>),
    ShutWrite,
    Close,
}

/// A decoded frame whose payload is still in the decoder's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Data(std::ops::Range<usize>),
    ShutWrite,
    Close,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    #[error("frame of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("{0:?} frame must be empty, has {1} bytes")]
    NotEmpty(Kind, usize),
    #[error("empty data frame")]
    EmptyData,
    #[error("peer is not a hull channel (bad hello {0:02x?})")]
    BadHello(Vec<u8>),
    #[error("stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
}

/// Appends one frame to `out`. Data larger than [`MAX_PAYLOAD`] is split.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    match frame {
        Frame::Data(d) => encode_data(d, out),
        Frame::ShutWrite => {
            out.push(Kind::ShutWrite as u8);
            out.extend_from_slice(&0u32.to_be_bytes());
        }
        Frame::Close => {
            out.push(Kind::Close as u8);
            out.extend_from_slice(&0u32.to_be_bytes());
        }
    }
}

/// Appends `data` as data frames to `out`, copied once (no [`Frame`] to
/// build first). Data larger than [`MAX_PAYLOAD`] is split.
pub fn encode_data(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len() + 5 * data.len().div_ceil(MAX_PAYLOAD));
    for chunk in data.chunks(MAX_PAYLOAD) {
        out.push(Kind::Data as u8);
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Incremental decoder: feed bytes as they arrive, take frames out.
/// It checks the header before buffering a payload, so hostile lengths cost
/// nothing, and it never buffers more than one frame plus one read.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already returned as frames. Consumed bytes are dropped
    /// once per `push`, not once per frame: a read carrying many frames must
    /// not shift the buffer for each of them.
    start: usize,
    hello_seen: bool,
    /// When false the decoder starts directly with frames (tests, fuzzing).
    skip_hello: bool,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder for a stream that carries no hello.
    pub fn without_hello() -> Self {
        Decoder {
            skip_hello: true,
            ..Self::default()
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Frame>, Error> {
        Ok(self.next_span()?.map(|s| match s {
            Span::Data(r) => Frame::Data(self.buf[r].to_vec()),
            Span::ShutWrite => Frame::ShutWrite,
            Span::Close => Frame::Close,
        }))
    }

    /// Like [`Decoder::next`], but a data frame's payload stays in the
    /// decoder: read it with [`Decoder::payload`] before the next `push`.
    /// Saves a copy per frame on the channel's hot path.
    pub fn next_span(&mut self) -> Result<Option<Span>, Error> {
        let b = &self.buf[self.start..];
        if !self.hello_seen && !self.skip_hello {
            if b.len() < HELLO.len() {
                // Reject early when the bytes so far already disagree.
                if !HELLO.starts_with(b) {
                    return Err(Error::BadHello(b.to_vec()));
                }
                return Ok(None);
            }
            if &b[..HELLO.len()] != HELLO {
                return Err(Error::BadHello(b[..HELLO.len()].to_vec()));
            }
            self.start += HELLO.len();
            self.hello_seen = true;
            return self.next_span();
        }
        if b.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let kind = match b[0] {
            1 => Kind::Data,
            2 => Kind::ShutWrite,
            3 => Kind::Close,
            k => return Err(Error::UnknownKind(k)),
        };
        if len > MAX_PAYLOAD {
            return Err(Error::TooLarge(len));
        }
        match kind {
            Kind::Data if len == 0 => return Err(Error::EmptyData),
            Kind::ShutWrite | Kind::Close if len != 0 => return Err(Error::NotEmpty(kind, len)),
            _ => {}
        }
        if b.len() < HEADER + len {
            return Ok(None);
        }
        let at = self.start + HEADER;
        let frame = match kind {
            Kind::Data => Span::Data(at..at + len),
            Kind::ShutWrite => Span::ShutWrite,
            Kind::Close => Span::Close,
        };
        self.start += HEADER + len;
        Ok(Some(frame))
    }

    /// The bytes of a [`Span::Data`] range, valid until the next `push`.
    pub fn payload(&self, r: std::ops::Range<usize>) -> &[u8] {
        self.buf.get(r).unwrap_or_default()
    }

    /// Called at end of stream: leftover bytes mean the peer died mid-frame.
    pub fn finish(&self) -> Result<(), Error> {
        match self.buffered() {
            0 => Ok(()),
            n => Err(Error::Truncated(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_the_payload_until_the_next_push() {
        let mut wire = HELLO.to_vec();
        encode(&Frame::Data(b"abc".to_vec()), &mut wire);
        encode(&Frame::Data(b"de".to_vec()), &mut wire);
        encode(&Frame::ShutWrite, &mut wire);
        let mut d = Decoder::new();
        d.push(&wire[..10]);
        assert_eq!(d.next_span(), Ok(None));
        d.push(&wire[10..]);
        let Some(Span::Data(a)) = d.next_span().unwrap() else {
            panic!("no data span")
        };
        let Some(Span::Data(b)) = d.next_span().unwrap() else {
            panic!("no second data span")
        };
        assert_eq!(d.payload(a), b"abc");
        assert_eq!(d.payload(b), b"de");
        assert_eq!(d.next_span(), Ok(Some(Span::ShutWrite)));
        assert_eq!(d.next_span(), Ok(None));
        assert_eq!(d.finish(), Ok(()));
    }

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut wire = HELLO.to_vec();
        for f in frames {
            encode(f, &mut wire);
        }
        // Feed one byte at a time: the worst case for an incremental decoder.
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for b in wire {
            d.push(&[b]);
            while let Some(f) = d.next().unwrap() {
                out.push(f);
            }
        }
        d.finish().unwrap();
        out
    }

    #[test]
    fn frames_roundtrip() {
        let fs = vec![
            Frame::Data(b"GET /_ping HTTP/1.1\r\n\r\n".to_vec()),
            Frame::ShutWrite,
            Frame::Data(vec![0; 10]),
            Frame::Close,
        ];
        assert_eq!(roundtrip(&fs), fs);
    }

    #[test]
    fn big_data_is_split() {
        let big = vec![7u8; MAX_PAYLOAD * 2 + 3];
        let out = roundtrip(&[Frame::Data(big.clone())]);
        assert_eq!(out.len(), 3);
        let joined: Vec<u8> = out
            .into_iter()
            .flat_map(|f| match f {
                Frame::Data(d) => d,
                _ => vec![],
            })
            .collect();
        assert_eq!(joined, big);
    }

    #[test]
    fn hostile_frames_are_errors() {
        let mut d = Decoder::without_hello();
        d.push(&[9, 0, 0, 0, 0]);
        assert_eq!(d.next(), Err(Error::UnknownKind(9)));

        let mut d = Decoder::without_hello();
        d.push(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.next(), Err(Error::TooLarge(u32::MAX as usize)));

        let mut d = Decoder::without_hello();
        d.push(&[3, 0, 0, 0, 1, 0]);
        assert_eq!(d.next(), Err(Error::NotEmpty(Kind::Close, 1)));

        let mut d = Decoder::without_hello();
        d.push(&[1, 0, 0, 0, 0]);
        assert_eq!(d.next(), Err(Error::EmptyData));
    }

    #[test]
    fn truncated_stream_is_reported() {
        let mut d = Decoder::without_hello();
        d.push(&[1, 0, 0, 0, 4, b'a']);
        assert_eq!(d.next(), Ok(None));
        assert_eq!(d.finish(), Err(Error::Truncated(6)));
    }

    #[test]
    fn wrong_hello_fails_early() {
        let mut d = Decoder::new();
        d.push(b"HTTP");
        assert!(matches!(d.next(), Err(Error::BadHello(_))));
        let mut d = Decoder::new();
        d.push(b"HULL");
        assert_eq!(d.next(), Ok(None));
    }
}
