//! The files the host hands the VM through QEMU fw_cfg (`-fw_cfg
//! name=opt/dev.hull/<name>,file=...`, see hull-qemu's machine.rs), read
//! from the kernel's qemu_fw_cfg sysfs tree. The one reader for all of them:
//! the admin's settings, the user's engine settings, the shares map.

use std::io::{ErrorKind, Read};

const BY_NAME: &str = "/sys/firmware/qemu_fw_cfg/by_name";

/// The admin's settings (hull-policy's effective settings).
pub const SETTINGS: &str = "opt/dev.hull/settings";
/// The user's Docker Engine settings.
pub const ENGINE: &str = "opt/dev.hull/engine";
/// Which virtiofs/9p tag is which host path.
pub const SHARES: &str = "opt/dev.hull/shares";

/// Where fw_cfg file `name` appears in the VM.
pub fn path(name: &str) -> String {
    format!("{BY_NAME}/{name}/raw")
}

/// The bytes of fw_cfg file `name`: `Ok(None)` when the host sent no such
/// file, an error naming the file when it cannot be read or is larger than
/// `max` bytes (it is then not read further).
pub fn read(name: &str, max: u64) -> Result<Option<Vec<u8>>, String> {
    read_at(&path(name), max)
}

fn read_at(path: &str, max: u64) -> Result<Option<Vec<u8>>, String> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    let mut raw = Vec::new();
    f.take(max.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading {path}: {e}"))?;
    if raw.len() as u64 > max {
        return Err(format!("{path} is larger than {max} bytes"));
    }
    Ok(Some(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_sysfs() {
        assert_eq!(
            path(SETTINGS),
            "/sys/firmware/qemu_fw_cfg/by_name/opt/dev.hull/settings/raw"
        );
    }

    #[test]
    fn absent_is_none_present_is_read_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("raw");
        let p = p.to_str().unwrap();
        assert_eq!(read_at(p, 4), Ok(None));
        std::fs::write(p, b"1234").unwrap();
        assert_eq!(read_at(p, 4), Ok(Some(b"1234".to_vec())));
        std::fs::write(p, b"12345").unwrap();
        assert_eq!(read_at(p, 4), Err(format!("{p} is larger than 4 bytes")));
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_str().unwrap();
        // A directory opens but cannot be read.
        assert_eq!(
            read_at(p, 4),
            Err(format!("reading {p}: Is a directory (os error 21)"))
        );
    }
}
