//! The guard socket's request line (hull-guard-proto), as the guard's
//! server reads it: trailing whitespace trimmed, one JSON object. Never a
//! panic, and whatever parses re-encodes to an equal request (the runtime
//! and the guard agree on every message either can send).
#![no_main]

use hull_guard_proto::{Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut end = data.len();
    while end > 0 && data[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let line = &data[..end];
    if let Ok(req) = serde_json::from_slice::<Request>(line) {
        let again = serde_json::to_vec(&req).expect("a request encodes");
        let back: Request = serde_json::from_slice(&again).expect("its encoding parses");
        assert_eq!(back, req);
        if let Request::Register { container, .. } = &req {
            // Whatever ranges a request carries map ids without wrapping.
            for r in [container.uid_range, container.gid_range] {
                for id in [0, r.len.saturating_sub(1), r.len] {
                    if let Some(v) = r.host(id) {
                        assert!(id < r.len && v >= r.start);
                    }
                }
            }
        }
    }
    if let Ok(resp) = serde_json::from_slice::<Response>(line) {
        let again = serde_json::to_vec(&resp).expect("a response encodes");
        let back: Response = serde_json::from_slice(&again).expect("its encoding parses");
        assert_eq!(back, resp);
    }
});
