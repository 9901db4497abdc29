//! dm-verity for the root: a sha256 hash tree of root.erofs, appended to the
//! same file, whose root hash the host puts on the kernel command line.
//!
//! The tree lives in root.erofs itself, after the filesystem (`--hash-offset`
//! = the erofs size): one file to ship, copy (`hull system install`), convert
//! to qcow2 and attach, so the tree can never be paired with another
//! release's root; erofs ignores what follows its last block. No verity
//! superblock (`--no-superblock`): everything the kernel needs is in the
//! table hull builds from image.json, and a superblock would add a random
//! UUID to the image. The salt is the sha256 of the filesystem, so the same
//! erofs gives the same tree (the image stays byte-reproducible).

use std::fs;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::pack::sha256_file;
use crate::{io_err, run, Error, Result};

/// Data and hash block size: erofs's block size, and the page size.
pub const BLOCK: u64 = 4096;
pub const ALGORITHM: &str = "sha256";

/// What image.json records about the tree; the host builds the kernel's
/// `dm-mod.create` table from it (hull-qemu's `RootVerity` reads it back).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verity {
    /// Always `sha256`.
    pub algorithm: String,
    pub data_block_size: u64,
    pub hash_block_size: u64,
    /// Blocks of filesystem covered by the tree (the erofs, padded to a block).
    pub data_blocks: u64,
    /// Byte offset of the hash tree in root.erofs (= data_blocks * 4096).
    pub hash_offset: u64,
    /// The same, in hash blocks: the table's `<hash_start_block>`.
    pub hash_start_block: u64,
    /// Hex, the sha256 of the filesystem part of root.erofs.
    pub salt: String,
    /// Hex: what the kernel checks every block against.
    pub root_hash: String,
}

/// Pads `root` to a whole block, appends its hash tree and returns the figures.
pub fn append_tree(root: &Path) -> Result<Verity> {
    let len = fs::metadata(root).map_err(io_err(root))?.len();
    if len % BLOCK != 0 {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(root)
            .map_err(io_err(root))?;
        f.set_len(len.div_ceil(BLOCK) * BLOCK)
            .map_err(io_err(root))?;
    }
    let data_bytes = len.div_ceil(BLOCK) * BLOCK;
    let data_blocks = data_bytes / BLOCK;
    let salt = sha256_file(root)?;
    let out = run(Command::new("veritysetup")
        .arg("format")
        .arg("--no-superblock")
        .arg(format!("--hash={ALGORITHM}"))
        .arg(format!("--data-block-size={BLOCK}"))
        .arg(format!("--hash-block-size={BLOCK}"))
        .arg(format!("--data-blocks={data_blocks}"))
        .arg(format!("--hash-offset={data_bytes}"))
        .arg(format!("--salt={salt}"))
        .arg(root)
        .arg(root))?;
    let root_hash = parse_root_hash(&out).ok_or_else(|| {
        Error::Other(format!(
            "veritysetup format of {} printed no `Root hash:` line:\n{out}",
            root.display()
        ))
    })?;
    Ok(Verity {
        algorithm: ALGORITHM.into(),
        data_block_size: BLOCK,
        hash_block_size: BLOCK,
        data_blocks,
        hash_offset: data_bytes,
        hash_start_block: data_bytes / BLOCK,
        salt,
        root_hash,
    })
}

/// The `Root hash:` line of `veritysetup format`: 64 hex digits.
pub fn parse_root_hash(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let h = l.strip_prefix("Root hash:")?.trim();
        (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| h.to_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_hash_line() {
        let out = "VERITY header information for x\nSalt:            \tab\nRoot hash:      \tCAEAECCFAA31CEDCBFCB63EF3C8B87C24D9FF593A3A50F1BD5EA414C5B7565AA\n";
        assert_eq!(
            parse_root_hash(out).as_deref(),
            Some("caeaeccfaa31cedcbfcb63ef3c8b87c24d9ff593a3a50f1bd5ea414c5b7565aa")
        );
        assert_eq!(parse_root_hash("Root hash: xyz\n"), None);
        assert_eq!(parse_root_hash(""), None);
    }
}
