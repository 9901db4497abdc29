//! The reproducibility check. Nothing here compares a cache with itself:
//!
//! - `cargo xtask test` (and `cargo xtask repro`): hull's VM binaries are
//!   built a second time from a copy of the source in another folder, with
//!   its own target folder, and compared file by file with the binaries the
//!   image ships (`target/hull-bin`); then the image is assembled twice, each
//!   from a freshly built Debian rootfs and one of the two binary sets, and
//!   the kernel, root and qcow2 are compared.
//! - `cargo xtask repro --full` first builds the kernel twice from scratch
//!   (fresh source unpack, empty object tree) in two different folders and
//!   compares every artifact, then runs the check above.
//!
//! What makes it hold: `--remap-path-prefix` for the workspace and the cargo
//! home ([`rustflags`]), the toolchain pinned in `rust-toolchain.toml` and
//! checked by [`check_toolchain`], and the kernel's [`kernel::repro_env`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::{kernel, paths, vm};
use hull_qemu::arch::Arch;

#[derive(clap::Args, Default)]
pub struct Args {
    /// Also build the kernel twice from scratch in two folders and compare
    /// every artifact (about two cold kernel builds: long).
    #[arg(long)]
    pub full: bool,
    /// With --full: only the kernel half (no binaries, no image).
    #[arg(long, requires = "full")]
    pub kernel_only: bool,
    /// Only build the Debian rootfs twice from the lock (fresh) and compare.
    #[arg(long, conflicts_with = "full")]
    pub rootfs_only: bool,
    /// Keep the kernel trees after the comparison (for diffoscope).
    #[arg(long)]
    pub keep: bool,
    /// Parallel make jobs for the kernel builds (default: number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Guest architecture (default: the host's). Another arch's check is
    /// the rootfs twice from its locked set and the image assembled twice;
    /// its binaries are not built a second time (see [`check_foreign`]).
    #[arg(long, conflicts_with = "full")]
    pub arch: Option<Arch>,
}

pub fn run(a: &Args) -> Result<()> {
    let arch = a.arch.unwrap_or_else(Arch::host);
    if a.rootfs_only {
        return rootfs_twice(arch);
    }
    if arch != Arch::host() {
        let start = Instant::now();
        vm::image(&vm::ImageArgs {
            no_deps: true,
            arch: Some(arch),
            ..Default::default()
        })?;
        check_foreign(arch)?;
        eprintln!(
            "[repro] {arch}: done in {}s (with the image build)",
            start.elapsed().as_secs()
        );
        return Ok(());
    }
    if a.full {
        kernel_twice(a)?;
        if a.kernel_only {
            return Ok(());
        }
    }
    vm::image(&vm::ImageArgs {
        no_deps: true,
        ..Default::default()
    })?;
    check()
}

/// The rustc release pinned by rust-toolchain.toml's `channel` (why a
/// number and how offline machines serve it: the file's comment).
pub fn pinned_rustc() -> Result<String> {
    let path = paths::workspace().join("rust-toolchain.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_pinned(&text).with_context(|| {
        format!(
            "{}: `channel` must name a release (x.y.z), not a moving channel",
            path.display()
        )
    })
}

fn parse_pinned(text: &str) -> Option<String> {
    let v = text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("channel")?.trim().strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })?;
    let release = v.split('.').count() == 3 && v.split('.').all(|n| n.parse::<u32>().is_ok());
    release.then_some(v)
}

/// Fails unless `rustc --version` (as cargo will run it here) is the pinned
/// release: another compiler gives other bytes, and the check would then
/// compare two builds of a toolchain nobody pinned.
pub fn check_toolchain(sh: &Shell) -> Result<String> {
    let want = pinned_rustc()?;
    let _dir = sh.push_dir(paths::workspace());
    let have = cmd!(sh, "rustc --version").quiet().read()?;
    let got = have.split_whitespace().nth(1).unwrap_or_default();
    if got != want {
        bail!(
            "rustc is {have:?} but rust-toolchain.toml pins {want}: install that release \
             (rustup toolchain install {want}) or update the pin deliberately"
        );
    }
    Ok(have)
}

/// RUSTFLAGS of every VM binary: the source folder and the cargo home do
/// not appear in the binaries (panic locations, debug strings), so two
/// checkouts in different places build the same bytes.
pub fn rustflags(ws: &Path) -> String {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    format!(
        "--remap-path-prefix={}=/cargo --remap-path-prefix={}=/hull",
        home.display(),
        ws.display()
    )
}

pub fn sha256_file(p: &Path) -> Result<String> {
    let mut f = fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", p.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// sha256 of every regular file under `dir`, by relative path.
fn digests(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                sha256_file(&e.path())?,
            );
        }
    }
    Ok(out)
}

