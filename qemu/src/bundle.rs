//! A release bundle (issue 18 item 4): one folder with the kernel, the root
//! with its verity tree, its qcow2 form, image.json, boot.json (the kernel
//! command line), the SBOM, and `bundle.json`: the
//! hull version and commit, and every other file's size and sha256.
//! `cargo xtask release` writes it ([`write`]); `hull up --image <bundle>`
//! checks it ([`verify`]) before anything boots, and refuses a bundle with a
//! changed, missing or extra file, naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The listing; the only file of a bundle not listed in itself.
pub const BUNDLE_JSON: &str = "bundle.json";
const FORMAT: u32 = 1;
const MAX_LISTING_BYTES: u64 = 64 * 1024;

/// Files every bundle has (the image folder's, see hull-image): a listing
/// without one of them is refused even when the hashes match.
pub const REQUIRED: &[&str] = &[
    "vmlinuz",
    "root.erofs",
    "root.qcow2",
    crate::machine::IMAGE_JSON,
    crate::machine::BOOT_JSON,
    SBOM,
];
/// The SBOM (CycloneDX), written into the image folder by `cargo xtask
/// image`: every Debian package and Rust crate inside.
pub const SBOM: &str = "sbom.cdx.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub bytes: u64,
    pub sha256: String,
}

/// `bundle.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: u32,
    /// `hull-<version>-<arch>`, the folder's and the tarball's name.
    pub name: String,
    pub version: String,
    /// The git commit the bundle was built from (`-dirty` if the tree had
    /// uncommitted changes).
    pub commit: String,
    pub arch: String,
    pub files: BTreeMap<String, Entry>,
}

/// What is wrong with a bundle; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bundle {dir}: {file} was changed (sha256 {got}, the bundle lists {want})")]
    Changed {
        dir: PathBuf,
        file: String,
        want: String,
        got: String,
    },
    #[error("bundle {dir}: {file} was changed (size {got} bytes, the bundle lists {want})")]
    Resized {
        dir: PathBuf,
        file: String,
        want: u64,
        got: u64,
    },
    #[error("bundle {dir}: {file} is missing (the bundle lists it)")]
    Missing { dir: PathBuf, file: String },
    #[error("bundle {dir}: {file} is not part of the bundle (not in {BUNDLE_JSON}); remove it")]
    Extra { dir: PathBuf, file: String },
    #[error("bundle {dir}: {BUNDLE_JSON} does not list {file}, which every bundle has")]
    Unlisted { dir: PathBuf, file: String },
    #[error("bundle {dir}: {file} is not a regular file")]
    NotFile { dir: PathBuf, file: String },
    #[error("bundle {dir}: {BUNDLE_JSON} says arch {listed:?}, but its vmlinuz is {kernel}")]
    Arch {
        dir: PathBuf,
        listed: String,
        kernel: String,
    },
    #[error("bundle {dir}: {why}")]
    Kernel { dir: PathBuf, why: String },
    #[error("bundle {dir}: {BUNDLE_JSON} is malformed: {why}")]
    Listing { dir: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The bundle's `arch` must be its kernel's (read from the header, as
/// `hull up` reads it to pick the emulator): a bundle claiming x86_64 with
/// an arm64 kernel inside is refused, so its name and listing never lie
/// about what boots.
fn check_arch(dir: &Path, listed: &str) -> Result<(), Error> {
    let kernel =
        crate::arch::Arch::of_kernel(&dir.join("vmlinuz")).map_err(|why| Error::Kernel {
            dir: dir.to_path_buf(),
            why,
        })?;
    if kernel.as_str() != listed {
        return Err(Error::Arch {
            dir: dir.to_path_buf(),
            listed: listed.into(),
            kernel: kernel.as_str().into(),
        });
    }
    Ok(())
}

/// Whether `dir` is a release bundle (rather than a build's image folder).
pub fn is_bundle(dir: &Path) -> bool {
    dir.join(BUNDLE_JSON).exists()
}

/// The size and sha256 of a file.
pub fn digest(path: &Path) -> Result<Entry, Error> {
    let mut f = fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        h.update(&buf[..n]);
    }
    let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Entry { bytes, sha256 })
}

/// A name of a file directly in the bundle: no separators, no dot names.
fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Hashes the files `names` of `dir` two at a time (the root and its qcow2
/// form are most of the bytes).
fn digest_all(dir: &Path, names: &[&str]) -> Vec<(String, Result<Entry, Error>)> {
    let next = std::sync::Mutex::new(names.iter());
    let out = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let name = match next.lock() {
                    Ok(mut it) => it.next().copied(),
                    Err(_) => None,
                };
                let Some(name) = name else { break };
                let r = digest(&dir.join(name));
                if let Ok(mut o) = out.lock() {
                    o.push((name.to_string(), r));
                }
            });
        }
    });
    let mut v = out.into_inner().unwrap_or_default();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Lists every file of `dir` (all must be regular files with plain names)
