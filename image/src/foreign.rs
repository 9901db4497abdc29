//! A Debian root for another architecture than the host's (arm64 on an
//! x86_64 builder), made without running a single program of that
//! architecture.
//!
//! mmdebstrap's usual modes configure packages by running their maintainer
//! scripts inside the new root, which for a foreign architecture needs
//! qemu-user registered with binfmt_misc. Build machines (containers, CI)
//! often cannot register it, so hull does not depend on it: mmdebstrap's
//! `extract` variant only downloads the package set (the arch's locked set
//! in `image/packages.lock`, [`resolve`]d as what `minbase` plus the
//! manifest's packages comes to) and unpacks it, and
//! [`configure`] then does, on the host, what the scripts that matter would
//! have done. Those scripts, and what stands in for each:
//!
//! - `base-passwd` postinst: /etc/passwd and /etc/group from its masters;
//!   `passwd`'s `shadowconfig on`: /etc/shadow and /etc/gshadow.
//! - `apt` postinst (`adduser _apt`) and `docker.io` postinst (`addgroup
//!   --system docker`): the `_apt` user and the `docker` group.
//! - `iptables`, `mawk`, `util-linux`, `tar`, `debianutils` postinsts
//!   (`update-alternatives`): /usr/sbin/iptables* (nft flavour, which Docker
//!   uses), awk, nawk, pager, rmt and which, through /etc/alternatives.
//! - `ca-certificates` postinst (`update-ca-certificates`):
//!   /etc/ca-certificates.conf and the /etc/ssl/certs bundle and links.
//! - `base-files` postinst: the /etc files it copies from
//!   /usr/share/base-files, root's dot files, /usr/local and the empty top
//!   folders.
//! - `debianutils` postinst (`add-shell`): /etc/shells.
//!
//! Left out, deliberately: `libc-bin`'s ldconfig (Debian's dynamic loader
//! searches the multiarch folders without a cache), `libpam-runtime`'s
//! pam-auth-update (nothing in the VM logs in), the systemd/sysvinit
//! enablement of docker.io, containerd, procps and e2fsprogs (hull-init
//! starts what runs), and the debconf database. dpkg's own status file is
//! left as `extract` leaves it (empty), so the image report lists no
//! package sizes for such a root.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lock::{Apt, LockSet, Request};
use crate::manifest::Manifest;
use crate::{io_err, run, Error, Result};

