//! Host tier: the lock against the live mirror. The repo's lock must be
//! served as it is, and an entry edited to a version the mirror lacks must
//! stop the rootfs build (before mmdebstrap runs) with the message that
//! names the package, the locked version, what the mirror has, and the
//! command that refreshes the lock. Both architectures' sets: amd64's
//! (`production`, built natively) and arm64's (`production-arm64`, the
//! foreign unpack). Needs the network and apt (`cargo xtask deps`); without
//! them it fails.

use std::path::Path;

use hull_image::lock::{self, Apt, Lock, Request, PRODUCTION};
use hull_image::Manifest;

fn repo(arch: &str) -> (Manifest, lock::LockSet) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut m = Manifest::load(&dir.join("manifest.toml")).unwrap();
    let l = Lock::load(&dir.join("packages.lock")).unwrap();
    let s = l
        .set_for(&lock::set_name(PRODUCTION, arch), &Request::production(&m))
        .unwrap()
        .clone();
    if arch != lock::PLAIN_ARCH {
        m.debian.architecture = Some(arch.into());
    }
    (m, s)
}

#[test]
fn a_locked_version_the_mirror_lacks_stops_the_build_with_the_update_hint() {
    refused("amd64");
}

#[test]
fn a_locked_arm64_version_the_mirror_lacks_stops_the_foreign_build_too() {
    refused("arm64");
}

fn refused(arch: &str) {
    let (m, mut set) = repo(arch);
    assert!(
        set.packages
            .iter()
            .all(|e| e.arch == arch || e.arch == "all"),
        "the {arch} set holds another arch's packages"
    );
    let tmp = tempfile::tempdir().unwrap();

    // The mirror really was read: it serves the repo's lock as it is (when
    // this fails, the lock is stale: `cargo xtask image --update-lock`).
    let apt = Apt::update(&m.debian, arch, &tmp.path().join("apt")).unwrap();
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
    let res = if arch == lock::PLAIN_ARCH {
        hull_image::rootfs::ensure(&m, &set, &cache, true)
    } else {
        hull_image::rootfs::ensure_foreign(&m, &set, arch, &cache, true)
    };
    let err = res.unwrap_err().to_string();
    let want = format!(
        "libc6 locked at 2.0-hull-not-served ({arch}) is not served by the mirror, which has {}",
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
