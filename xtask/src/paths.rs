//! Where things live: the workspace, the build cache, the image output.

use std::path::PathBuf;

/// The workspace root (the folder holding the top Cargo.toml).
pub fn workspace() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Content-addressed cache shared by every checkout on the machine
/// (kernel and rootfs builds are slow; CI keeps this directory warm).
pub fn cache() -> PathBuf {
    std::env::var_os("HULL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hull"))
}

/// Default output folder of `cargo xtask image`.
pub fn image_out() -> PathBuf {
    workspace().join("target/hull-image")
}

pub fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}
