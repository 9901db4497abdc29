//! The verified root (dm-verity, issue 18 item 1): the VM's root is the
//! kernel's verity mapping of root.erofs, `hull status` shows the root hash
//! the image was built with, and a root.erofs with one changed byte in a
//! block the boot reads does not boot: the kernel names the block and stops.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use hull_image::pack::{KERNEL, ROOT_RAW};
use hull_qemu::machine::{RootVerity, BOOT_JSON, IMAGE_JSON};

use super::boot;
use super::vm::Vm;
use super::Args;

/// `hull status` reports the root as verified, with the root hash of the
/// image's image.json, and init found / mounted from dm-0 named hull-root.
pub fn status_root_hash(vm: &Vm) -> Result<()> {
    let want = RootVerity::load(&vm.image).map_err(anyhow::Error::msg)?;
    let st = vm.status()?;
    let root = &st["guest"]["root"];
    ensure!(
        root["verified"] == true,
        "init does not report a verified root: {root}"
    );
    ensure!(
        root["root_hash"] == want.root_hash.as_str(),
        "root hash in the VM {} != image.json's {}",
        root["root_hash"],
        want.root_hash
    );
    ensure!(root["dm_name"] == "hull-root", "{root}");
    ensure!(
        root["root_dev"].is_string() && root["root_dev"] == root["dm0_dev"],
        "/ is not mounted from dm-0: {root}"
    );
    let human = vm.hull_cmd(&["status"])?.success()?;
    let line = format!(
        "root      verified (dm-verity), root hash {}",
        want.root_hash
    );
    ensure!(
        human.stdout.contains(&line),
        "`hull status` lacks {line:?}:\n{}",
        human.stdout
    );
    Ok(())
}

/// One changed byte per case, each in a block the boot must read, booted
/// through the host's own machine description (so with the image's table):
/// the kernel logs that exact data block as corrupted, panics, QEMU ends,
/// and init never starts.
pub fn corrupt_block(args: &Args, image: &Path) -> Result<()> {
    let dir = boot::tempdir()?;
    let r = corrupt_cases(args, image, &dir);
    let _ = fs::remove_dir_all(&dir);
    r
}

fn corrupt_cases(args: &Args, image: &Path, dir: &Path) -> Result<()> {
    for f in [KERNEL, ROOT_RAW, IMAGE_JSON, BOOT_JSON] {
        fs::copy(image.join(f), dir.join(f)).with_context(|| format!("copying {f}"))?;
    }
    let verity = RootVerity::load(dir).map_err(anyhow::Error::msg)?;
    let root = dir.join(ROOT_RAW);
    let init_block = first_block_of(&root, "/usr/sbin/hull-init")?;
    let cases = [
        // Bytes 0..1024 of an erofs are padding before its superblock:
        // erofs itself never looks at them, so only verity can notice (the
        // mount reads the whole block).
        ("erofs block 0, before the superblock (read at mount)", 0u64),
        // The first compressed cluster of PID 1's program (exec reads it).
        (
            "first block of /usr/sbin/hull-init (read at exec)",
            init_block,
        ),
    ];
    for (what, block) in cases {
        ensure!(
            block < verity.data_blocks,
            "{what}: block {block} is outside the {} verified data blocks",
            verity.data_blocks
        );
        // The middle of the block: a change anywhere in it must be caught.
        let offset = block * verity.data_block_size + 100;
        let old = flip(&root, offset)?;
        let f = boot::boot_once(args, dir, &["hull.selftest"], Duration::from_secs(300));
        restore(&root, offset, old)?;
        let f = f.with_context(|| format!("{what}: booting the changed root"))?;
        let needle = format!(": data block {block} is corrupted");
        let Some(line) = f
            .console
            .lines()
            .find(|l| l.contains("device-mapper: verity: ") && l.contains(&needle))
        else {
            bail!(
                "{what}: byte {offset} (block {block}) changed, but the kernel never logged \
                 `device-mapper: verity: ...{needle}` (was the block read at all?); qemu exit {:?}, console:\n{}",
                f.code,
                f.console
            );
        };
        ensure!(
            f.console
                .contains("Kernel panic - not syncing: dm-verity device corrupted"),
            "{what}: no verity panic; console:\n{}",
            f.console
        );
        ensure!(
            !f.console.contains("hull-init: starting") && !f.console.contains("selftest PASSED"),
            "{what}: init ran on a changed root; console:\n{}",
            f.console
        );
        eprintln!(
            "    {what}: byte {offset} flipped -> `{}`, QEMU ended (exit {:?}) after {:.1}s",
            line.trim(),
            f.code,
            f.wall.as_secs_f64()
        );
    }
    Ok(())
}

/// The first physical block of a file in an erofs image, from `dump.erofs -e`
/// (extent table: ` 0: <logical>..<end> | <len> : <physical>..<end> | <len>`).
fn first_block_of(root: &Path, path: &str) -> Result<u64> {
    let out = std::process::Command::new("dump.erofs")
        .arg(format!("--path={path}"))
        .arg("-e")
        .arg(root)
        .output()
        .context("running dump.erofs (package erofs-utils)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let phys = text
        .lines()
        .find(|l| l.trim_start().starts_with("0:"))
        .and_then(|l| l.split('|').nth(1))
        .and_then(|p| p.split(':').nth(1))
        .and_then(|p| p.split("..").next())
        .and_then(|p| p.trim().parse::<u64>().ok())
        .with_context(|| {
            format!(
                "dump.erofs listed no first extent of {path}:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    ensure!(
        phys % 4096 == 0,
        "{path}: extent at byte {phys} is not block-aligned"
    );
    Ok(phys / 4096)
}

/// Inverts one bit of the byte at `offset`; returns the byte it was.
fn flip(file: &Path, offset: u64) -> Result<u8> {
    let mut f = fs::OpenOptions::new().read(true).write(true).open(file)?;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut b)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&[b[0] ^ 0x01])?;
    f.sync_all()?;
    Ok(b[0])
}

fn restore(file: &Path, offset: u64, byte: u8) -> Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(file)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&[byte])?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// image.json's `verity` (hull-image) is what the host reads (hull-qemu).
    #[test]
    fn the_image_writes_what_the_host_reads() {
        let v = hull_image::verity::Verity {
            algorithm: "sha256".into(),
            data_block_size: 4096,
            hash_block_size: 4096,
            data_blocks: 10,
            hash_offset: 40960,
            hash_start_block: 10,
            salt: "ab".repeat(32),
            root_hash: "cd".repeat(32),
        };
        let json = serde_json::json!({"suite": "trixie", "verity": v}).to_string();
        let r = RootVerity::parse(&json)
            .map_err(anyhow::Error::msg)
            .unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::to_value(&v).unwrap()
        );
    }
}