/// Names whose digests differ, or that only one side has.
fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// A copy of the workspace's sources (tracked and untracked, not ignored:
/// no target folders) at `to`, with their mtimes so that cargo's
/// fingerprints stay valid and a second run is warm. The copy builds into
/// its own `target/`, at the same place relative to its checkout as the
/// first build's, so that nothing differs but the checkout's path.
fn copy_sources(sh: &Shell, ws: &Path, to: &Path) -> Result<()> {
    let _dir = sh.push_dir(ws);
    let files = cmd!(sh, "git ls-files -z --cached --others --exclude-standard")
        .quiet()
        .read()?;
    // Everything but the copy's own target folder goes: deleted files must
    // not linger, and a kept target folder keeps the second build warm.
    if let Ok(entries) = fs::read_dir(to) {
        for e in entries.flatten() {
            if e.file_name() == "target" {
                continue;
            }
            let p = e.path();
            let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
        }
    }
    for f in files.split('\0').filter(|f| !f.is_empty()) {
        let src = ws.join(f);
        // Deleted but still tracked: not part of the tree being built.
        let Ok(meta) = fs::symlink_metadata(&src) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let dst = to.join(f);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&src, &dst).with_context(|| format!("copying {f}"))?;
        let file = fs::File::options().write(true).open(&dst)?;
        file.set_modified(meta.modified()?)?;
    }
    Ok(())
}

/// Binaries twice, image twice (see the module comment). Expects the
/// image's own binaries in `target/hull-bin` (built by `vm::image`).
pub fn check() -> Result<()> {
    let sh = Shell::new()?;
    let rustc = check_toolchain(&sh)?;
    eprintln!("[repro] toolchain {rustc}");
    let ws = paths::workspace();
    let base = paths::target().join("repro");
    fs::create_dir_all(&base)?;

    // 1. hull's binaries: the image's set against a build of a copy in
    // another folder (its target folder is kept, so a later run is warm).
    let a_bins = paths::target().join("hull-bin");
    if !a_bins.join("hull-init").exists() {
        bail!(
            "{} holds no hull-init: build the image first (cargo xtask image)",
            a_bins.display()
        );
    }
    let b_src = base.join("b-src");
    let start = Instant::now();
    copy_sources(&sh, &ws, &b_src)?;
    eprintln!("[repro] binaries: second build from {}", b_src.display());
    // Its own target folder, in the machine's cache when possible (a fresh
    // clone then rebuilds only hull's crates there, not every dependency).
    let b_target = paths::shared_target("repro-target", b_src.join("target"));
    let b_bins = vm::build_vm_binaries_at(&sh, &b_src, &b_target, None, &vm::InitKnobs::default())?;
    let secs = start.elapsed().as_secs();
    let (da, db) = (digests(&a_bins)?, digests(&b_bins)?);
    for (name, d) in &da {
        let other = db.get(name).map(String::as_str).unwrap_or("(missing)");
        eprintln!("[repro] {name}: {d} / {other}");
    }
    let diff = differences(&da, &db);
    if !diff.is_empty() {
        bail!(
            "hull's binaries differ between {} and {}: {}",
            a_bins.display(),
            b_bins.display(),
            diff.join(", ")
        );
    }
    eprintln!(
        "[repro] {} binaries identical (second build {secs}s)",
        da.len()
    );

    // 2. The rootfs, twice from the lock; 3. the image, assembled twice
    // from it (the tarball in the cache is the one just built fresh).
    rootfs_twice(Arch::host())?;
    images_twice(Arch::host(), [&a_bins, &b_bins], &base)?;
    for n in ["a", "b"] {
        let _ = fs::remove_dir_all(base.join(format!("image-{n}")));
    }
    eprintln!("[repro] binaries and image identical");
    Ok(())
}

/// Another arch's check: its rootfs built twice from its locked set, then
/// the image assembled twice (from that rootfs and the arch's binaries in
/// `target/hull-bin-<arch>`), kernel, root and qcow2 compared. The
/// binaries are not built a second time from a copy as on the host: a
/// second cross-build in its own target folder is a cold build of the whole
/// crate graph (about 8 minutes here), and the cross toolchain gets the
/// same remapped paths (`rustflags`) as the host build whose two-folder
/// check passes.
pub fn check_foreign(arch: Arch) -> Result<()> {
    let bins = paths::target().join(format!("hull-bin-{arch}"));
    if !bins.join("hull-init").exists() {
        bail!(
            "{} holds no hull-init: build the image first (cargo xtask image --arch {arch})",
            bins.display()
        );
    }
    let base = paths::target().join(format!("repro-{arch}"));
    fs::create_dir_all(&base)?;
    rootfs_twice(arch)?;
    images_twice(arch, [&bins, &bins], &base)?;
    for n in ["a", "b"] {
        let _ = fs::remove_dir_all(base.join(format!("image-{n}")));
    }
    eprintln!("[repro] {arch}: rootfs and image identical");
    Ok(())
}

