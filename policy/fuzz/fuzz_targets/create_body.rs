//! The create-body policy: no panics; an accepted body always carries the
//! forced runtime, and the forwarded bytes are accepted again unchanged.
#![no_main]

use hull_policy::{CreateContext, CreateRequest, VolumeCreateRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = CreateContext { runtime: "hull" };
    if let Ok(req) = CreateRequest::parse(data, &ctx) {
        assert_eq!(req.body()["HostConfig"]["Runtime"], "hull");
        let fwd = req.to_bytes();
        let again = CreateRequest::parse(&fwd, &ctx).expect("forwarded body is accepted");
        assert_eq!(again.body(), req.body());
        assert_eq!(again.binds, req.binds);
    }
    if let Ok(v) = VolumeCreateRequest::parse(data) {
        let again = VolumeCreateRequest::parse(&v.to_bytes()).expect("forwarded body is accepted");
        assert_eq!(again.bind_source, v.bind_source);
    }
});
