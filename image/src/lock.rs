//! `image/packages.lock`: every Debian package of the image root, pinned by
//! name, version, architecture and sha256 of its `.deb`.
//!
//! The lock holds one *set* per package set the manifest defines
//! (`[set.production]` for the shipped image; a variant that adds packages,
//! such as a bench image with runc and crun, gets its own `[set.<variant>]`
//! holding its complete closure). Each set records what it was resolved
//! from (`sources`, `requested`) so that a manifest change is noticed, and
//! the full closure mmdebstrap installs (minbase essentials, the requested
//! packages and their dependencies).
//!
//! The mirror only serves current versions: when one of the locked versions
//! is gone, [`check`] names it and says to run `cargo xtask image
//! --update-lock`, which [`resolve`]s afresh and rewrites the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::manifest::{Debian, Manifest};
use crate::{io_err, run, Error, Result};

/// The set every image has (the manifest's `[debian] packages`).
pub const PRODUCTION: &str = "production";
/// The architecture whose sets carry no suffix (they were the only ones
/// before arm64, and their names and cache keys stay what they were).
pub const PLAIN_ARCH: &str = "amd64";

/// The lock's name for set `base` (`production`, a variant) of Debian
/// architecture `arch`: amd64's is `base` itself, any other's
/// `base-<arch>` (`production-arm64`). Each is its arch's complete closure,
/// resolved on its own: the closures differ (arch-specific dependencies,
/// binNMU versions such as `+b1`), so one set cannot pin both.
pub fn set_name(base: &str, arch: &str) -> String {
    if arch == PLAIN_ARCH {
        base.to_string()
    } else {
        format!("{base}-{arch}")
    }
}
/// What the error says to do when the lock no longer fits.
pub const UPDATE_HINT: &str = "run `cargo xtask image --update-lock`";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub format: u32,
    #[serde(default)]
    pub set: BTreeMap<String, LockSet>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockSet {
    /// `<mirror> <suite>` lines the set was resolved from.
    pub sources: Vec<String>,
    /// The packages asked for (sorted); the rest is their closure.
    pub requested: Vec<String>,
    pub packages: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub sha256: String,
}

impl Entry {
    /// `name=version`, as apt and mmdebstrap take it.
    pub fn pin(&self) -> String {
        format!("{}={}", self.name, self.version)
    }
}

/// What one set is resolved from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub sources: Vec<String>,
    pub requested: Vec<String>,
}

impl Request {
    /// The production set of a manifest: its mirror (plus the security
    /// mirror when given) and its `packages`.
    pub fn production(m: &Manifest) -> Self {
        Self::with_extra(&m.debian, &[])
    }

    /// A variant: the manifest's packages plus `extra` (e.g. runc, crun).
    pub fn with_extra(d: &Debian, extra: &[String]) -> Self {
        let mut requested: Vec<String> = d.packages.iter().chain(extra).cloned().collect();
        requested.sort();
        requested.dedup();
        Self {
            sources: sources(d),
            requested,
        }
    }
}

/// `<mirror> <suite>` of every source: the suite itself and, when the
/// manifest names one, `<suite>-security` on the security mirror.
pub fn sources(d: &Debian) -> Vec<String> {
    let mut v = vec![format!("{} {}", d.mirror, d.suite)];
    if let Some(s) = &d.security_mirror {
        v.push(format!("{s} {}-security", d.suite));
    }
    v
}

/// Only these characters appear in Debian names, versions and
/// architectures; anything else in a lock is refused (and so never needs
/// quoting when the lock is written).
fn plain(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+-~:".contains(c) || extra.contains(c))
}

