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

/// Default output folder of `cargo xtask image --arch <arch>` for an arch
/// other than the host's (the host's stays [`image_out`]).
pub fn image_out_for(arch: hull_qemu::arch::Arch) -> PathBuf {
    workspace().join(format!("target/hull-image-{arch}"))
}

pub fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// A cargo target folder kept in the machine's cache when it is writable,
/// so that a fresh clone (CI) finds the registry crates built already (cargo
/// locks the folder; the path crates still rebuild per checkout); else
/// `fallback` in the checkout. Used by the fuzz builds and the
/// reproducibility check's second build.
pub fn shared_target(name: &str, fallback: PathBuf) -> PathBuf {
    let shared = cache().join(name);
    if std::fs::create_dir_all(&shared).is_ok() {
        shared
    } else {
        fallback
    }
}
