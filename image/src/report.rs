//! The size report printed after a build and stored as `image.json`.

use std::fmt;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::manifest::Manifest;
use crate::pack::{sha256_file, Packed};
use crate::stage::Staged;
use crate::verity::Verity;
use crate::{io_err, run, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `shipped`, or the manifest variant this image is (e.g. `bench`).
    pub variant: String,
    pub suite: String,
    pub kernel: Artifact,
    pub root: Artifact,
    pub qcow2: Artifact,
    /// The root's dm-verity tree (appended to root.erofs): what the host
    /// tells the kernel to check every block of the root against.
    pub verity: Verity,
    /// Bytes of file content in the root before compression.
    pub root_uncompressed_bytes: u64,
    pub root_files: u64,
    /// The biggest Debian packages by installed size (KiB), largest first.
    pub biggest_packages: Vec<(String, u64)>,
}

fn artifact(p: &Path) -> Result<Artifact> {
    Ok(Artifact {
        file: p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes: fs::metadata(p).map_err(io_err(p))?.len(),
        sha256: sha256_file(p)?,
    })
}

pub fn make(m: &Manifest, staged: &Staged, packed: &Packed, tar: &Path) -> Result<Report> {
    Ok(Report {
        variant: "shipped".into(),
        suite: m.debian.suite.clone(),
        kernel: artifact(&packed.kernel)?,
        root: artifact(&packed.root)?,
        qcow2: artifact(&packed.qcow2)?,
        verity: packed.verity.clone(),
        root_uncompressed_bytes: staged.bytes,
        root_files: staged.files,
        biggest_packages: packages(tar).unwrap_or_default(),
    })
}

/// Installed sizes read from dpkg's status file inside the rootfs tarball.
fn packages(tar: &Path) -> Result<Vec<(String, u64)>> {
    let status = run(Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg("./var/lib/dpkg/status"))?;
    let mut v = parse_status(&status);
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(10);
    Ok(v)
}

pub fn parse_status(status: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for para in status.split("\n\n") {
        let mut name = None;
        let mut size = None;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Installed-Size: ") {
                size = v.trim().parse::<u64>().ok();
            }
        }
        if let (Some(n), Some(s)) = (name, size) {
            out.push((n, s));
        }
    }
    out
}

impl Report {
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        fs::write(path, json + "\n").map_err(io_err(path))
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kernel      {:>8.1} MiB  {}",
            mib(self.kernel.bytes),
            self.kernel.file
        )?;
        writeln!(
            f,
            "root (erofs) {:>7.1} MiB  {} ({:.1} MiB uncompressed, {} files, {:.0}%)",
            mib(self.root.bytes),
            self.root.file,
            mib(self.root_uncompressed_bytes),
            self.root_files,
            100.0 * self.root.bytes as f64 / self.root_uncompressed_bytes.max(1) as f64
        )?;
        writeln!(
            f,
            "root (qcow2) {:>7.1} MiB  {}",
            mib(self.qcow2.bytes),
            self.qcow2.file
        )?;
        writeln!(
            f,
            "root verity  {} {} data blocks, tree at byte {}, root hash {}",
            self.verity.algorithm,
            self.verity.data_blocks,
            self.verity.hash_offset,
            self.verity.root_hash
        )?;
        writeln!(f, "biggest packages ({}):", self.suite)?;
        for (name, kib) in &self.biggest_packages {
            writeln!(f, "  {:>8.1} MiB  {name}", *kib as f64 / 1024.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing() {
        let s = "Package: a\nInstalled-Size: 10\n\nPackage: b\nStatus: x\n\nPackage: c\nInstalled-Size: 5\n";
        assert_eq!(parse_status(s), vec![("a".into(), 10), ("c".into(), 5)]);
    }
}
