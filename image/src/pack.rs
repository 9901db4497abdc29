//! Packing: the staged root becomes a read-only erofs image (the raw disk the
//! VM boots from) with its dm-verity hash tree appended ([`crate::verity`]),
//! plus its qcow2 form for desktop VM managers; the kernel is copied beside
//! them.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::manifest::Manifest;
use crate::verity::{self, Verity};
use crate::{io_err, run, Result};

pub const KERNEL: &str = "vmlinuz";
pub const ROOT_RAW: &str = "root.erofs";
pub const ROOT_QCOW2: &str = "root.qcow2";

#[derive(Debug, Clone)]
pub struct Packed {
    pub kernel: PathBuf,
    pub root: PathBuf,
    pub qcow2: PathBuf,
    pub verity: Verity,
}

pub fn pack(m: &Manifest, stage: &Path, kernel: &Path, out: &Path) -> Result<Packed> {
    let (kernel_out, root, qcow2) = (out.join(KERNEL), out.join(ROOT_RAW), out.join(ROOT_QCOW2));
    for f in [&kernel_out, &root, &qcow2] {
        let _ = fs::remove_file(f);
    }
    let mut mkfs = Command::new("mkfs.erofs");
    mkfs.arg("--quiet")
        .arg(format!("-T{}", m.image.source_date_epoch))
        .arg(format!("-U{}", m.image.filesystem_uuid));
    if m.image.compression != "none" {
        mkfs.arg(format!("-z{}", m.image.compression));
    }
    mkfs.arg(&root).arg(stage);
    run(&mut mkfs)?;
    // Before the qcow2 conversion: the qcow2 carries the tree too.
    let verity = verity::append_tree(&root)?;
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&root)
        .arg(&qcow2))?;
    fs::copy(kernel, &kernel_out).map_err(io_err(kernel))?;
    Ok(Packed {
        kernel: kernel_out,
        root,
        qcow2,
        verity,
    })
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
