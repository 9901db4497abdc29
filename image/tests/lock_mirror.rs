//! Host tier: the lock against the live mirror. The repo's lock must be
//! served as it is, and an entry edited to a version the mirror lacks must
//! stop the rootfs build (before mmdebstrap runs) with the message that
//! names the package, the locked version, what the mirror has, and the
//! command that refreshes the lock. Needs the network and apt (`cargo xtask
//! deps`); without them it fails.

use std::path::Path;

use hull_image::lock::{self, Apt, Lock, Request, PRODUCTION};
use hull_image::Manifest;

fn repo() -> (Manifest, lock::LockSet) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = Manifest::load(&dir.join("manifest.toml")).unwrap();
    let l = Lock::load(&dir.join("packages.lock")).unwrap();
    let s = l
        .set_for(PRODUCTION, &Request::production(&m))
        .unwrap()
        .clone();
    (m, s)
}

#[test]
fn a_locked_version_the_mirror_lacks_stops_the_build_with_the_update_hint() {
    let (m, mut set) = repo();
    let tmp = tempfile::tempdir().unwrap();

    // The mirror really was read: it serves the repo's lock as it is (when
    // this fails, the lock is stale: `cargo xtask image --update-lock`).
    let apt = Apt::update(&m.debian, &tmp.path().join("apt")).unwrap();
    let idx = apt.index().unwrap();
    lock::check(&set, &idx).unwrap();
    let served = idx.versions("libc6");
    assert!(!served.is_empty(), "the mirror's index has no libc6");

    let e = set
        .packages
        .iter_mut()
        .find(|e| e.name == "libc6")
        .expect("libc6 is in the lock");
    e.version = "2.0-hull-not-served".into();
    let cache = tmp.path().join("cache");
    let err = hull_image::rootfs::ensure(&m, &set, &cache, true)
        .unwrap_err()
        .to_string();
    let want = format!(
        "libc6 locked at 2.0-hull-not-served (amd64) is not served by the mirror, which has {}",
        served.join(", ")
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        err.contains("run `cargo xtask image --update-lock`"),
        "{err}"
    );
    // Refused before anything was downloaded or built.
    assert!(!cache.join("debs").exists(), "debs were fetched");
    let tars: Vec<_> = std::fs::read_dir(cache.join("rootfs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tar"))
        .collect();
    assert!(tars.is_empty(), "a rootfs was written: {tars:?}");
}
