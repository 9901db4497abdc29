//! The settings in force: `/run/hull/settings.json` (canonical JSON of
//! `hull_policy::Effective`, written by hull-init), read once at start.
//! Anything wrong with the file gives the fail-closed settings, never an
//! open gate.

use std::io::Read;
use std::path::Path;

use hull_policy::Effective;

/// Larger files are refused (the real blob is a few KiB).
const MAX_SETTINGS_BYTES: u64 = 1024 * 1024;

/// Reads the settings; on any error returns `Effective::fail_closed` with
/// the reason (also logged).
pub fn load(path: &Path) -> Effective {
    match read(path) {
        Ok(eff) => eff,
        Err(reason) => {
            tracing::error!(
                "settings {}: {reason}; using the fail-closed settings",
                path.display()
            );
            Effective::fail_closed(format!("{}: {reason}", path.display()))
        }
    }
}

fn read(path: &Path) -> Result<Effective, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    f.take(MAX_SETTINGS_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_SETTINGS_BYTES {
        return Err(format!("larger than {MAX_SETTINGS_BYTES} bytes"));
    }
    Effective::from_json(&text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_bad_files_fail_closed() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&dir.path().join("none.json"));
        assert!(e.fail_closed.is_some());
        assert!(e.mount_roots.value.is_empty());
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, b"{\"format\": 1").unwrap();
        assert!(load(&bad).fail_closed.is_some());
        let good = dir.path().join("good.json");
        std::fs::write(&good, Effective::default().canonical_json()).unwrap();
        let e = load(&good);
        assert!(e.fail_closed.is_none());
        assert_eq!(e, Effective::default());
    }
}
