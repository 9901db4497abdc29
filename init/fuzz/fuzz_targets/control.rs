//! init's control port on hostile input: the bytes a connection brings are
//! read as frames (after the hello) and the first data frame is parsed as a
//! request, as `control::handle` does (or the payload is given directly). Never a panic; a `logs` request's
//! name is only accepted if it stays a plain file name.
#![no_main]

use hull_channel::sync::FrameReader;
use hull_channel::Frame;
use hull_init::request::{parse, valid_name, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte even: the rest is the request frame's payload (the JSON
    // mutates well); odd: the rest is the whole connection stream.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let payload = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut r = FrameReader::new(rest);
        let Ok(Some(Frame::Data(req))) = r.next_frame() else {
            return;
        };
        req
    };
    let Ok(req) = parse(&payload) else { return };
    if let Request::Logs { name, .. } = req {
        if valid_name(&name) {
            assert!(!name.contains('/') && !name.contains('.') && !name.is_empty());
        }
    }
});
