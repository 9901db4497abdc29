//! The image manifest (`image/manifest.toml`): what goes into the VM root.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{io_err, Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub image: ImageCfg,
    pub debian: Debian,
    #[serde(default)]
    pub strip: Strip,
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
    #[serde(default, rename = "symlink")]
    pub symlinks: Vec<Symlink>,
    #[serde(default, rename = "dir")]
    pub dirs: Vec<DirEntry>,
    #[serde(default, rename = "move")]
    pub moves: Vec<MoveEntry>,
    /// Other images from the same manifest (`[variant.<name>]`): the
    /// shipped image is the manifest without any of them.
    #[serde(default, rename = "variant")]
    pub variants: std::collections::BTreeMap<String, Variant>,
    /// The kernel command line's fixed words (`boot.json` beside vmlinuz).
    #[serde(default)]
    pub boot: Boot,
    /// What init applies from the root's `/usr/lib/hull/vm.json`.
    #[serde(default)]
    pub vm: VmCfg,
}

/// `[boot]`: the fixed part of the kernel command line. The host adds the
/// parts it computes ([`COMPUTED_KERNEL_KEYS`]) at each boot.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Boot {
    #[serde(default)]
    pub cmdline: Vec<String>,
}

/// Kernel parameters the host computes per image or per boot; a manifest
/// that fixed them would fight the host's value.
pub const COMPUTED_KERNEL_KEYS: &[&str] =
    &["dm-mod.create", "tsc_early_khz", "console", "8250.nr_uarts"];

/// `[vm]`: the VM's runtime configuration, carried into the root for init.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VmCfg {
    #[serde(default)]
    pub sysctls: Vec<Sysctl>,
    /// dockerd's defaults (daemon.json keys); init adds its own keys.
    #[serde(default)]
    pub engine: toml::Table,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    /// Path below /proc/sys, e.g. `kernel/kptr_restrict`.
    pub key: String,
    pub value: String,
}

/// One kernel command-line word: printable ASCII without spaces or quotes
/// (the host joins words with spaces and quotes nothing), and not a key
/// the host computes.
pub fn check_kernel_word(w: &str) -> std::result::Result<(), String> {
    if w.is_empty()
        || !w
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
    {
        return Err(format!(
            "[boot] cmdline word {w:?} must be printable ASCII without spaces or quotes"
        ));
    }
    let key = w.split_once('=').map_or(w, |(k, _)| k);
    if COMPUTED_KERNEL_KEYS.contains(&key) {
        return Err(format!(
            "[boot] cmdline word {w:?}: `{key}` is computed by the host at boot, not fixed in the manifest"
        ));
    }
    Ok(())
}

/// A sysctl path below /proc/sys (`kernel/kptr_restrict`) and a one-line value.
pub fn check_sysctl(s: &Sysctl) -> std::result::Result<(), String> {
    let key_ok = !s.key.is_empty()
        && s.key.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        });
    if !key_ok {
        return Err(format!(
            "[vm] sysctl key {:?} must be a path below /proc/sys like \"kernel/kptr_restrict\"",
            s.key
        ));
    }
    if s.value.is_empty() || s.value.contains(['\n', '\0']) {
        return Err(format!(
            "[vm] sysctl {}: value {:?} must be one non-empty line",
            s.key, s.value
        ));
    }
    Ok(())
}

/// What a variant adds to the shipped image (e.g. `bench`: the reference
/// runtimes and the benchmark binary). Only additions: a variant never
/// takes a file or a package out of the shipped image, so what the shipped
/// image is tested for holds in the variant too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Debian packages on top of `[debian] packages` (a list of its own, so
    /// the package lock can give the variant a set of its own).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Cargo features of hull-init in this variant.
    #[serde(default)]
    pub init_features: Vec<String>,
    #[serde(default, rename = "file")]
    pub files: Vec<FileEntry>,
    #[serde(default, rename = "symlink")]
    pub symlinks: Vec<Symlink>,
    #[serde(default, rename = "dir")]
    pub dirs: Vec<DirEntry>,
    #[serde(default, rename = "move")]
    pub moves: Vec<MoveEntry>,
}

