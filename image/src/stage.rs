//! The staged root: the rootfs unpacked, stripped, and hull's files added.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::manifest::{parse_mode, Manifest, Source};
use crate::{io_err, run, Error, Result};

/// What staging measured, for the report.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Bytes of regular file content in the staged root.
    pub bytes: u64,
    pub files: u64,
}

pub fn prepare(
    m: &Manifest,
    base: &Path,
    tar: &Path,
    bin_dir: &Path,
    dir: &Path,
) -> Result<Staged> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    // Numeric owners and xattrs (file capabilities) exactly as dpkg left them.
    run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
        .arg(tar))?;
    strip(m, dir)?;
    move_aside(m, dir)?;
    add_files(m, base, bin_dir, dir)?;
    crate::vmconf::write_vm(m, dir)?;
    measure(dir)
}

fn inside(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

fn strip(m: &Manifest, root: &Path) -> Result<()> {
    for pattern in &m.strip.remove {
        let full = inside(root, pattern);
        let paths = glob::glob(&full.to_string_lossy())
            .map_err(|e| Error::Other(format!("strip pattern {pattern:?}: {e}")))?;
        for p in paths.flatten() {
            let meta = fs::symlink_metadata(&p).map_err(io_err(&p))?;
            if meta.is_dir() {
                fs::remove_dir_all(&p).map_err(io_err(&p))?;
            } else {
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
    }
    Ok(())
}

fn move_aside(m: &Manifest, root: &Path) -> Result<()> {
    for mv in &m.moves {
        let from = inside(root, &mv.from);
        let to = inside(root, &mv.to);
        if fs::symlink_metadata(&from).is_err() {
            return Err(Error::Other(format!(
                "move {} -> {}: {} is not in the Debian root",
                mv.from, mv.to, mv.from
            )));
        }
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::rename(&from, &to).map_err(io_err(&from))?;
    }
    Ok(())
}

fn add_files(m: &Manifest, base: &Path, bin_dir: &Path, root: &Path) -> Result<()> {
    for d in &m.dirs {
        let p = inside(root, &d.path);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
        set_mode(&p, parse_mode(&d.mode).map_err(Error::Other)?)?;
    }
    for f in &m.files {
        let dest = inside(root, &f.dest);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        // Never write through a symlink the rootfs may have at that path.
        if fs::symlink_metadata(&dest).is_ok() {
            fs::remove_file(&dest).map_err(io_err(&dest))?;
        }
        match f.source().map_err(Error::Other)? {
            Source::Binary(name) => {
                let src = bin_dir.join(name);
                fs::copy(&src, &dest).map_err(io_err(&src))?;
            }
            Source::Path(rel) => {
                let src = base.join(rel);
                fs::copy(&src, &dest).map_err(io_err(&src))?;
            }
            Source::Content(text) => fs::write(&dest, text).map_err(io_err(&dest))?,
        }
        set_mode(&dest, parse_mode(&f.mode).map_err(Error::Other)?)?;
        std::os::unix::fs::chown(&dest, Some(0), Some(0)).map_err(io_err(&dest))?;
    }
    for s in &m.symlinks {
        let p = inside(root, &s.path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        if let Ok(meta) = fs::symlink_metadata(&p) {
            if meta.is_dir() {
                fs::remove_dir_all(&p).map_err(io_err(&p))?;
            } else {
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        symlink(&s.target, &p).map_err(io_err(&p))?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(io_err(p))
}

fn measure(root: &Path) -> Result<Staged> {
    let mut s = Staged { bytes: 0, files: 0 };
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io_err(&d))? {
            let e = e.map_err(io_err(&d))?;
            let meta = e.metadata().map_err(io_err(&e.path()))?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                s.files += 1;
                if meta.is_file() {
                    s.bytes += meta.len();
                }
            }
        }
    }
    Ok(s)
}