impl Lock {
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| {
            Error::Other(format!(
                "{}: {e}; {UPDATE_HINT} to create it",
                path.display()
            ))
        })?;
        Self::parse(&text).map_err(|message| Error::Manifest {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let l: Lock = toml::from_str(text).map_err(|e| e.to_string())?;
        if l.format != FORMAT {
            return Err(format!("format {} (this hull reads {FORMAT})", l.format));
        }
        for (name, s) in &l.set {
            if !plain(name, "_") {
                return Err(format!("set name {name:?}"));
            }
            let mut seen = BTreeSet::new();
            for e in &s.packages {
                let bad = !plain(&e.name, "")
                    || !plain(&e.version, "")
                    || !plain(&e.arch, "")
                    || e.sha256.len() != 64
                    || !e.sha256.chars().all(|c| c.is_ascii_hexdigit());
                if bad {
                    return Err(format!("set {name}: malformed entry {e:?}"));
                }
                if !seen.insert((&e.name, &e.arch)) {
                    return Err(format!("set {name}: {} {} twice", e.name, e.arch));
                }
            }
            for r in s.requested.iter().chain(&s.sources) {
                if r.contains(['"', '\\', '\n']) {
                    return Err(format!("set {name}: {r:?}"));
                }
            }
        }
        Ok(l)
    }

    /// The lock as written to disk: one line per package, sorted, so that
    /// an update shows as a small diff.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# image/packages.lock: every Debian package of the image root, pinned.\n\
             # Written by `cargo xtask image --update-lock` (see image/README.md); not by hand.\n",
        );
        let _ = writeln!(out, "format = {}", self.format);
        for (name, s) in &self.set {
            let _ = writeln!(out, "\n[set.{name}]");
            let list = |v: &[String]| {
                v.iter()
                    .map(|x| format!("{x:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(out, "sources = [{}]", list(&s.sources));
            let _ = writeln!(out, "requested = [{}]", list(&s.requested));
            out.push_str("packages = [\n");
            for e in &s.packages {
                let _ = writeln!(
                    out,
                    "    {{ name = \"{}\", version = \"{}\", arch = \"{}\", sha256 = \"{}\" }},",
                    e.name, e.version, e.arch, e.sha256
                );
            }
            out.push_str("]\n");
        }
        out
    }

    /// The set for `name`, checked against what the manifest asks for now.
    pub fn set_for(&self, name: &str, req: &Request) -> Result<&LockSet> {
        let s = self.set.get(name).ok_or_else(|| {
            Error::Other(format!(
                "image/packages.lock has no set {name:?}; {UPDATE_HINT}"
            ))
        })?;
        if s.sources != req.sources || s.requested != req.requested {
            return Err(Error::Other(format!(
                "image/packages.lock set {name:?} was resolved from {:?} for {:?}, \
                 but the manifest now asks for {:?} from {:?}; {UPDATE_HINT}",
                s.sources, s.requested, req.requested, req.sources
            )));
        }
        Ok(s)
    }
}

impl LockSet {
    /// Names the cached rootfs: a new lock is a new rootfs.
    pub fn hash(&self) -> String {
        let one = Lock {
            format: FORMAT,
            set: [("x".to_string(), self.clone())].into(),
        };
        hex::encode(Sha256::digest(one.render().as_bytes()))
    }
}

/// What the mirror serves: (name, version, arch) -> sha256, read from the
/// `Packages` indexes apt fetched.
#[derive(Debug, Default)]
pub struct Index {
    debs: BTreeMap<(String, String, String), String>,
}

impl Index {
    /// Adds the stanzas of one `Packages` (or dpkg `status`) file.
    pub fn add(&mut self, text: &str) {
        for st in stanzas(text) {
            if let (Some(n), Some(v), Some(a), Some(h)) = (
                st.get("Package"),
                st.get("Version"),
                st.get("Architecture"),
                st.get("SHA256"),
            ) {
                self.debs
                    .insert((n.to_string(), v.to_string(), a.to_string()), h.to_string());
            }
        }
    }

    /// Every `*_Packages` file of an apt lists folder.
    pub fn from_lists(dir: &Path) -> Result<Self> {
        let mut idx = Index::default();
        let mut n = 0;
        for e in fs::read_dir(dir).map_err(io_err(dir))? {
            let p = e.map_err(io_err(dir))?.path();
            if p.to_string_lossy().ends_with("_Packages") {
                idx.add(&fs::read_to_string(&p).map_err(io_err(&p))?);
                n += 1;
            }
        }
        if n == 0 || idx.debs.is_empty() {
            return Err(Error::Other(format!(
                "{}: apt fetched no Packages index",
                dir.display()
            )));
        }
        Ok(idx)
    }

    pub fn sha256(&self, name: &str, version: &str, arch: &str) -> Option<&str> {
        self.debs
            .get(&(name.into(), version.into(), arch.into()))
            .map(String::as_str)
    }

    /// The versions served for `name`, for the error message.
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.debs
            .keys()
            .filter(|(n, _, _)| n == name)
            .map(|(_, v, a)| format!("{v} ({a})"))
            .collect()
    }
}

