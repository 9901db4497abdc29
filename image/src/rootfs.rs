//! The Debian root, made by mmdebstrap from the lock (`image/packages.lock`)
//! and cached as a tarball named by the hash of everything mmdebstrap sees:
//! the locked set, the sources, the dpkg filters, the variant.
//!
//! A build from the lock, in order: apt (in a throwaway config) reads the
//! mirror's signed indexes and [`lock::check`] fails unless every locked
//! version is still served with its sha256; the `.deb`s are fetched (or
//! taken from `<cache>/debs`) and each one's sha256 is compared with the
//! lock before anything is unpacked, failing closed; mmdebstrap gets them
//! preloaded in its apt cache and `--include=name=version` for every entry;
//! and afterwards the root's dpkg status must list exactly the locked
//! packages, and every `.deb` apt used must have a locked sha256.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::lock::{self, Apt, LockSet};
use crate::manifest::{Debian, Manifest};
use crate::{io_err, run, Error, Result};

/// The name of the cached rootfs for this manifest and locked set.
pub fn key(m: &Manifest, set: &LockSet) -> String {
    let mut h = Sha256::new();
    h.update(b"hull-rootfs-recipe-2\0");
    h.update(m.rootfs_hash().as_bytes());
    h.update(set.hash().as_bytes());
    hex::encode(h.finalize())
}

/// The root of another architecture than the builder's (arm64 on x86),
/// from its own locked set (`production-arm64`), unpacked and configured
/// without running its programs (see [`crate::foreign`]), with the same
/// checks as [`ensure`]: every locked version still served with its
/// sha256, every `.deb` hashed before use, and exactly the locked packages
/// unpacked. Cached under the same kind of key (the manifest, which names
/// the arch, and the locked set).
pub fn ensure_foreign(
    m: &Manifest,
    set: &LockSet,
    arch: &str,
    cache: &Path,
    fresh: bool,
) -> Result<PathBuf> {
    let dir = cache.join("rootfs");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let tar = dir.join(format!("{}.tar", &key(m, set)[..16]));
    if tar.exists() && !fresh {
        tracing::info!(path = %tar.display(), "rootfs cached");
        return Ok(tar);
    }
    let work = dir.join(format!("work{}", std::process::id()));
    let start = Instant::now();
    let res = (|| {
        let apt = Apt::update(&m.debian, arch, &work.join("apt"))?;
        lock::check(set, &apt.index()?)?;
        let archives = work.join("archives");
        fetch_debs(&apt, set, &cache.join("debs"), &archives)?;
        eprintln!(
            "[image] foreign {arch} root {} ({} locked packages) -> {}",
            m.debian.suite,
            set.packages.len(),
            tar.display()
        );
        let tmp = tar.with_extension(format!("tmp{}", std::process::id()));
        if let Err(e) = crate::foreign::build(m, set, arch, &archives, &work.join("out"), &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &tar).map_err(io_err(&tar))
    })();
    let _ = fs::remove_dir_all(&work);
    res?;
    eprintln!("[image] rootfs built in {}s", start.elapsed().as_secs());
    Ok(tar)
}

/// Returns the cached rootfs tarball of `set`, building it first if needed.
pub fn ensure(m: &Manifest, set: &LockSet, cache: &Path, fresh: bool) -> Result<PathBuf> {
    let dir = cache.join("rootfs");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let tar = dir.join(format!("{}.tar", &key(m, set)[..16]));
    if tar.exists() && !fresh {
        tracing::info!(path = %tar.display(), "rootfs cached");
        return Ok(tar);
    }
    let work = dir.join(format!("work{}", std::process::id()));
    let res = build(m, set, cache, &work, &tar);
    let _ = fs::remove_dir_all(&work);
    res.map(|()| tar)
}

fn build(m: &Manifest, set: &LockSet, cache: &Path, work: &Path, tar: &Path) -> Result<()> {
    let start = Instant::now();
    let arch = match &m.debian.architecture {
        Some(a) => a.clone(),
        None => crate::foreign::native_arch()?,
    };
    let apt = Apt::update(&m.debian, &arch, &work.join("apt"))?;
    lock::check(set, &apt.index()?)?;
    let archives = work.join("archives");
    fetch_debs(&apt, set, &cache.join("debs"), &archives)?;
    eprintln!(
        "[image] mmdebstrap {} ({} locked packages) -> {}",
        m.debian.suite,
        set.packages.len(),
        tar.display()
    );
    let out = work.join("out");
    fs::create_dir_all(&out).map_err(io_err(&out))?;
    let pins: Vec<String> = set.packages.iter().map(lock::Entry::pin).collect();
    let tmp = tar.with_extension(format!("tmp{}", std::process::id()));
    let mut c = mmdebstrap(
        m,
        &pins,
        &[
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives".to_string(),
            format!(
                "--setup-hook=sync-in {} /var/cache/apt/archives/",
                archives.display()
            ),
            format!(
                "--customize-hook=copy-out /var/lib/dpkg/status {}",
                out.display()
            ),
            // What apt actually used (the preloaded files, or any it
            // fetched itself), hashed before the cache is emptied.
            format!(
                "--customize-hook=cd \"$1\"/var/cache/apt/archives && sha256sum -- *.deb > {}/debs.sha256",
                out.display()
            ),
        ],
        &tmp,
    );
    let res = run(&mut c).and_then(|_| {
        let p = out.join("status");
        let status = fs::read_to_string(&p).map_err(io_err(&p))?;
        lock::check_installed(set, &status)?;
        let p = out.join("debs.sha256");
        let used = fs::read_to_string(&p).map_err(io_err(&p))?;
        check_used(set, &used)
    });
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, tar).map_err(io_err(tar))?;
    eprintln!("[image] rootfs built in {}s", start.elapsed().as_secs());
    Ok(())
}

