//! hull-image: the VM image, from a TOML manifest to a read-only erofs root.
//!
//! The steps, each its own module: [`manifest`] (what to build), [`rootfs`]
//! (Debian root from mmdebstrap, pinned by [`lock`], cached by the lock's
//! hash), [`stage`] (unpack,
//! strip, add hull's files), [`pack`] (erofs + its [`verity`] hash tree +
//! qcow2), [`report`] (sizes and the verity figures), [`vmconf`] (the
//! manifest's VM configuration: boot.json for the host, vm.json for init);
//! [`sbom`] lists what is inside.

pub mod foreign;
pub mod lock;
pub mod manifest;
pub mod pack;
pub mod report;
pub mod rootfs;
pub mod sbom;
pub mod stage;
pub mod verity;
pub mod vmconf;

use std::fs;
use std::path::{Path, PathBuf};

pub use manifest::Manifest;
pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Everything one image build needs.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub manifest: PathBuf,
    /// `packages.lock`: the Debian packages, pinned (its production set).
    pub lock: PathBuf,
    /// The kernel to ship beside the root (bzImage).
    pub kernel: PathBuf,
    /// Folder holding the cargo binaries that `binary =` entries name.
    pub bin_dir: PathBuf,
    /// Output folder: vmlinuz, root.erofs, root.qcow2, image.json, boot.json.
    pub out: PathBuf,
    /// Cache folder for rootfs tarballs (`<cache>/rootfs/<hash>.tar`).
    pub cache: PathBuf,
    /// Build the rootfs afresh even when a cached one exists.
    pub fresh_rootfs: bool,
    /// Debian architecture of the root (`arm64`); `None`: the build
    /// machine's own.
    pub arch: Option<String>,
    /// A `[variant.<name>]` of the manifest (e.g. `bench`); `None` builds
    /// the shipped image.
    pub variant: Option<String>,
}

/// Builds the image and returns its size report.
pub fn build(inputs: &Inputs) -> Result<Report> {
    let mut manifest = Manifest::load(&inputs.manifest)?
        .variant(inputs.variant.as_deref())
        .map_err(|message| Error::Manifest {
            path: inputs.manifest.clone(),
            message,
        })?;
    manifest.debian.architecture = inputs.arch.clone();
    let base = inputs
        .manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // A variant's root is a set of its own in the lock (the shipped
    // packages plus the variant's, resolved together), and so is every
    // architecture's (`lock::set_name`).
    let lock = lock::Lock::load(&inputs.lock)?;
    let base_name = inputs.variant.as_deref().unwrap_or(lock::PRODUCTION);
    let native = foreign::native_arch()?;
    let tar = match manifest.debian.architecture.clone() {
        Some(arch) if arch != native => {
            let name = lock::set_name(base_name, &arch);
            let set = lock.set_for(&name, &lock::Request::production(&manifest))?;
            rootfs::ensure_foreign(&manifest, set, &arch, &inputs.cache, inputs.fresh_rootfs)?
        }
        _ => {
            let name = lock::set_name(base_name, &native);
            let set = lock.set_for(&name, &lock::Request::production(&manifest))?;
            rootfs::ensure(&manifest, set, &inputs.cache, inputs.fresh_rootfs)?
        }
    };
    fs::create_dir_all(&inputs.out).map_err(io_err(&inputs.out))?;
    let stage_dir = inputs.out.join(".stage");
    let staged = stage::prepare(&manifest, &base, &tar, &inputs.bin_dir, &stage_dir)?;
    let packed = pack::pack(&manifest, &stage_dir, &inputs.kernel, &inputs.out);
    let report = packed.and_then(|p| report::make(&manifest, &staged, &p, &tar));
    // The staged tree is only an intermediate; keep the disk clean either way.
    let _ = fs::remove_dir_all(&stage_dir);
    let mut report = report?;
    report.variant = inputs.variant.clone().unwrap_or_else(|| "shipped".into());
    report.write(&inputs.out.join("image.json"))?;
    vmconf::write_boot(&manifest, &inputs.out)?;
    Ok(report)
}

/// Runs a command, turning a failure into an error that names it and shows its stderr.
pub(crate) fn run(cmd: &mut std::process::Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        return Err(Error::Command {
            command: shown,
            detail: format!(
                "{}\n{}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
