//! Settings files, merge and the effective-settings blob: no panics, and
//! whatever is accepted survives a JSON round trip unchanged.
#![no_main]

use hull_policy::{merge, parse_admin, parse_user, Effective};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let admin = match parse_admin(data) {
        Ok(a) => Some(a),
        Err(e) => {
            // Errors must point inside the document.
            assert!(e.line >= 1 && e.column >= 1);
            let _ = e.to_string();
            None
        }
    };
    let user = parse_user(data).ok();
    // Arbitrary blobs must never panic the VM side.
    let _ = Effective::from_json(data);
    if admin.is_none() && user.is_none() {
        return;
    }
    let eff = merge(admin.as_ref(), user.as_ref());
    let blob = serde_json::to_vec(&eff).expect("Effective serialises");
    let back = Effective::from_json(&blob).expect("own output is accepted");
    assert_eq!(back, eff);
    let canonical = eff.canonical_json();
    let again = Effective::from_json(canonical.as_bytes()).expect("canonical form is accepted");
    assert_eq!(again, eff);
    assert_eq!(again.canonical_json(), canonical);
});