/// A file of the Debian root moved aside (e.g. runc, kept only as a
/// benchmark reference while its name points at hull-runtime).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveEntry {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageCfg {
    pub source_date_epoch: u64,
    pub filesystem_uuid: String,
    #[serde(default = "default_compression")]
    pub compression: String,
}

fn default_compression() -> String {
    "lz4hc".into()
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Debian {
    pub suite: String,
    pub mirror: String,
    /// `<suite>-security` is a second source on this mirror (the lock's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_mirror: Option<String>,
    #[serde(default = "default_variant")]
    pub variant: String,
    pub packages: Vec<String>,
    #[serde(default)]
    pub dpkg_exclude: Vec<String>,
    #[serde(default)]
    pub dpkg_include: Vec<String>,
    /// Debian architecture of the root; `None`: the build machine's. Set by
    /// the image builder from [`crate::Inputs::arch`], not in the manifest
    /// file; absent from the rootfs hash when `None`, so the native root's
    /// cache key is what it was before other architectures existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

fn default_variant() -> String {
    "minbase".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strip {
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub dest: String,
    pub binary: Option<String>,
    pub source: Option<PathBuf>,
    pub content: Option<String>,
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "0644".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symlink {
    pub path: String,
    pub target: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirEntry {
    pub path: String,
    #[serde(default = "default_dir_mode")]
    pub mode: String,
}

fn default_dir_mode() -> String {
    "0755".into()
}

/// Where a file's bytes come from.
pub enum Source<'a> {
    Binary(&'a str),
    Path(&'a Path),
    Content(&'a str),
}

impl FileEntry {
    pub fn source(&self) -> std::result::Result<Source<'_>, String> {
        match (&self.binary, &self.source, &self.content) {
            (Some(b), None, None) => Ok(Source::Binary(b)),
            (None, Some(p), None) => Ok(Source::Path(p)),
            (None, None, Some(c)) => Ok(Source::Content(c)),
            _ => Err(format!(
                "file {}: give exactly one of `binary`, `source`, `content`",
                self.dest
            )),
        }
    }
}

pub fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "mode {s:?} is not an octal permission like \"0755\""
        )),
    }
}

/// A path inside the image: absolute, no `..`, no empty or `.` components.
pub fn check_dest(p: &str) -> std::result::Result<(), String> {
    if !p.starts_with('/') || p == "/" {
        return Err(format!("{p:?} must be an absolute path below /"));
    }
    if p[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "{p:?} must not contain empty, `.` or `..` components"
        ));
    }
    Ok(())
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        Self::parse(&text).map_err(|message| Error::Manifest {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.debian.packages.is_empty() {
            return Err("[debian] packages is empty".into());
        }
        if !matches!(self.image.compression.as_str(), "lz4" | "lz4hc" | "none") {
            return Err(format!(
                "[image] compression {:?}: use lz4, lz4hc or none",
                self.image.compression
            ));
        }
        if self.image.filesystem_uuid.len() != 36 {
            return Err(
                "[image] filesystem_uuid must be a UUID like 68756c6c-0000-4000-8000-000000000001"
                    .into(),
            );
        }
        for f in &self.files {
            check_dest(&f.dest)?;
            f.source()?;
            parse_mode(&f.mode).map_err(|e| format!("file {}: {e}", f.dest))?;
        }
        for s in &self.symlinks {
            check_dest(&s.path)?;
        }
        for m in &self.moves {
            check_dest(&m.from)?;
            check_dest(&m.to)?;
        }
        for d in &self.dirs {
            check_dest(&d.path)?;
            parse_mode(&d.mode).map_err(|e| format!("dir {}: {e}", d.path))?;
        }
        for r in &self.strip.remove {
            check_dest(r.trim_end_matches("/*"))?;
        }
        for (name, v) in &self.variants {
            self.clone()
                .merge(v)
                .validate()
                .map_err(|e| format!("[variant.{name}]: {e}"))?;
            if let Some(f) = v.init_features.iter().find(|f| f.is_empty()) {
                return Err(format!("[variant.{name}]: init feature {f:?} is empty"));
            }
        }
        for w in &self.boot.cmdline {
            check_kernel_word(w)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.vm.sysctls {
            check_sysctl(s)?;
            if !seen.insert(s.key.as_str()) {
                return Err(format!("[vm] sysctl {} is given twice", s.key));
            }
        }
        Ok(())
    }

    /// The manifest of variant `name` (`None`: the shipped image, as is):
    /// the shipped one plus the variant's packages and files, with no
    /// variants of its own.
    pub fn variant(&self, name: Option<&str>) -> std::result::Result<Manifest, String> {
        let Some(name) = name else {
            let mut m = self.clone();
            m.variants.clear();
            return Ok(m);
        };
        let v = self.variants.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.variants.keys().map(String::as_str).collect();
            format!(
                "no variant {name:?} in the manifest (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })?;
        Ok(self.clone().merge(v))
    }

    fn merge(mut self, v: &Variant) -> Manifest {
        self.variants.clear();
        self.debian.packages.extend(v.packages.iter().cloned());
        self.files.extend(v.files.iter().cloned());
        self.symlinks.extend(v.symlinks.iter().cloned());
        self.dirs.extend(v.dirs.iter().cloned());
        self.moves.extend(v.moves.iter().cloned());
        self
    }

    /// hull-init's cargo features in variant `name` (none when shipped).
    pub fn init_features(&self, name: Option<&str>) -> Vec<String> {
        name.and_then(|n| self.variants.get(n))
            .map(|v| v.init_features.clone())
            .unwrap_or_default()
    }

    /// The hash that names the cached rootfs: everything mmdebstrap sees.
    pub fn rootfs_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"hull-rootfs-recipe-1\0");
        h.update(serde_json::to_vec(&self.debian).unwrap_or_default());
        h.update(self.image.source_date_epoch.to_le_bytes());
        hex::encode(h.finalize())
    }

    /// Cargo binaries the manifest asks for.
    pub fn binaries(&self) -> Vec<&str> {
        self.files
            .iter()
            .filter_map(|f| f.binary.as_deref())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[image]
source_date_epoch = 1
filesystem_uuid = "68756c6c-0000-4000-8000-000000000001"
[debian]
suite = "trixie"
mirror = "http://deb.debian.org/debian"
packages = ["docker.io"]
"#;

    #[test]
    fn repo_manifest_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest.toml");
        let m = Manifest::load(&p).unwrap();
        assert!(m.binaries().contains(&"hull-init"));
        assert_eq!(m.debian.suite, "trixie");
    }

    #[test]
    fn minimal_manifest_parses() {
        let m = Manifest::parse(MIN).unwrap();
        assert_eq!(m.debian.variant, "minbase");
        assert_eq!(m.image.compression, "lz4hc");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Manifest::parse(&format!("{MIN}\n[bogus]\nx=1\n")).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn bad_destinations_are_refused() {
        for d in ["etc/x", "/", "/etc/../x", "/etc//x", "/./x"] {
            let t = format!("{MIN}\n[[file]]\ndest = {d:?}\ncontent = \"\"\n");
            assert!(Manifest::parse(&t).is_err(), "{d} accepted");
        }
    }

    #[test]
    fn file_needs_exactly_one_source() {
        let t = format!("{MIN}\n[[file]]\ndest = \"/x\"\ncontent = \"\"\nbinary = \"y\"\n");
        assert!(Manifest::parse(&t).unwrap_err().contains("exactly one"));
        let t = format!("{MIN}\n[[file]]\ndest = \"/x\"\n");
        assert!(Manifest::parse(&t).is_err());
    }

    #[test]
    fn repo_manifest_defines_the_vm() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest.toml");
        let m = Manifest::load(&p).unwrap();
        assert!(m.boot.cmdline.iter().any(|w| w == "init=/sbin/hull-init"));
        assert!(m.boot.cmdline.iter().any(|w| w == "root=/dev/dm-0"));
        assert!(m
            .vm
            .sysctls
            .iter()
            .any(|s| s.key == "kernel/unprivileged_bpf_disabled" && s.value == "1"));
        let ent = &m.vm.engine["builder"]["entitlements"];
        assert_eq!(ent["network-host"].as_bool(), Some(false));
        assert_eq!(ent["security-insecure"].as_bool(), Some(false));
    }

    #[test]
    fn computed_or_unsafe_kernel_words_are_refused() {
        for (w, needle) in [
            ("tsc_early_khz=1", "computed by the host"),
            ("dm-mod.create=x", "computed by the host"),
            ("a b", "without spaces"),
            ("x=\\\"y\\\"", "without spaces or quotes"),
            ("", "printable"),
        ] {
            let t = format!("{MIN}\n[boot]\ncmdline = [{w:?}]\n");
            let e = Manifest::parse(&t).unwrap_err();
            assert!(e.contains(needle), "{w}: {e}");
        }
    }

    #[test]
    fn bad_sysctls_are_refused() {
        for (k, v, needle) in [
            ("../x", "1", "below /proc/sys"),
            ("/kernel/x", "1", "below /proc/sys"),
            ("kernel/x", "", "one non-empty line"),
            ("kernel/x", "1\\n2", "one non-empty line"),
        ] {
            let t = format!("{MIN}\n[vm]\nsysctls = [{{ key = {k:?}, value = \"{v}\" }}]\n");
            let e = Manifest::parse(&t).unwrap_err();
            assert!(e.contains(needle), "{k}={v}: {e}");
        }
        let t = format!(
            "{MIN}\n[vm]\nsysctls = [{{ key = \"a/b\", value = \"1\" }}, {{ key = \"a/b\", value = \"2\" }}]\n"
        );
        assert!(Manifest::parse(&t).unwrap_err().contains("twice"));
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("0o4755"), Ok(0o4755));
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("77777").is_err());
    }

    #[test]
    fn the_shipped_image_has_no_test_tools_and_the_bench_variant_adds_them() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest.toml");
        let m = Manifest::load(&p).unwrap();
        let shipped = m.variant(None).unwrap();
        let bench = m.variant(Some("bench")).unwrap();
        for pkg in ["runc", "crun"] {
            assert!(!shipped.debian.packages.iter().any(|x| x == pkg), "{pkg}");
            assert!(bench.debian.packages.iter().any(|x| x == pkg), "{pkg}");
        }
        assert!(!shipped.binaries().contains(&"hull-runtime-bench"));
        assert!(bench.binaries().contains(&"hull-runtime-bench"));
        assert!(!shipped
            .files
            .iter()
            .any(|f| f.dest.starts_with("/usr/lib/hull/")));
        assert!(shipped.moves.is_empty(), "nothing kept aside when shipped");
        // `runc` is hull-runtime in both.
        for m in [&shipped, &bench] {
            for path in ["/usr/sbin/runc", "/usr/bin/runc"] {
                assert!(
                    m.symlinks
                        .iter()
                        .any(|s| s.path == path && s.target == "/usr/bin/hull-runtime"),
                    "{path}"
                );
            }
        }
        assert_eq!(m.init_features(Some("bench")), ["bench"]);
        assert!(m.init_features(None).is_empty());
        assert_ne!(shipped.rootfs_hash(), bench.rootfs_hash());
        let e = m.variant(Some("nope")).unwrap_err();
        assert!(
            e.contains("no variant \"nope\"") && e.contains("bench"),
            "{e}"
        );
    }

    #[test]
    fn a_variant_is_checked_like_the_manifest() {
        let t = format!("{MIN}\n[variant.x]\npackages = [\"crun\"]\n[[variant.x.file]]\ndest = \"etc/x\"\ncontent = \"\"\n");
        let e = Manifest::parse(&t).unwrap_err();
        assert!(e.contains("[variant.x]") && e.contains("etc/x"), "{e}");
    }

    #[test]
    fn rootfs_hash_ignores_our_files_but_not_packages() {
        let a = Manifest::parse(MIN).unwrap();
        let b =
            Manifest::parse(&format!("{MIN}\n[[file]]\ndest = \"/x\"\ncontent = \"\"\n")).unwrap();
        assert_eq!(a.rootfs_hash(), b.rootfs_hash());
        let c =
            Manifest::parse(&MIN.replace("[\"docker.io\"]", "[\"docker.io\", \"crun\"]")).unwrap();
        assert_ne!(a.rootfs_hash(), c.rootfs_hash());
    }
}