/// The image assembled twice into `base/image-{a,b}` (from the cached
/// rootfs of `arch` and `bins[0]`, `bins[1]`), failing unless kernel, root
/// and qcow2 are the same bytes.
fn images_twice(arch: Arch, bins: [&PathBuf; 2], base: &Path) -> Result<()> {
    let ws = paths::workspace();
    let k = kernel::run(&kernel::Args {
        arch,
        ..Default::default()
    })?;
    let mut reports = Vec::new();
    for (n, bins) in [("a", bins[0]), ("b", bins[1])] {
        eprintln!(
            "[repro] {arch} image {n} (the rootfs just built, binaries of {})",
            bins.display()
        );
        let start = Instant::now();
        let out = base.join(format!("image-{n}"));
        let _ = fs::remove_dir_all(&out);
        hull_image::build(&hull_image::Inputs {
            manifest: ws.join("image/manifest.toml"),
            lock: ws.join("image/packages.lock"),
            kernel: k.image.clone(),
            bin_dir: bins.to_path_buf(),
            out: out.clone(),
            cache: paths::cache(),
            fresh_rootfs: false,
            arch: (arch != Arch::host()).then(|| arch.debian().to_string()),
            variant: None,
        })?;
        eprintln!("[repro] image {n} in {}s", start.elapsed().as_secs());
        let text = fs::read_to_string(out.join("image.json"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        reports.push(v);
    }
    let mut diff = Vec::new();
    for key in ["kernel", "root", "qcow2"] {
        let a = &reports[0][key]["sha256"];
        let b = &reports[1][key]["sha256"];
        eprintln!("[repro] {key}: {a} / {b}");
        if a != b || a.is_null() {
            diff.push(key);
        }
    }
    if !diff.is_empty() {
        bail!(
            "image builds differ in {}: see {}",
            diff.join(", "),
            base.display()
        );
    }
    Ok(())
}

/// The Debian rootfs built twice from `image/packages.lock`, each time
/// fresh (mmdebstrap runs; the .debs are checked against the lock again),
/// and the two tarballs compared. The second stays as the cached rootfs.
pub fn rootfs_twice(arch: Arch) -> Result<()> {
    use hull_image::lock;
    let ws = paths::workspace();
    let mut m = hull_image::Manifest::load(&ws.join("image/manifest.toml"))?;
    let l = lock::Lock::load(&ws.join("image/packages.lock"))?;
    let set = l.set_for(
        &lock::set_name(lock::PRODUCTION, arch.debian()),
        &lock::Request::production(&m),
    )?;
    let foreign = arch != Arch::host();
    // As the image build sets it: the host's root keeps its cache key.
    m.debian.architecture = foreign.then(|| arch.debian().to_string());
    let mut sums = Vec::new();
    let mut kept = None;
    for n in ["a", "b"] {
        let start = Instant::now();
        let tar = if foreign {
            hull_image::rootfs::ensure_foreign(&m, set, arch.debian(), &paths::cache(), true)?
        } else {
            hull_image::rootfs::ensure(&m, set, &paths::cache(), true)?
        };
        let sum = sha256_file(&tar)?;
        eprintln!(
            "[repro] {arch} rootfs {n} from the lock ({} packages) in {}s: {sum}",
            set.packages.len(),
            start.elapsed().as_secs()
        );
        if n == "a" {
            let aside = tar.with_extension("repro-a.tar");
            fs::rename(&tar, &aside)?;
            kept = Some(aside);
        }
        sums.push((tar, sum));
    }
    let aside = kept.context("no first rootfs")?;
    if sums[0].1 != sums[1].1 {
        bail!(
            "the two rootfs builds from the lock differ: {} ({}) and {} ({})",
            aside.display(),
            sums[0].1,
            sums[1].0.display(),
            sums[1].1
        );
    }
    let _ = fs::remove_file(&aside);
    eprintln!("[repro] rootfs: two builds from the lock, identical");
    Ok(())
}

/// What one from-scratch kernel build made.
struct KernelBuild {
    dir: PathBuf,
    obj: PathBuf,
    unpack_secs: u64,
    make_secs: u64,
    artifacts: BTreeMap<String, String>,
}

/// Every artifact of a kernel build that ships or describes what ships.
/// There are no modules (CONFIG_MODULES=n); a `.ko` appearing is an error.
const KERNEL_ARTIFACTS: &[&str] = &[
    "arch/x86/boot/bzImage",
    "vmlinux",
    "System.map",
    ".config",
    "include/generated/compile.h",
    "include/generated/utsversion.h",
];

fn kernel_once(dir: &Path, version: &str, fragment: &str, jobs: usize) -> Result<KernelBuild> {
    let sh = Shell::new()?;
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let start = Instant::now();
    eprintln!(
        "[repro] kernel: unpacking the source into {}",
        dir.display()
    );
    cmd!(sh, "tar -C {dir} -xf /usr/src/linux-source-6.12.tar.xz").run()?;
    let src = dir.join("linux-source-6.12");
    let unpack_secs = start.elapsed().as_secs();
    let obj = dir.join("obj");
    let start = Instant::now();
    kernel::build_tree(&src, &obj, version, fragment, jobs)?;
    let make_secs = start.elapsed().as_secs();
    let mut artifacts = BTreeMap::new();
    for a in KERNEL_ARTIFACTS {
        artifacts.insert(a.to_string(), sha256_file(&obj.join(a))?);
    }
    let modules = cmd!(sh, "find {obj} -name *.ko").quiet().read()?;
    if !modules.trim().is_empty() {
        bail!("the kernel built modules although CONFIG_MODULES=n:\n{modules}");
    }
    Ok(KernelBuild {
        dir: dir.to_path_buf(),
        obj,
        unpack_secs,
        make_secs,
        artifacts,
    })
}

/// Two from-scratch kernel builds in two differently named folders (of
/// different depth, so no path of either can hide in the other's bytes).
fn kernel_twice(a: &Args) -> Result<()> {
    let version = kernel::source_version()?;
    let fragment = kernel::read_fragment()?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let base = paths::cache().join("repro-kernel");
    let dirs = [base.join("first"), base.join("second/tree")];
    let mut builds = Vec::new();
    for d in &dirs {
        let b = kernel_once(d, &version, &fragment, jobs)?;
        eprintln!(
            "[repro] kernel in {}: unpack {}s, build {}s, bzImage {}",
            b.dir.display(),
            b.unpack_secs,
            b.make_secs,
            b.artifacts["arch/x86/boot/bzImage"]
        );
        builds.push(b);
    }
    let report = serde_json::json!({
        "source": version,
        "builds": builds.iter().map(|b| serde_json::json!({
            "dir": b.dir, "unpack_secs": b.unpack_secs, "make_secs": b.make_secs,
            "sha256": b.artifacts,
        })).collect::<Vec<_>>(),
    });
    fs::write(
        base.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    for (name, d) in &builds[0].artifacts {
        eprintln!("[repro] kernel {name}: {d} / {}", builds[1].artifacts[name]);
    }
    let diff = differences(&builds[0].artifacts, &builds[1].artifacts);
    if !diff.is_empty() {
        bail!(
            "the two kernel builds differ in {}: trees kept in {} (report.json there)",
            diff.join(", "),
            base.display()
        );
    }
    // What the image ships must be what a build from scratch gives: an
    // existing cache entry is compared, a missing one is filled from here.
    let out = kernel::cache_dir(&version, &fragment);
    let fresh = &builds[0].artifacts["arch/x86/boot/bzImage"];
    if out.join("bzImage").exists() {
        let cached = sha256_file(&out.join("bzImage"))?;
        if &cached != fresh {
            bail!(
                "the cached kernel {} ({cached}) differs from two identical builds from scratch ({fresh})",
                out.display()
            );
        }
        eprintln!("[repro] kernel: the cached kernel is the same bytes");
    } else {
        kernel::publish(&builds[0].obj, &out, &version)?;
        eprintln!("[repro] kernel: cache entry {} filled", out.display());
    }
    if !a.keep {
        for b in &builds {
            let _ = fs::remove_dir_all(&b.dir);
        }
    }
    eprintln!("[repro] kernel: two builds from scratch, identical");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_release_is_read_from_the_channel() {
        let t = "# channel = comment\n[toolchain]\nchannel = \"1.95.0\"\n";
        assert_eq!(parse_pinned(t).as_deref(), Some("1.95.0"));
        assert_eq!(parse_pinned("channel = \"stable\"\n"), None);
        assert_eq!(parse_pinned("channel = \"nightly-2026-01-01\"\n"), None);
    }

    #[test]
    fn the_workspace_pins_a_release() {
        let v = pinned_rustc().unwrap();
        assert_eq!(v.split('.').count(), 3, "{v}");
    }

    #[test]
    fn differences_name_changed_and_missing_files() {
        let a: BTreeMap<String, String> =
            [("x".into(), "1".into()), ("y".into(), "2".into())].into();
        let b: BTreeMap<String, String> =
            [("x".into(), "1".into()), ("z".into(), "3".into())].into();
        assert_eq!(differences(&a, &b), vec!["y".to_string(), "z".to_string()]);
        assert!(differences(&a, &a).is_empty());
    }
}