/// Debian control stanzas (`Key: value`, continuation lines ignored).
fn stanzas(text: &str) -> impl Iterator<Item = BTreeMap<&str, &str>> {
    text.split("\n\n").map(|st| {
        st.lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k, v.trim()))
            .collect()
    })
}

/// Fails unless the mirror still serves every entry, with the same sha256.
pub fn check(set: &LockSet, idx: &Index) -> Result<()> {
    let mut problems = Vec::new();
    for e in &set.packages {
        match idx.sha256(&e.name, &e.version, &e.arch) {
            Some(h) if h == e.sha256 => {}
            Some(h) => problems.push(format!(
                "{} {} ({}): the mirror's sha256 is {h}, the lock says {}",
                e.name, e.version, e.arch, e.sha256
            )),
            None => {
                let has = idx.versions(&e.name);
                let has = if has.is_empty() {
                    "nothing of that name".to_string()
                } else {
                    has.join(", ")
                };
                problems.push(format!(
                    "{} locked at {} ({}) is not served by the mirror, which has {has}",
                    e.name, e.version, e.arch
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "image/packages.lock no longer matches the mirror:\n  {}\n{UPDATE_HINT} to resolve afresh",
        problems.join("\n  ")
    )))
}

/// The installed packages of a dpkg `status` file: (name, version, arch).
pub fn installed(status: &str) -> BTreeSet<(String, String, String)> {
    stanzas(status)
        .filter(|st| st.get("Status").is_some_and(|s| s.ends_with(" installed")))
        .filter_map(|st| {
            Some((
                st.get("Package")?.to_string(),
                st.get("Version")?.to_string(),
                st.get("Architecture")?.to_string(),
            ))
        })
        .collect()
}

/// (sha256, `name_version_arch.deb`) of each installed stanza that carries
/// a `SHA256` field (what a foreign build records of the `.deb`s it
/// unpacked; dpkg's own status has none).
pub fn installed_sha256(status: &str) -> Vec<(String, String)> {
    stanzas(status)
        .filter(|st| st.get("Status").is_some_and(|s| s.ends_with(" installed")))
        .filter_map(|st| {
            Some((
                st.get("SHA256")?.to_string(),
                format!(
                    "{}_{}_{}.deb",
                    st.get("Package")?,
                    st.get("Version")?,
                    st.get("Architecture")?
                ),
            ))
        })
        .collect()
}

/// Fails unless the root holds exactly the locked packages.
pub fn check_installed(set: &LockSet, status: &str) -> Result<()> {
    let got = installed(status);
    let want: BTreeSet<(String, String, String)> = set
        .packages
        .iter()
        .map(|e| (e.name.clone(), e.version.clone(), e.arch.clone()))
        .collect();
    let extra: Vec<String> = got
        .difference(&want)
        .map(|(n, v, a)| format!("{n} {v} ({a})"))
        .collect();
    let missing: Vec<String> = want
        .difference(&got)
        .map(|(n, v, a)| format!("{n} {v} ({a})"))
        .collect();
    if extra.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(Error::Other(format!(
        "the rootfs does not hold exactly the locked packages: not in the lock [{}], \
         locked but not installed [{}]; {UPDATE_HINT}",
        extra.join(", "),
        missing.join(", ")
    )))
}

/// The lock's entries for an installed set, with sha256 from the index.
pub fn entries(status: &str, idx: &Index) -> Result<Vec<Entry>> {
    installed(status)
        .into_iter()
        .map(|(name, version, arch)| {
            let sha256 = idx
                .sha256(&name, &version, &arch)
                .ok_or_else(|| {
                    Error::Other(format!(
                        "{name} {version} ({arch}) was installed but is in no Packages index \
                         (did the mirror change meanwhile? try again)"
                    ))
                })?
                .to_string();
            Ok(Entry {
                name,
                version,
                arch,
                sha256,
            })
        })
        .collect()
}

/// The changes from `old` to `new`, one line each: `added x 1`,
/// `removed y 2`, `changed z 1 -> 2`.
pub fn changes(old: &[Entry], new: &[Entry]) -> Vec<String> {
    let key = |e: &Entry| format!("{}:{}", e.name, e.arch);
    let o: BTreeMap<String, &Entry> = old.iter().map(|e| (key(e), e)).collect();
    let n: BTreeMap<String, &Entry> = new.iter().map(|e| (key(e), e)).collect();
    let mut out = Vec::new();
    for (k, e) in &n {
        match o.get(k) {
            None => out.push(format!("added {} {}", e.name, e.version)),
            Some(p) if p.version != e.version => {
                out.push(format!("changed {} {} -> {}", e.name, p.version, e.version))
            }
            Some(p) if p.sha256 != e.sha256 => out.push(format!(
                "changed {} {} (same version, new sha256 {})",
                e.name, e.version, e.sha256
            )),
            _ => {}
        }
    }
    for (k, e) in &o {
        if !n.contains_key(k) {
            out.push(format!("removed {} {}", e.name, e.version));
        }
    }
    out
}

/// A throwaway apt configuration (nothing of the host's own sources or
/// state) over the manifest's sources, for reading the mirror's indexes and
/// downloading `.deb`s.
pub struct Apt {
    pub dir: PathBuf,
    conf: PathBuf,
}

impl Apt {
    /// Writes the config under `dir` (emptied first) and runs `apt-get
    /// update` for the Debian architecture `arch` (its indexes only).
    pub fn update(d: &Debian, arch: &str, dir: &Path) -> Result<Self> {
        if !plain(arch, "") {
            return Err(Error::Other(format!("Debian architecture {arch:?}")));
        }
        let _ = fs::remove_dir_all(dir);
        for sub in [
            "etc/apt/apt.conf.d",
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
        ] {
            fs::create_dir_all(dir.join(sub)).map_err(io_err(dir))?;
        }
        let status = dir.join("var/lib/dpkg/status");
        fs::write(&status, "").map_err(io_err(&status))?;
        let mut list = String::new();
        for s in sources(d) {
            let _ = writeln!(list, "deb [signed-by={KEYRING}] {s} main");
        }
        let sl = dir.join("etc/apt/sources.list");
        fs::write(&sl, list).map_err(io_err(&sl))?;
        let conf = dir.join("apt.conf");
        let d = dir.display();
        // Sandbox user root: the folder lives in root's cache, where apt's
        // `_apt` user may not write. The indexes are still verified against
        // the archive keyring (signed-by) and every .deb against its sha256.
        let text = format!(
            "Dir \"{d}/\";\n\
             Dir::State::status \"{d}/var/lib/dpkg/status\";\n\
             Dir::Etc::SourceList \"{d}/etc/apt/sources.list\";\n\
             Dir::Etc::SourceParts \"{d}/etc/apt/sources.list.d\";\n\
             Dir::Etc::Parts \"{d}/etc/apt/apt.conf.d\";\n\
             Dir::Etc::Preferences \"{d}/etc/apt/preferences\";\n\
             Dir::Etc::PreferencesParts \"{d}/etc/apt/preferences.d\";\n\
             APT::Architecture \"{arch}\";\n\
             APT::Architectures {{ \"{arch}\"; }};\n\
             Acquire::Languages \"none\";\n\
             Acquire::GzipIndexes \"false\";\n\
             APT::Sandbox::User \"root\";\n\
             Debug::NoLocking \"true\";\n"
        );
        fs::write(&conf, text).map_err(io_err(&conf))?;
        let apt = Apt {
            dir: dir.to_path_buf(),
            conf,
        };
        run(apt.cmd("apt-get").args(["-q", "update"]))?;
        Ok(apt)
    }

    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("APT_CONFIG", &self.conf);
        c
    }

    pub fn index(&self) -> Result<Index> {
        Index::from_lists(&self.dir.join("var/lib/apt/lists"))
    }
}

/// `cargo xtask image --update-lock`: resolves `req` afresh with mmdebstrap
/// (unpinned, then upgraded from the security suite), and returns the new
/// entries with the `.deb` sha256s from the mirror's signed indexes.
pub fn resolve(m: &Manifest, req: &Request, work: &Path) -> Result<LockSet> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(io_err(work))?;
    let apt = Apt::update(
        &m.debian,
        &crate::foreign::native_arch()?,
        &work.join("apt"),
    )?;
    let out = work.join("out");
    fs::create_dir_all(&out).map_err(io_err(&out))?;
    // mmdebstrap takes the essential set from the main suite only; the
    // upgrade brings in the security suite's fixes for those too.
    let mut c = crate::rootfs::mmdebstrap(
        m,
        &req.requested,
        &[
            "--customize-hook=chroot \"$1\" apt-get --yes -q dist-upgrade".to_string(),
            format!(
                "--customize-hook=copy-out /var/lib/dpkg/status {}",
                out.display()
            ),
        ],
        &work.join("root.tar"),
    );
    run(&mut c)?;
    let status_path = out.join("status");
    let status = fs::read_to_string(&status_path).map_err(io_err(&status_path))?;
    let packages = entries(&status, &apt.index()?)?;
    let _ = fs::remove_dir_all(work);
    Ok(LockSet {
        sources: req.sources.clone(),
        requested: req.requested.clone(),
        packages,
    })
}