/// Every `.deb` left in the root's apt cache (`sha256sum` lines) must be a
/// locked one: nothing apt fetched on its own went in unchecked.
pub(crate) fn check_used(set: &LockSet, sums: &str) -> Result<()> {
    let locked: std::collections::BTreeSet<&str> =
        set.packages.iter().map(|e| e.sha256.as_str()).collect();
    let mut n = 0;
    for l in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (sum, file) = l.split_once("  ").unwrap_or((l, "?"));
        if !locked.contains(sum) {
            return Err(Error::Other(format!(
                "mmdebstrap used {file} (sha256 {sum}), which is not in image/packages.lock"
            )));
        }
        n += 1;
    }
    if n != set.packages.len() {
        return Err(Error::Other(format!(
            "mmdebstrap's apt cache held {n} .debs, the lock has {}",
            set.packages.len()
        )));
    }
    Ok(())
}

/// The file name apt gives a downloaded `.deb`.
fn deb_name(e: &lock::Entry) -> String {
    format!(
        "{}_{}_{}.deb",
        e.name,
        e.version.replace(':', "%3a"),
        e.arch
    )
}

fn sha256_of(p: &Path) -> Result<String> {
    let mut f = fs::File::open(p).map_err(io_err(p))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io_err(p))?;
    Ok(hex::encode(h.finalize()))
}

/// Every locked `.deb` into `into`, each checked against the lock's sha256
/// (a cached one is checked again on every use): a mismatch fails the build
/// before mmdebstrap starts.
pub(crate) fn fetch_debs(apt: &Apt, set: &LockSet, cache: &Path, into: &Path) -> Result<()> {
    fs::create_dir_all(cache).map_err(io_err(cache))?;
    fs::create_dir_all(into).map_err(io_err(into))?;
    let missing: Vec<String> = set
        .packages
        .iter()
        .filter(|e| !cache.join(deb_name(e)).exists())
        .map(lock::Entry::pin)
        .collect();
    if !missing.is_empty() {
        eprintln!("[image] downloading {} .debs", missing.len());
        run(apt
            .cmd("apt-get")
            .args(["-q", "download"])
            .args(&missing)
            .current_dir(cache))?;
    }
    for e in &set.packages {
        let p = cache.join(deb_name(e));
        if !p.exists() {
            return Err(Error::Other(format!(
                "{} {} ({}): apt-get download left no {}",
                e.name,
                e.version,
                e.arch,
                p.display()
            )));
        }
        let got = sha256_of(&p)?;
        if got != e.sha256 {
            let _ = fs::remove_file(&p);
            return Err(Error::Other(format!(
                "{}: sha256 {got}, but image/packages.lock says {} for {} {} ({}); refusing it",
                p.display(),
                e.sha256,
                e.name,
                e.version,
                e.arch
            )));
        }
        let to = into.join(deb_name(e));
        fs::hard_link(&p, &to)
            .or_else(|_| fs::copy(&p, &to).map(|_| ()))
            .map_err(io_err(&to))?;
    }
    Ok(())
}

/// The mmdebstrap command for `includes` (with `hooks`), writing `out`.
pub(crate) fn mmdebstrap(
    m: &Manifest,
    includes: &[String],
    hooks: &[String],
    out: &Path,
) -> Command {
    let d = &m.debian;
    let mut c = Command::new("mmdebstrap");
    c.env("SOURCE_DATE_EPOCH", m.image.source_date_epoch.to_string())
        .arg("--mode=root")
        .arg("--format=tar")
        .arg(format!("--variant={}", d.variant))
        .arg(format!("--include={}", includes.join(",")))
        .arg("--aptopt=APT::Install-Recommends \"false\"");
    for p in &d.dpkg_exclude {
        c.arg(format!("--dpkgopt=path-exclude={p}"));
    }
    for p in &d.dpkg_include {
        c.arg(format!("--dpkgopt=path-include={p}"));
    }
    c.args(hooks);
    // The preloaded .debs stay in the apt cache otherwise (mmdebstrap only
    // removes what it downloaded itself).
    c.arg("--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb");
    c.arg(&d.suite).arg(out).args(source_lines(d));
    c
}

/// One `deb` line per source (main only).
pub(crate) fn source_lines(d: &Debian) -> Vec<String> {
    lock::sources(d)
        .into_iter()
        .map(|s| format!("deb {s} main"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Entry;

    #[test]
    fn only_locked_debs_may_be_used() {
        let set = LockSet {
            sources: vec![],
            requested: vec![],
            packages: vec![Entry {
                name: "a".into(),
                version: "1".into(),
                arch: "all".into(),
                sha256: "ab".repeat(32),
            }],
        };
        let ok = format!("{}  a_1_all.deb\n", "ab".repeat(32));
        assert!(check_used(&set, &ok).is_ok());
        let e = check_used(&set, &format!("{}  a_2_all.deb\n", "cd".repeat(32)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a_2_all.deb") && e.contains("not in image/packages.lock"),
            "{e}"
        );
        let e = check_used(&set, "").unwrap_err().to_string();
        assert!(e.contains("held 0 .debs, the lock has 1"), "{e}");
    }
}