/// into `dir/bundle.json`. Fails when one of [`REQUIRED`] is missing.
pub fn write(
    dir: &Path,
    name: &str,
    version: &str,
    commit: &str,
    arch: &str,
) -> Result<Bundle, Error> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n == BUNDLE_JSON {
            continue;
        }
        if !plain(&n) || !e.file_type().map_err(io(&e.path()))?.is_file() {
            return Err(Error::NotFile {
                dir: dir.to_path_buf(),
                file: n,
            });
        }
        names.push(n);
    }
    for r in REQUIRED {
        if !names.iter().any(|n| n == r) {
            return Err(Error::Missing {
                dir: dir.to_path_buf(),
                file: r.to_string(),
            });
        }
    }
    check_arch(dir, arch)?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut files = BTreeMap::new();
    for (n, r) in digest_all(dir, &refs) {
        files.insert(n, r?);
    }
    let b = Bundle {
        format: FORMAT,
        name: name.into(),
        version: version.into(),
        commit: commit.into(),
        arch: arch.into(),
        files,
    };
    let p = dir.join(BUNDLE_JSON);
    let text = serde_json::to_string_pretty(&b).map_err(|e| Error::Listing {
        dir: dir.to_path_buf(),
        why: e.to_string(),
    })?;
    fs::write(&p, text + "\n").map_err(io(&p))?;
    Ok(b)
}

/// Reads `dir/bundle.json` without checking the files (for `hull status`).
pub fn read(dir: &Path) -> Result<Bundle, Error> {
    let p = dir.join(BUNDLE_JSON);
    let mut text = String::new();
    fs::File::open(&p)
        .and_then(|f| f.take(MAX_LISTING_BYTES + 1).read_to_string(&mut text))
        .map_err(io(&p))?;
    let bad = |why: String| Error::Listing {
        dir: dir.to_path_buf(),
        why,
    };
    if text.len() as u64 > MAX_LISTING_BYTES {
        return Err(bad(format!("larger than {MAX_LISTING_BYTES} bytes")));
    }
    let b: Bundle = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if b.format != FORMAT {
        return Err(bad(format!(
            "format {} (this hull reads format {FORMAT})",
            b.format
        )));
    }
    for (n, e) in &b.files {
        if !plain(n) || n == BUNDLE_JSON {
            return Err(bad(format!("file name {n:?} is not a file of the bundle")));
        }
        if e.sha256.len() != 64 || !e.sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "{n}: sha256 {:?} is not 64 hex digits",
                e.sha256
            )));
        }
    }
    Ok(b)
}

