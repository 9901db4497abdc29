//! The admin's settings, delivered by the host through QEMU fw_cfg. Written to
//! /run/hull/settings.json (root only, 0400) for the gate and the guard.
//! Missing or malformed settings never boot the VM "open": the strictest
//! defaults apply and the error shows in `hull status`.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use crate::fw_cfg;

pub const PATH: &str = "/run/hull/settings.json";
/// Settings are a few KiB; a bigger blob is an error, not something to buffer.
pub const MAX_BYTES: u64 = 1 << 20;

/// Isolation on, nothing allowed through the docker socket, no shares, no
/// bind-mount roots, `docker load` refused (hull-policy's fail-closed set).
pub fn strict_defaults(reason: &str) -> String {
    hull_policy::Effective::fail_closed(reason).canonical_json()
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Loaded {
    /// "fw_cfg" or "strict-defaults".
    pub source: &'static str,
    pub error: Option<String>,
    pub bytes: usize,
}

/// Checks a settings blob; returns the canonical JSON to hand to services.
pub fn validate(raw: &[u8]) -> Result<String, String> {
    if raw.len() as u64 > MAX_BYTES {
        return Err(format!(
            "settings blob is {} bytes (limit {MAX_BYTES})",
            raw.len()
        ));
    }
    hull_policy::Effective::from_json(raw)
        .map(|e| e.canonical_json())
        .map_err(|e| format!("settings from the host are not valid: {e}"))
}

fn read_fw_cfg() -> Result<Vec<u8>, String> {
    fw_cfg::read(fw_cfg::SETTINGS, MAX_BYTES)?.ok_or_else(|| {
        format!(
            "no settings from the host ({} is absent)",
            fw_cfg::path(fw_cfg::SETTINGS)
        )
    })
}

pub fn load() -> Loaded {
    let (json, source, error) = match read_fw_cfg().and_then(|raw| validate(&raw)) {
        Ok(json) => (json, "fw_cfg", None),
        Err(e) => {
            crate::error!("{e}; running with isolation on and the strictest defaults");
            (strict_defaults(&e), "strict-defaults", Some(e))
        }
    };
    if let Err(e) = write_private(PATH, json.as_bytes()) {
        crate::error!("writing {PATH}: {e}");
    }
    Loaded {
        source,
        error,
        bytes: json.len(),
    }
}

/// Writes a root-only, read-only file (mode 0400).
pub fn write_private(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.set_permissions(fs::Permissions::from_mode(0o400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_defaults_validate() {
        assert!(validate(strict_defaults("test").as_bytes()).is_ok());
    }

    #[test]
    fn a_merged_blob_validates() {
        let admin = hull_policy::parse_admin(br#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true}}"#).unwrap();
        let blob = hull_policy::merge(Some(&admin), None).canonical_json();
        assert_eq!(validate(blob.as_bytes()).unwrap(), blob);
    }

    #[test]
    fn hostile_blobs_are_refused() {
        assert!(validate(b"").is_err());
        assert!(validate(b"{\"enhancedContainerIsolation\": ").is_err());
        assert!(validate(&[0xff, 0xfe, b'{', b'}']).is_err());
        assert!(validate(b"[1,2]").is_err());
        assert!(validate(b"{}").is_err());
        assert!(validate(b"{\"enhancedContainerIsolation\": true}").is_err());
        // An admin file is not a merged blob: the host must merge first.
        assert!(validate(
            br#"{"configurationFileVersion": 2, "enhancedContainerIsolation": {"value": true}}"#
        )
        .is_err());
        let huge = vec![b' '; (MAX_BYTES + 1) as usize];
        assert!(validate(&huge).unwrap_err().contains("limit"));
        let deep = "[".repeat(100_000);
        assert!(validate(deep.as_bytes()).is_err());
    }
}
