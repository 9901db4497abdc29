//! The framed protocol between host and VM.
//!
//! Wire format of one frame: `kind: u8`, `len: u32` (big-endian), then `len`
//! payload bytes. Kinds: [`Kind::Data`] (payload: bytes of the stream),
//! [`Kind::ShutWrite`] (the sender will send no more data; empty),
//! [`Kind::Close`] (the sender is gone; empty). Payloads are bounded by
//! [`MAX_PAYLOAD`], so a decoder never holds more than one frame.
//!
//! Each side of a connection opens with a [`HELLO`] so that a peer speaking
//! something else (or an old version) fails at once with a clear error.

mod frame;
#[cfg(feature = "tokio")]
pub mod pump;
pub mod sync;

pub use frame::{
    encode, encode_data, Decoder, Error, Frame, Kind, Span, HELLO, MAX_PAYLOAD, TRANSPORT_WRITE_MAX,
};

/// vsock port of the Docker engine's door (hull-gate) in the guest.
pub const DOCKER_PORT: u32 = 2375;
/// vsock port of hull-init's control service in the guest.
pub const CONTROL_PORT: u32 = 1024;
