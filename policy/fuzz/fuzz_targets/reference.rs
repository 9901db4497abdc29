//! Image references and allow-list patterns: normalisation is idempotent
//! and a pattern's resolvable reference parses back to itself.
#![no_main]

use hull_policy::{ImagePattern, ImageRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(r) = ImageRef::parse(text) {
        let shown = r.to_string();
        let again = ImageRef::parse(&shown).expect("normalised form parses");
        assert_eq!(again, r, "{text:?} -> {shown:?}");
        let canon = ImageRef::parse(&r.canonical()).expect("canonical form parses");
        assert_eq!(canon.repository(), r.repository());
        assert_eq!(canon.digest, r.digest);
        let _ = hull_policy::reference::display_image(text);
    }
    if let Ok(p) = ImagePattern::parse(text) {
        assert_eq!(p.as_str(), text);
        if let Some(r) = p.resolvable() {
            let again = ImageRef::parse(&r.canonical()).expect("resolvable reference parses");
            assert_eq!(again, r);
        }
    }
});