/// Checks every file of the bundle `dir` against its listing: each of
/// [`REQUIRED`] is listed, nothing is missing or extra, and every file has
/// the listed size and sha256. The first problem found is the error.
pub fn verify(dir: &Path) -> Result<Bundle, Error> {
    let b = read(dir)?;
    for r in REQUIRED {
        if !b.files.contains_key(*r) {
            return Err(Error::Unlisted {
                dir: dir.to_path_buf(),
                file: r.to_string(),
            });
        }
    }
    let mut present = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n == BUNDLE_JSON {
            continue;
        }
        if !b.files.contains_key(&n) {
            return Err(Error::Extra {
                dir: dir.to_path_buf(),
                file: n,
            });
        }
        // No symlinks: the bytes checked must be the bundle's own.
        if !e.file_type().map_err(io(&e.path()))?.is_file() {
            return Err(Error::NotFile {
                dir: dir.to_path_buf(),
                file: n,
            });
        }
        present.push(n);
    }
    for n in b.files.keys() {
        if !present.contains(n) {
            return Err(Error::Missing {
                dir: dir.to_path_buf(),
                file: n.clone(),
            });
        }
    }
    // Sizes first: a truncated or grown file is named without reading it.
    for (n, want) in &b.files {
        let p = dir.join(n);
        let got = fs::metadata(&p).map_err(io(&p))?.len();
        if got != want.bytes {
            return Err(Error::Resized {
                dir: dir.to_path_buf(),
                file: n.clone(),
                want: want.bytes,
                got,
            });
        }
    }
    let names: Vec<&str> = b.files.keys().map(String::as_str).collect();
    for (n, r) in digest_all(dir, &names) {
        let got = r?;
        let want = &b.files[&n];
        if got.sha256 != want.sha256 {
            return Err(Error::Changed {
                dir: dir.to_path_buf(),
                file: n,
                want: want.sha256.clone(),
                got: got.sha256,
            });
        }
    }
    // After the hashes: the kernel read is the one listed.
    check_arch(dir, &b.arch)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// A bundle of small files with the real names.
    fn bundle() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (i, n) in REQUIRED.iter().enumerate() {
            fs::write(d.path().join(n), format!("{n} bytes {i}").repeat(100)).unwrap();
        }
        fake_kernel(d.path(), b"HdrS", 0x202);
        write(d.path(), "hull-0.1.0-x86_64", "0.1.0", "abc123", "x86_64").unwrap();
        d
    }

    /// A vmlinuz whose header says its arch (x86 `HdrS` at 0x202, arm64
    /// `ARM\x64` at 56), as `Arch::of_kernel` reads it.
    fn fake_kernel(dir: &Path, magic: &[u8], at: usize) {
        let mut k = vec![0u8; 0x400];
        k[at..at + magic.len()].copy_from_slice(magic);
        fs::write(dir.join("vmlinuz"), k).unwrap();
    }

    #[test]
    fn a_bundle_whose_arch_is_not_its_kernels_is_refused() {
        let d = tempfile::tempdir().unwrap();
        for n in REQUIRED {
            fs::write(d.path().join(n), n).unwrap();
        }
        fake_kernel(d.path(), b"ARM\x64", 56);
        let e = write(d.path(), "n", "v", "c", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("says arch \"x86_64\", but its vmlinuz is arm64"),
            "{e}"
        );
        let b = write(d.path(), "hull-0.1.0-arm64", "v", "c", "arm64").unwrap();
        assert_eq!(b.arch, "arm64");
        verify(d.path()).unwrap();
        // The listing edited to claim x86_64 (hashes untouched) is refused.
        let p = d.path().join(BUNDLE_JSON);
        let text = fs::read_to_string(&p).unwrap();
        fs::write(
            &p,
            text.replace("\"arch\": \"arm64\"", "\"arch\": \"x86_64\""),
        )
        .unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("bundle.json says arch \"x86_64\", but its vmlinuz is arm64"),
            "{e}"
        );
    }

    fn flip(p: &Path, at: u64) {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x01;
        f.write_all_at(&b, at).unwrap();
    }

    #[test]
    fn an_intact_bundle_verifies() {
        let d = bundle();
        let b = verify(d.path()).unwrap();
        assert_eq!(b.version, "0.1.0");
        assert_eq!(b.commit, "abc123");
        assert_eq!(b.files.len(), REQUIRED.len());
        assert!(b.files.contains_key(SBOM));
    }

    #[test]
    fn a_one_byte_change_to_any_file_is_refused_naming_it() {
        let d = bundle();
        for n in REQUIRED.iter() {
            let p = d.path().join(n);
            flip(&p, 7);
            let e = verify(d.path()).unwrap_err().to_string();
            assert!(e.contains(&format!("{n} was changed (sha256 ")), "{n}: {e}");
            flip(&p, 7);
            verify(d.path()).unwrap();
        }
    }

    #[test]
    fn a_changed_listing_is_refused() {
        let d = bundle();
        let p = d.path().join(BUNDLE_JSON);
        let text = fs::read_to_string(&p).unwrap();
        // Another version claimed: the listing is part of what is checked
        // only as far as its own form goes, but a changed hash in it is a
        // mismatch with the file it names.
        let b: Bundle = serde_json::from_str(&text).unwrap();
        let want = &b.files["vmlinuz"].sha256;
        let mut other = want.clone().into_bytes();
        other[0] = if other[0] == b'0' { b'1' } else { b'0' };
        let changed = text.replace(want.as_str(), std::str::from_utf8(&other).unwrap());
        fs::write(&p, &changed).unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("vmlinuz was changed"), "{e}");
        fs::write(&p, text.replace("\"format\": 1", "\"format\": 2")).unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("bundle.json is malformed: format 2"), "{e}");
        fs::write(&p, "{").unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("bundle.json is malformed"), "{e}");
    }

    #[test]
    fn missing_extra_and_resized_files_are_refused_naming_them() {
        let d = bundle();
        fs::write(d.path().join("evil.sh"), "x").unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("evil.sh is not part of the bundle"), "{e}");
        fs::remove_file(d.path().join("evil.sh")).unwrap();

        fs::rename(d.path().join(SBOM), d.path().join("sbom.old")).unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("sbom.old is not part of the bundle"), "{e}");
        fs::remove_file(d.path().join("sbom.old")).unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("sbom.cdx.json is missing"), "{e}");

        let d = bundle();
        let f = fs::OpenOptions::new()
            .append(true)
            .open(d.path().join("root.qcow2"))
            .unwrap();
        f.write_all_at(b"!", 0).unwrap();
        drop(f);
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("root.qcow2 was changed (size"), "{e}");

        let d = bundle();
        fs::remove_file(d.path().join("image.json")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("image.json")).unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("image.json is not a regular file"), "{e}");
    }

    #[test]
    fn a_listing_without_a_required_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        for n in REQUIRED {
            fs::write(d.path().join(n), n).unwrap();
        }
        fake_kernel(d.path(), b"HdrS", 0x202);
        write(d.path(), "n", "v", "c", "x86_64").unwrap();
        let p = d.path().join(BUNDLE_JSON);
        let mut b: Bundle = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        b.files.remove("boot.json");
        fs::write(&p, serde_json::to_string(&b).unwrap()).unwrap();
        fs::remove_file(d.path().join("boot.json")).unwrap();
        let e = verify(d.path()).unwrap_err().to_string();
        assert!(e.contains("does not list boot.json"), "{e}");
        // And the writer refuses a folder without one.
        let e = write(d.path(), "n", "v", "c", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("boot.json is missing"), "{e}");
    }
}
