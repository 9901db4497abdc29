//! The Debian root, made by mmdebstrap and cached as a tarball named by the
//! hash of everything mmdebstrap sees (suite, mirror, packages, dpkg filters).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::manifest::Manifest;
use crate::{io_err, run, Result};

/// Returns the cached rootfs tarball, building it first if needed.
pub fn ensure(m: &Manifest, cache: &Path, fresh: bool) -> Result<PathBuf> {
    let dir = cache.join("rootfs");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let tar = dir.join(format!("{}.tar", &m.rootfs_hash()[..16]));
    if tar.exists() && !fresh {
        tracing::info!(path = %tar.display(), "rootfs cached");
        return Ok(tar);
    }
    let tmp = tar.with_extension(format!("tmp{}", std::process::id()));
    let start = Instant::now();
    eprintln!(
        "[image] mmdebstrap {} ({} packages) -> {}",
        m.debian.suite,
        m.debian.packages.len(),
        tar.display()
    );
    let res = match &m.debian.architecture {
        // Another architecture than the builder's: unpacked and configured
        // without running its programs (see `foreign`).
        Some(arch) if *arch != crate::foreign::native_arch()? => {
            crate::foreign::build(m, arch, &tmp)
        }
        _ => run(&mut mmdebstrap(m, &tmp)).map(|_| ()),
    };
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &tar).map_err(io_err(&tar))?;
    eprintln!("[image] rootfs built in {}s", start.elapsed().as_secs());
    Ok(tar)
}

fn mmdebstrap(m: &Manifest, out: &Path) -> Command {
    let d = &m.debian;
    let mut c = Command::new("mmdebstrap");
    c.env("SOURCE_DATE_EPOCH", m.image.source_date_epoch.to_string())
        .arg("--mode=root")
        .arg("--format=tar")
        .arg(format!("--variant={}", d.variant))
        .arg(format!("--include={}", d.packages.join(",")))
        .arg("--aptopt=APT::Install-Recommends \"false\"");
    for p in &d.dpkg_exclude {
        c.arg(format!("--dpkgopt=path-exclude={p}"));
    }
    for p in &d.dpkg_include {
        c.arg(format!("--dpkgopt=path-include={p}"));
    }
    c.arg(&d.suite).arg(out).arg(&d.mirror);
    c
}
