//! The frame decoder on hostile input: any bytes, split anywhere, must give
//! frames or an error — never a panic, never unbounded buffering.
#![no_main]

use hull_channel::{encode, Decoder, Frame, MAX_PAYLOAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the stream is split into reads.
    let (split, rest) = match data.split_first() {
        Some((s, r)) => (*s as usize + 1, r),
        None => return,
    };
    for hello in [true, false] {
        let mut d = if hello { Decoder::new() } else { Decoder::without_hello() };
        let mut frames = Vec::new();
        let mut failed = false;
        for chunk in rest.chunks(split) {
            d.push(chunk);
            loop {
                match d.next() {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
            // Never more than one frame's worth buffered beyond a read.
            assert!(d.buffered() <= MAX_PAYLOAD + 5 + split + 8);
        }
        // Whatever decoded re-encodes to the same bytes.
        if !failed && d.finish().is_ok() && !hello {
            let mut again = Vec::new();
            for f in &frames {
                if let Frame::Data(p) = f {
                    assert!(!p.is_empty() && p.len() <= MAX_PAYLOAD);
                }
                encode(f, &mut again);
            }
            assert_eq!(again, rest);
        }
    }
});