/// A fresh lock of one set.
pub fn new_lock(sets: BTreeMap<String, LockSet>) -> Lock {
    Lock {
        format: FORMAT,
        set: sets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn entry(n: &str, v: &str) -> Entry {
        Entry {
            name: n.into(),
            version: v.into(),
            arch: "amd64".into(),
            sha256: SHA.into(),
        }
    }

    fn set(entries: Vec<Entry>) -> LockSet {
        LockSet {
            sources: vec!["http://deb.debian.org/debian trixie".into()],
            requested: vec!["docker.io".into()],
            packages: entries,
        }
    }

    const PACKAGES: &str = "Package: libc6\nVersion: 2.41-12\nArchitecture: amd64\nDescription: x\n y\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n\nPackage: libc6\nVersion: 2.41-12+deb13u1\nArchitecture: amd64\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n";

    #[test]
    fn render_parses_back() {
        let l = new_lock(
            [(
                PRODUCTION.to_string(),
                set(vec![entry("libc6", "2.41-12"), entry("zlib1g", "1:1.3")]),
            )]
            .into(),
        );
        assert_eq!(Lock::parse(&l.render()).unwrap(), l);
    }

    #[test]
    fn the_repo_lock_parses_and_has_the_production_set() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages.lock");
        let l = Lock::load(&p).unwrap();
        let m =
            Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest.toml")).unwrap();
        for arch in ["amd64", "arm64"] {
            let s = l
                .set_for(&set_name(PRODUCTION, arch), &Request::production(&m))
                .unwrap();
            for want in ["docker.io", "containerd", "libc6", "dpkg", "apt"] {
                let e = s.packages.iter().find(|e| e.name == want);
                assert!(e.is_some_and(|e| e.arch == arch), "{want} ({arch}): {e:?}");
            }
        }
        assert_eq!(
            Lock::parse(&l.render()).unwrap(),
            l,
            "the lock is as rendered"
        );
    }

    #[test]
    fn amd64_sets_keep_their_names_and_others_get_the_arch() {
        assert_eq!(set_name(PRODUCTION, "amd64"), "production");
        assert_eq!(set_name("bench", "amd64"), "bench");
        assert_eq!(set_name(PRODUCTION, "arm64"), "production-arm64");
    }

    #[test]
    fn recorded_debs_give_their_sha256_and_file_name() {
        let rec = format!("Package: libc6\nVersion: 2.41-12\nArchitecture: arm64\nStatus: install ok installed\nSHA256: {SHA}\n\n");
        assert_eq!(
            installed_sha256(&rec),
            vec![(SHA.to_string(), "libc6_2.41-12_arm64.deb".to_string())]
        );
        assert_eq!(installed(&rec).len(), 1);
    }

    #[test]
    fn malformed_entries_are_refused() {
        let mut l = new_lock([(PRODUCTION.to_string(), set(vec![entry("a", "1")]))].into());
        l.set.get_mut(PRODUCTION).unwrap().packages[0].sha256 = "xyz".into();
        assert!(Lock::parse(&l.render()).unwrap_err().contains("malformed"));
        let t = new_lock([(PRODUCTION.to_string(), set(vec![entry("a", "1")]))].into())
            .render()
            .replace("version = \"1\"", "version = \"1 2\"");
        assert!(Lock::parse(&t).unwrap_err().contains("malformed"));
    }

    #[test]
    fn a_version_the_mirror_lacks_fails_with_the_update_hint() {
        let mut idx = Index::default();
        idx.add(PACKAGES);
        assert!(check(&set(vec![entry("libc6", "2.41-12")]), &idx).is_ok());
        let e = check(&set(vec![entry("libc6", "2.40-1")]), &idx)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("libc6 locked at 2.40-1 (amd64) is not served by the mirror, which has 2.41-12 (amd64), 2.41-12+deb13u1 (amd64)"),
            "{e}"
        );
        assert!(e.contains("run `cargo xtask image --update-lock`"), "{e}");
        let mut wrong = entry("libc6", "2.41-12+deb13u1");
        wrong.sha256 = SHA.into();
        let e = check(&set(vec![wrong]), &idx).unwrap_err().to_string();
        assert!(e.contains("the mirror's sha256 is 1111"), "{e}");
    }

    #[test]
    fn a_changed_manifest_makes_the_lock_stale() {
        let l = new_lock([(PRODUCTION.to_string(), set(vec![]))].into());
        let req = Request {
            sources: vec!["http://deb.debian.org/debian trixie".into()],
            requested: vec!["crun".into(), "docker.io".into()],
        };
        let e = l.set_for(PRODUCTION, &req).unwrap_err().to_string();
        assert!(e.contains("--update-lock"), "{e}");
        assert!(l
            .set_for("bench", &req)
            .unwrap_err()
            .to_string()
            .contains("no set"));
    }

    #[test]
    fn installed_set_must_equal_the_lock() {
        let status = "Package: libc6\nStatus: install ok installed\nVersion: 2.41-12\nArchitecture: amd64\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n";
        assert!(check_installed(&set(vec![entry("libc6", "2.41-12")]), status).is_ok());
        let e = check_installed(&set(vec![entry("libc6", "2.41-13")]), status)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in the lock [libc6 2.41-12 (amd64)]"), "{e}");
    }

    #[test]
    fn changes_name_added_removed_changed() {
        let old = vec![entry("a", "1"), entry("b", "1")];
        let new = vec![entry("a", "2"), entry("c", "1")];
        assert_eq!(
            changes(&old, &new),
            vec!["changed a 1 -> 2", "added c 1", "removed b 1"]
        );
    }

    #[test]
    fn the_lock_hash_follows_the_entries() {
        let a = set(vec![entry("a", "1")]);
        let b = set(vec![entry("a", "2")]);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), a.clone().hash());
    }
}
