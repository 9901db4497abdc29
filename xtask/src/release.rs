//! `cargo xtask release`: one versioned release bundle (issue 18 item 4),
//! `target/release/hull-<version>-<arch>/` and its `.tar`: the image
//! folder's files (kernel, root with its verity tree and its qcow2 form,
//! image.json, boot.json with the kernel command line, the SBOM) and `bundle.json` listing each file's size and sha256
//! with the hull version and git commit. The format and its check are
//! hull-qemu's `bundle` module: `hull up --image <bundle>` verifies it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hull_qemu::bundle::{self, Bundle};

use crate::{paths, vm};
use hull_qemu::arch::Arch;

#[derive(clap::Args, Default, Clone)]
pub struct Args {
    /// Bundle this image folder instead of building one.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Folder to write the bundle and its tarball into (default target/release).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write only the folder, no tarball.
    #[arg(long)]
    pub no_tar: bool,
    /// Skip `cargo xtask deps` when building the image.
    #[arg(long)]
    pub no_deps: bool,
    /// Guest architecture of the image to build (default: the host's).
    /// With --image, the image's own (its kernel's) is used, and a
    /// different --arch is refused.
    #[arg(long)]
    pub arch: Option<Arch>,
}

pub struct Written {
    pub dir: PathBuf,
    pub tar: Option<PathBuf>,
    pub bundle: Bundle,
}

pub fn run(args: &Args) -> Result<()> {
    let t = Instant::now();
    let image = match &args.image {
        Some(i) => i.clone(),
        None => vm::image(&vm::ImageArgs {
            no_deps: args.no_deps,
            arch: args.arch,
            ..Default::default()
        })?,
    };
    let arch = image_arch(&image)?;
    if let Some(asked) = args.arch.filter(|a| *a != arch) {
        bail!(
            "--arch {asked}: the image {} is {arch} (its vmlinuz)",
            image.display()
        );
    }
    let parent = args
        .out
        .clone()
        .unwrap_or_else(|| paths::target().join("release"));
    let w = write(&image, arch, &parent, !args.no_tar)?;
    let bytes: u64 = w.bundle.files.values().map(|e| e.bytes).sum();
    eprintln!(
        "[release] {} (hull {}, commit {}): {} files, {:.1} MiB, in {:.1}s",
        w.dir.display(),
        w.bundle.version,
        w.bundle.commit,
        w.bundle.files.len() + 1,
        bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    for (n, e) in &w.bundle.files {
        eprintln!(
            "[release]   {n:<14} {:>10} bytes  sha256 {}",
            e.bytes, e.sha256
        );
    }
    if let Some(tar) = &w.tar {
        let tb = fs::metadata(tar)?.len();
        eprintln!(
            "[release] {} ({:.1} MiB)",
            tar.display(),
            tb as f64 / 1048576.0
        );
    }
    Ok(())
}

/// The bundle's name: `hull-<version>-<arch>` (`x86_64`, `arm64`: the
/// guest's, which need not be the builder's).
pub fn name(arch: Arch) -> String {
    format!("hull-{}-{arch}", env!("CARGO_PKG_VERSION"))
}

/// The architecture of an image folder, read from its kernel (as `hull up`
/// reads it).
pub fn image_arch(image: &Path) -> Result<Arch> {
    Arch::of_kernel(&image.join(hull_image::pack::KERNEL)).map_err(anyhow::Error::msg)
}

/// The commit of this checkout (the walls report's helper: short hash,
/// `+dirty` when tracked files changed); a release must name one.
fn commit() -> Result<String> {
    let c = crate::weaken::commit();
    if c.starts_with("unknown") {
        bail!(
            "cannot tell the git commit of {}: a release must name it",
            paths::workspace().display()
        );
    }
    Ok(c)
}

/// Writes the bundle of `image` into `parent`, replacing an older one of
/// the same name, with its tarball when `tar`.
pub fn write(image: &Path, arch: Arch, parent: &Path, tar: bool) -> Result<Written> {
    let name = name(arch);
    let dir = parent.join(&name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing the old {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files: Vec<&str> = bundle::REQUIRED.to_vec();
    if let Some(missing) = files.iter().find(|f| !image.join(f).exists()) {
        bail!(
            "{} has no {missing}: build the image with `cargo xtask image [--arch <arch>]` first (a variant is not a release)",
            image.display()
        );
    }
    // A file the image build added that this list does not know would
    // silently not ship: say so.
    for e in fs::read_dir(image).with_context(|| image.display().to_string())? {
        let n = e?.file_name().to_string_lossy().into_owned();
        if !files.contains(&n.as_str()) && !n.starts_with('.') {
            eprintln!(
                "[release] WARNING: {}/{n} is not part of the bundle (not in hull_qemu::bundle::REQUIRED)",
                image.display()
            );
        }
    }
    for f in &files {
        let src = image.join(f);
        if !src.is_file() {
            bail!(
                "{}: {f} is missing; rebuild the image with `cargo xtask image`",
                image.display()
            );
        }
        fs::copy(&src, dir.join(f)).with_context(|| format!("copying {}", src.display()))?;
    }
    let b = bundle::write(
        &dir,
        &name,
        env!("CARGO_PKG_VERSION"),
        &commit()?,
        arch.as_str(),
    )?;
    let tar_path = if tar {
        let p = parent.join(format!("{name}.tar"));
        // Same bundle, same tarball: fixed order, owners and times.
        let st = Command::new("tar")
            .arg("-C")
            .arg(parent)
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mtime=@0",
                "--format=gnu",
                "-cf",
            ])
            .arg(&p)
            .arg(&name)
            .status()
            .context("running tar")?;
        if !st.success() {
            bail!("tar of {} failed: {st}", dir.display());
        }
        Some(p)
    } else {
        None
    };
    Ok(Written {
        dir,
        tar: tar_path,
        bundle: b,
    })
}
