//! Loading a bundle: config.json and the rootfs path, refusing bundles whose
//! rootfs is a symlink or the VM's own root.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    /// config.json's bytes as read, the ones `spec` was parsed from: `create`
    /// saves them as they are (no second serialization, and the copy cannot
    /// differ from what the container was built from).
    pub raw: Vec<u8>,
    /// Canonical path of the rootfs (a directory that is not `/`).
    pub rootfs: PathBuf,
}

/// The hooks of the config that `create` saved in the state dir, or none.
/// Only the `hooks` member is deserialized (the rest is skipped unparsed):
/// `start` and `delete` need nothing else, and turning a whole config
/// (Docker's seccomp profile alone names hundreds of calls) into oci-spec
/// types is a cost each of those short processes paid under emulation.
pub fn saved_hooks(state_dir: &Path) -> Option<oci_spec::runtime::Hooks> {
    #[derive(serde::Deserialize)]
    struct HooksOnly {
        hooks: Option<oci_spec::runtime::Hooks>,
    }
    let data = std::fs::read(state_dir.join("config.json")).ok()?;
    serde_json::from_slice::<HooksOnly>(&data).ok()?.hooks
}

pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle)
        .map_err(|e| Error::Bundle(format!("bundle {}: {e}", bundle.display())))?;
    let bad =
        |e: &dyn std::fmt::Display| Error::Bundle(format!("{}/config.json: {e}", dir.display()));
    // Parsed from memory: serde_json reads a slice faster than an io::Read.
    let raw = std::fs::read(dir.join("config.json")).map_err(|e| bad(&e))?;
    let spec: Spec = serde_json::from_slice(&raw).map_err(|e| bad(&e))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Bundle("config.json has no root".into()))?;
    let given = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = check_rootfs(&given)?;
    Ok(Bundle {
        dir,
        spec,
        raw,
        rootfs,
    })
}

/// Why: a rootfs that is a symlink (or resolves to `/`) would hand the VM's own
/// files to the container, shifted to look root-owned and writable.
pub fn check_rootfs(given: &Path) -> Result<PathBuf> {
    let meta = std::fs::symlink_metadata(given)
        .map_err(|e| Error::Bundle(format!("rootfs {}: {e}", given.display())))?;
    if meta.file_type().is_symlink() {
        return Err(Error::Refused(format!(
            "rootfs {} is a symlink; hull refuses symlinked rootfs paths",
            given.display()
        )));
    }
    if !meta.is_dir() {
        return Err(Error::Bundle(format!(
            "rootfs {} is not a directory",
            given.display()
        )));
    }
    let canon = std::fs::canonicalize(given)
        .map_err(|e| Error::Bundle(format!("rootfs {}: {e}", given.display())))?;
    if canon == Path::new("/") {
        return Err(Error::Refused(
            "rootfs resolves to the VM's root directory".into(),
        ));
    }
    Ok(canon)
}

/// Container ids become directory names: keep them to runc's alphabet.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Other(format!("invalid container id {id:?}")))
    }
}