/// The architecture dpkg on this machine installs for.
pub fn native_arch() -> Result<String> {
    Ok(run(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_string())
}

/// Builds the root of the locked `set` for `arch` into the tarball `out`:
/// mmdebstrap unpacks exactly the set's `.deb`s (already fetched and
/// checked into `archives`), a hook records each unpacked `.deb`'s fields
/// and sha256 into `work`, and the build fails unless those are exactly the
/// lock's entries; then [`configure`] and the tarball.
pub fn build(
    m: &Manifest,
    set: &LockSet,
    arch: &str,
    archives: &Path,
    work: &Path,
    out: &Path,
) -> Result<()> {
    let dir = out.with_extension("dir");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(work).map_err(io_err(work))?;
    let pins: Vec<String> = set.packages.iter().map(crate::lock::Entry::pin).collect();
    let preload = format!(
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives && cp -l {}/*.deb \"$1\"/var/cache/apt/archives/",
        archives.display()
    );
    let res = mmdebstrap(m, arch, &[pins.join(",")], &[preload], work, &dir)
        .and_then(|unpacked| {
            crate::lock::check_installed(set, &unpacked)?;
            let sums: String = crate::lock::installed_sha256(&unpacked)
                .iter()
                .map(|(sum, file)| format!("{sum}  {file}\n"))
                .collect();
            crate::rootfs::check_used(set, &sums)
        })
        .and_then(|()| configure(m, &dir))
        .and_then(|()| tar(m, &dir, out));
    let _ = fs::remove_dir_all(&dir);
    res
}

/// `cargo xtask image --update-lock` for a foreign arch: what `extract`
/// unpacks for `minbase` plus the requested packages, from the suite and
/// its security suite (apt takes the highest version of each, so the
/// security fixes are in), with each `.deb`'s sha256 from the signed
/// indexes.
pub fn resolve(m: &Manifest, req: &Request, arch: &str, work: &Path) -> Result<LockSet> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).map_err(io_err(work))?;
    let apt = Apt::update(&m.debian, arch, &work.join("apt"))?;
    // `extract` installs no base set of its own: ask for what `minbase` is
    // (Essential:yes, Priority:required, apt), as apt patterns, each its
    // own --include (mmdebstrap does not split a pattern at commas).
    if m.debian.variant != "minbase" {
        return Err(Error::Other(format!(
            "a foreign-architecture root is built for variant \"minbase\" only, the manifest asks for {:?}",
            m.debian.variant
        )));
    }
    let includes = [
        "?essential".to_string(),
        "?priority(required)".to_string(),
        "apt".to_string(),
        req.requested.join(","),
    ];
    let unpacked = mmdebstrap(
        m,
        arch,
        &includes,
        &[],
        &work.join("out"),
        &work.join("root"),
    )?;
    let packages = crate::lock::entries(&unpacked, &apt.index()?)?;
    let _ = fs::remove_dir_all(work);
    Ok(LockSet {
        sources: req.sources.clone(),
        requested: req.requested.clone(),
        packages,
    })
}

/// Runs mmdebstrap `extract` of `includes` for `arch` into the folder
/// `dir`, and returns what it unpacked as dpkg-status-like stanzas
/// (Package, Version, Architecture, Status, SHA256 of the `.deb`), recorded
/// by a hook into `work` from the `.deb`s themselves before they are
/// removed.
fn mmdebstrap(
    m: &Manifest,
    arch: &str,
    includes: &[String],
    hooks: &[String],
    work: &Path,
    dir: &Path,
) -> Result<String> {
    let d = &m.debian;
    fs::create_dir_all(work).map_err(io_err(work))?;
    let record = work.join("unpacked");
    let mut c = Command::new("mmdebstrap");
    c.env("SOURCE_DATE_EPOCH", m.image.source_date_epoch.to_string())
        .arg("--mode=root")
        .arg("--format=directory")
        .arg("--variant=extract")
        .arg(format!("--architectures={arch}"));
    for i in includes.iter().filter(|i| !i.is_empty()) {
        c.arg(format!("--include={i}"));
    }
    c.arg("--aptopt=APT::Install-Recommends \"false\"")
        .args(hooks)
        // `extract` runs no customize hooks: its extract hooks come after
        // the unpack, while the .debs are still in the apt cache.
        .arg(format!(
            "--extract-hook=cd \"$1\"/var/cache/apt/archives && for f in *.deb; do \
             dpkg-deb -f \"$f\" Package Version Architecture && \
             echo \"Status: install ok installed\" && \
             echo \"SHA256: $(sha256sum < \"$f\" | cut -d' ' -f1)\" && echo || exit 1; \
             done > {}",
            record.display()
        ))
        // Preloaded .debs stay in the apt cache otherwise (mmdebstrap only
        // removes what it downloaded itself).
        .arg("--extract-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb")
        .arg(&d.suite)
        .arg(dir)
        .args(crate::rootfs::source_lines(d));
    run(&mut c)?;
    fs::read_to_string(&record).map_err(io_err(&record))
}

/// dpkg applies the manifest's path filters while unpacking; `extract`
/// unpacks without dpkg, so the same filters are applied here afterwards.
fn filter_paths(m: &Manifest, root: &Path) -> Result<()> {
    let keep: Vec<glob::Pattern> = m
        .debian
        .dpkg_include
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    for pattern in &m.debian.dpkg_exclude {
        let full = root.join(pattern.trim_start_matches('/'));
        let paths = glob::glob(&full.to_string_lossy())
            .map_err(|e| Error::Other(format!("dpkg_exclude pattern {pattern:?}: {e}")))?;
        for p in paths.flatten() {
            remove_unless_kept(root, &p, &keep)?;
        }
    }
    Ok(())
}

fn remove_unless_kept(root: &Path, p: &Path, keep: &[glob::Pattern]) -> Result<()> {
    let rel = format!("/{}", p.strip_prefix(root).unwrap_or(p).display());
    let meta = fs::symlink_metadata(p).map_err(io_err(p))?;
    if meta.is_dir() {
        for e in fs::read_dir(p).map_err(io_err(p))? {
            let e = e.map_err(io_err(p))?;
            remove_unless_kept(root, &e.path(), keep)?;
        }
        // Empty now unless something in it was kept.
        let _ = fs::remove_dir(p);
    } else if !keep.iter().any(|k| k.matches(&rel)) {
        fs::remove_file(p).map_err(io_err(p))?;
    }
    Ok(())
}

/// What the maintainer scripts listed in the module documentation would
/// have done, done on the host.
pub fn configure(m: &Manifest, root: &Path) -> Result<()> {
    filter_paths(m, root)?;
    accounts(m, root)?;
    shadow_owner(root)?;
    alternatives(root)?;
    certificates(root)?;
    base_files(root)?;
    Ok(())
}

fn write(root: &Path, path: &str, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(path.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    fs::write(&p, text).map_err(io_err(&p))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err(&p))
}

fn read(root: &Path, path: &str) -> Result<String> {
    let p = root.join(path.trim_start_matches('/'));
    fs::read_to_string(&p).map_err(io_err(&p))
}

/// Users and groups: base-passwd's masters, plus what apt's and docker.io's
/// postinsts add; shadow files with locked passwords, dated like the build.
fn accounts(m: &Manifest, root: &Path) -> Result<()> {
    let mut passwd = read(root, "/usr/share/base-passwd/passwd.master")?;
    let mut group = read(root, "/usr/share/base-passwd/group.master")?;
    if root.join("usr/bin/apt-get").exists() {
        passwd.push_str("_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n");
    }
    if root.join("usr/sbin/dockerd").exists() {
        // addgroup --system takes the first free system gid: 101 in a
        // minbase root, as in the native build.
        group.push_str("docker:x:101:\n");
    }
    let day = m.image.source_date_epoch / 86400;
    let shadow: String = passwd
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(|u| format!("{u}:*:{day}:0:99999:7:::\n"))
        .collect();
    let gshadow: String = group
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(|g| format!("{g}:*::\n"))
        .collect();
    write(root, "/etc/passwd", &passwd, 0o644)?;
    write(root, "/etc/group", &group, 0o644)?;
    write(root, "/etc/shadow", &shadow, 0o640)?;
    write(root, "/etc/gshadow", &gshadow, 0o640)
}

/// shadow's files belong to group shadow (42), as passwd's scripts leave
/// them (needs root, as the whole image build does).
fn shadow_owner(root: &Path) -> Result<()> {
    for f in ["etc/shadow", "etc/gshadow"] {
        let p = root.join(f);
        std::os::unix::fs::chown(&p, Some(0), Some(42)).map_err(io_err(&p))?;
    }
    Ok(())
}

/// (link, alternatives name, chosen target): the choices the native build's
/// update-alternatives makes (highest priority; iptables' nft flavour).
const ALTERNATIVES: &[(&str, &str, &str)] = &[
    ("/usr/sbin/iptables", "iptables", "/usr/sbin/iptables-nft"),
    (
        "/usr/sbin/iptables-restore",
        "iptables-restore",
        "/usr/sbin/iptables-nft-restore",
    ),
    (
        "/usr/sbin/iptables-save",
        "iptables-save",
        "/usr/sbin/iptables-nft-save",
    ),
    (
        "/usr/sbin/ip6tables",
        "ip6tables",
        "/usr/sbin/ip6tables-nft",
    ),
    (
        "/usr/sbin/ip6tables-restore",
        "ip6tables-restore",
        "/usr/sbin/ip6tables-nft-restore",
    ),
    (
        "/usr/sbin/ip6tables-save",
        "ip6tables-save",
        "/usr/sbin/ip6tables-nft-save",
    ),
    (
        "/usr/sbin/arptables",
        "arptables",
        "/usr/sbin/arptables-nft",
    ),
    (
        "/usr/sbin/arptables-restore",
        "arptables-restore",
        "/usr/sbin/arptables-nft-restore",
    ),
    (
        "/usr/sbin/arptables-save",
        "arptables-save",
        "/usr/sbin/arptables-nft-save",
    ),
    ("/usr/sbin/ebtables", "ebtables", "/usr/sbin/ebtables-nft"),
    (
        "/usr/sbin/ebtables-restore",
        "ebtables-restore",
        "/usr/sbin/ebtables-nft-restore",
    ),
    (
        "/usr/sbin/ebtables-save",
        "ebtables-save",
        "/usr/sbin/ebtables-nft-save",
    ),
    ("/usr/bin/awk", "awk", "/usr/bin/mawk"),
    ("/usr/bin/nawk", "nawk", "/usr/bin/mawk"),
    ("/usr/bin/pager", "pager", "/bin/more"),
    ("/usr/sbin/rmt", "rmt", "/usr/sbin/rmt-tar"),
    ("/usr/bin/which", "which", "/usr/bin/which.debianutils"),
];

fn alternatives(root: &Path) -> Result<()> {
    let alt_dir = root.join("etc/alternatives");
    fs::create_dir_all(&alt_dir).map_err(io_err(&alt_dir))?;
    for (link, name, target) in ALTERNATIVES {
        // A package that is not in this root has no alternative to offer.
        let target_in_root = root.join(target.trim_start_matches('/'));
        if fs::symlink_metadata(&target_in_root).is_err() {
            continue;
        }
        let alt = alt_dir.join(name);
        let link = root.join(link.trim_start_matches('/'));
        for p in [&alt, &link] {
            let _ = fs::remove_file(p);
        }
        symlink(target, &alt).map_err(io_err(&alt))?;
        symlink(format!("/etc/alternatives/{name}"), &link).map_err(io_err(&link))?;
    }
    Ok(())
}

/// update-ca-certificates: every Mozilla certificate enabled, the bundle
/// /etc/ssl/certs/ca-certificates.crt, a link per certificate and the hash
/// links (the host's `openssl rehash`: they depend on content only).
fn certificates(root: &Path) -> Result<()> {
    let share = root.join("usr/share/ca-certificates");
    if !share.exists() {
        return Ok(());
    }
    let mut certs: Vec<PathBuf> = glob::glob(&format!("{}/*/*.crt", share.display()))
        .map_err(|e| Error::Other(e.to_string()))?
        .flatten()
        .collect();
    certs.sort();
    let mut conf = String::from(
        "# Written by hull's image builder in place of ca-certificates' postinst:\n# every certificate below is trusted.\n",
    );
    let mut bundle = String::new();
    let certs_dir = root.join("etc/ssl/certs");
    fs::create_dir_all(&certs_dir).map_err(io_err(&certs_dir))?;
    for c in &certs {
        let rel = c.strip_prefix(&share).unwrap_or(c).display().to_string();
        conf.push_str(&rel);
        conf.push('\n');
        let pem = fs::read_to_string(c).map_err(io_err(c))?;
        bundle.push_str(pem.trim_end());
        bundle.push('\n');
        if let Some(file) = c.file_name() {
            let pem_name = Path::new(file).with_extension("pem");
            let link = certs_dir.join(pem_name);
            let _ = fs::remove_file(&link);
            // Relative (Debian's are absolute, to the same file), so that
            // the host's `openssl rehash` below reads the root's
            // certificates, not the host's.
            symlink(format!("../../../usr/share/ca-certificates/{rel}"), &link)
                .map_err(io_err(&link))?;
        }
    }
    write(root, "/etc/ca-certificates.conf", &conf, 0o644)?;
    write(root, "/etc/ssl/certs/ca-certificates.crt", &bundle, 0o644)?;
    run(Command::new("openssl").arg("rehash").arg(&certs_dir)).map(|_| ())
}

/// base-files' postinst copies these templates into /etc and root's home,
/// and makes the top-level folders the FHS promises.
fn base_files(root: &Path) -> Result<()> {
    let tmpl = root.join("usr/share/base-files");
    for (from, to, mode) in [
        ("profile", "/etc/profile", 0o644),
        ("motd", "/etc/motd", 0o644),
        ("nsswitch.conf", "/etc/nsswitch.conf", 0o644),
        ("networks", "/etc/networks", 0o644),
        ("dot.profile", "/root/.profile", 0o644),
        ("dot.bashrc", "/root/.bashrc", 0o644),
    ] {
        let src = tmpl.join(from);
        if let Ok(text) = fs::read_to_string(&src) {
            write(root, to, &text, mode)?;
        }
    }
    for d in [
        "etc/opt",
        "media",
        "mnt",
        "opt",
        "srv",
        "run/lock",
        "usr/local/bin",
        "usr/local/etc",
        "usr/local/games",
        "usr/local/include",
        "usr/local/lib",
        "usr/local/libexec",
        "usr/local/sbin",
        "usr/local/share/man",
        "usr/local/src",
    ] {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
    }
    let mut shells = String::from("# /etc/shells: valid login shells\n");
    for sh in [
        "/bin/sh",
        "/usr/bin/sh",
        "/bin/bash",
        "/usr/bin/bash",
        "/bin/dash",
        "/usr/bin/dash",
    ] {
        if fs::symlink_metadata(root.join(sh.trim_start_matches('/'))).is_ok() {
            shells.push_str(sh);
            shells.push('\n');
        }
    }
    write(root, "/etc/shells", &shells, 0o644)
}

/// The tarball, in the form mmdebstrap's own tar output has: numeric owners,
/// xattrs (file capabilities), names sorted and times clamped to the
/// manifest's epoch, so the same packages give the same bytes.
fn tar(m: &Manifest, dir: &Path, out: &Path) -> Result<()> {
    run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args([
            "--sort=name",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--clamp-mtime",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
        ])
        .arg(format!("--mtime=@{}", m.image.source_date_epoch))
        .arg("-cf")
        .arg(out)
        .arg("."))
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
[image]
source_date_epoch = 1767225600
filesystem_uuid = "68756c6c-0000-4000-8000-000000000001"
[debian]
suite = "trixie"
mirror = "http://deb.debian.org/debian"
packages = ["docker.io"]
dpkg_exclude = ["/usr/share/doc/*"]
dpkg_include = ["/usr/share/doc/*/copyright"]
"#,
        )
        .unwrap()
    }

    fn fake_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (p, text) in [
            (
                "usr/share/base-passwd/passwd.master",
                "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            ),
            ("usr/share/base-passwd/group.master", "root:*:0:\nshadow:*:42:\n"),
            ("usr/sbin/dockerd", ""),
            ("usr/bin/apt-get", ""),
            ("usr/sbin/iptables-nft", ""),
            ("usr/share/doc/x/copyright", "c"),
            ("usr/share/doc/x/changelog.gz", "z"),
        ] {
            let f = r.join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, text).unwrap();
        }
        d
    }

    #[test]
    fn accounts_are_the_masters_plus_what_the_scripts_add() {
        let d = fake_root();
        accounts(&manifest(), d.path()).unwrap();
        let passwd = fs::read_to_string(d.path().join("etc/passwd")).unwrap();
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains("_apt:x:42:65534:"));
        let group = fs::read_to_string(d.path().join("etc/group")).unwrap();
        assert!(group.ends_with("docker:x:101:\n"), "{group}");
        let shadow = fs::read_to_string(d.path().join("etc/shadow")).unwrap();
        assert!(
            shadow.starts_with("root:*:20454:0:99999:7:::\n"),
            "{shadow}"
        );
    }

    #[test]
    fn iptables_is_the_nft_flavour_and_absent_choices_are_skipped() {
        let d = fake_root();
        alternatives(d.path()).unwrap();
        let link = fs::read_link(d.path().join("usr/sbin/iptables")).unwrap();
        assert_eq!(link, Path::new("/etc/alternatives/iptables"));
        let alt = fs::read_link(d.path().join("etc/alternatives/iptables")).unwrap();
        assert_eq!(alt, Path::new("/usr/sbin/iptables-nft"));
        // mawk is not in this root: no dangling awk.
        assert!(fs::symlink_metadata(d.path().join("usr/bin/awk")).is_err());
    }

    #[test]
    fn dpkg_filters_apply_after_extraction() {
        let d = fake_root();
        filter_paths(&manifest(), d.path()).unwrap();
        assert!(d.path().join("usr/share/doc/x/copyright").exists());
        assert!(!d.path().join("usr/share/doc/x/changelog.gz").exists());
    }
}
