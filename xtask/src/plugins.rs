//! The Docker CLI plugins `docker compose` (v2) and `docker buildx`, from
//! the same Debian suite as the VM's engine (trixie's docker.io 26.1.5), so
//! the CLI's BuildKit and Compose speak the engine's API version.
//!
//! The build machine runs bookworm, whose `docker-compose` is the Python
//! 1.29 one and which has no buildx: the .debs come from trixie through a
//! private apt configuration (its own sources list, lists and cache under
//! the hull cache; the host's apt sources are never touched). apt checks
//! the signed Release file and the .deb's hash in the Packages index; the
//! pinned sha256 below is checked again, so a moved-on archive fails here
//! instead of installing something else. Only the plugin binaries are
//! unpacked (`dpkg-deb -x`) and installed: nothing is registered in the
//! host's dpkg database.
//!
//! trixie's binaries are Go, linked dynamically against libc only, and
//! need GLIBC_2.34 at most (bookworm has 2.36); `install` checks that on
//! every install rather than trusting this comment.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

/// The Debian suite the pins below were taken from; it must be the image
/// manifest's `[debian] suite`.
const SUITE: &str = "trixie";

/// One plugin package, pinned.
pub struct Plugin {
    /// Debian package (and source) name.
    pub package: &'static str,
    /// Debian version, as `apt-get download pkg=version` wants it.
    pub version: &'static str,
    /// sha256 of the amd64 .deb, from trixie's signed Packages index.
    pub sha256: &'static str,
    /// The binary, under usr/libexec/docker/cli-plugins/ in the .deb.
    pub binary: &'static str,
    /// The `Version` its `docker-cli-plugin-metadata` reports.
    pub reports: &'static str,
}

/// The pins (trixie, 2026-12; the engine in the VM is trixie's docker.io
/// 26.1.5+dfsg1-9+deb13u1: compose 2.26 and buildx 0.13 are its
/// contemporaries). To move them: `apt-cache show` against a trixie list,
/// copy Version and SHA256.
pub const PLUGINS: &[Plugin] = &[
    Plugin {
        package: "docker-compose",
        version: "2.26.1-4",
        sha256: "47681197cb2b1ab88206b42a1a92fc75f50d9530a6322d03494a473eed0408ea",
        binary: "docker-compose",
        reports: "2.26.1-4",
    },
    Plugin {
        package: "docker-buildx",
        version: "0.13.1+ds1-3",
        sha256: "fcf8c48204d1603c8f209451d7827eb91bf30759578baf7704e9e1a87e5f1d7f",
        binary: "docker-buildx",
        reports: "0.13.1+ds1",
    },
];

/// Where the Docker CLI looks for plugins for every user of the machine.
pub const SYSTEM_DIR: &str = "/usr/local/lib/docker/cli-plugins";

/// As root, the machine-wide directory (the VM tier runs the CLI with its
/// own DOCKER_CONFIG, which hides a user's ~/.docker); otherwise the
/// user's own `$DOCKER_CONFIG/cli-plugins` or `~/.docker/cli-plugins`.
fn plugin_dir() -> Result<PathBuf> {
    if crate::deps::is_root() {
        return Ok(PathBuf::from(SYSTEM_DIR));
    }
    if let Some(c) = std::env::var_os("DOCKER_CONFIG") {
        return Ok(Path::new(&c).join("cli-plugins"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(Path::new(&home).join(".docker/cli-plugins"))
}

/// The `Version` a plugin binary reports, if it runs at all.
fn reported_version(sh: &Shell, exe: &Path) -> Option<String> {
    let out = cmd!(sh, "{exe} docker-cli-plugin-metadata")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v["Version"].as_str().map(str::to_string)
}

/// Installs the pinned plugins that are missing or at another version,
/// then checks that the Docker CLI runs both.
pub fn install(sh: &Shell) -> Result<()> {
    let dir = plugin_dir()?;
    let stale: Vec<&Plugin> = PLUGINS
        .iter()
        .filter(|p| reported_version(sh, &dir.join(p.binary)).as_deref() != Some(p.reports))
        .collect();
    if !stale.is_empty() {
        let work = crate::paths::shared_target(
            "docker-plugins",
            crate::paths::target().join("docker-plugins"),
        );
        let debs = download(sh, &work, &stale)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (p, deb) in stale.iter().zip(debs) {
            install_one(sh, &work, p, &deb, &dir)?;
        }
    }
    check_cli(sh)
}

/// The apt options that make apt-get use only `work`: its own sources
/// list, lists, cache and (empty) dpkg status. The host's apt.conf.d is
/// kept (proxies), its sources are not.
fn apt_options(work: &Path) -> Vec<String> {
    let w = work.display();
    [
        format!("Dir::Etc::SourceList={w}/sources.list"),
        format!("Dir::Etc::SourceParts={w}/sources.list.d"),
        format!("Dir::State::Lists={w}/lists"),
        format!("Dir::State::status={w}/status"),
        format!("Dir::Cache={w}/cache"),
        "APT::Architecture=amd64".into(),
        "APT::Architectures=amd64".into(),
        "Acquire::Languages=none".into(),
        // The files belong to whoever runs deps; apt's _apt user could
        // not write them (and would warn).
        "APT::Sandbox::User=root".into(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

/// `apt-get update` and `apt-get download` of the pinned versions into
/// `work/debs`; returns the .deb of each plugin, hash-checked.
fn download(sh: &Shell, work: &Path, plugins: &[&Plugin]) -> Result<Vec<PathBuf>> {
    let arch = cmd!(sh, "dpkg --print-architecture").quiet().read()?;
    ensure!(
        arch.trim() == "amd64",
        "the Docker CLI plugins are pinned for amd64; this machine is {}",
        arch.trim()
    );
    let manifest =
        hull_image::Manifest::load(&crate::paths::workspace().join("image/manifest.toml"))?;
    ensure!(
        manifest.debian.suite == SUITE,
        "the VM image moved to Debian {} but the Docker CLI plugins are pinned to {SUITE}'s versions: re-pin PLUGINS in xtask/src/plugins.rs",
        manifest.debian.suite
    );
    for d in [
        "lists/partial",
        "cache/archives/partial",
        "sources.list.d",
        "debs",
    ] {
        std::fs::create_dir_all(work.join(d))?;
    }
    std::fs::write(work.join("status"), "")?;
    std::fs::write(
        work.join("sources.list"),
        format!(
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {SUITE} main\n",
            manifest.debian.mirror
        ),
    )?;
    let opts_owned = apt_options(work);
    let opts = &opts_owned[..];
    eprintln!(
        "[deps] fetching {SUITE}'s package lists into {}",
        work.display()
    );
    cmd!(sh, "apt-get -q {opts...} update")
        .run()
        .context("apt-get update of the private trixie list")?;
    let want: Vec<String> = plugins
        .iter()
        .map(|p| format!("{}={}", p.package, p.version))
        .collect();
    let want_args = &want[..];
    let debs = work.join("debs");
    let _cd = sh.push_dir(&debs);
    if cmd!(sh, "apt-get -q {opts...} download {want_args...}")
        .run()
        .is_err()
    {
        let names: Vec<&str> = plugins.iter().map(|p| p.package).collect();
        let now = cmd!(sh, "apt-cache {opts...} madison {names...}")
            .quiet()
            .read()
            .unwrap_or_default();
        bail!(
            "{SUITE} no longer has the pinned {}; it has:\n{now}\nre-pin PLUGINS in xtask/src/plugins.rs (Version and SHA256 from `apt-cache show`)",
            want.join(" ")
        );
    }
    let mut out = Vec::new();
    for p in plugins {
        // apt names the file with the version's epoch colon escaped; none
        // of the pins has an epoch.
        let deb = debs.join(format!("{}_{}_amd64.deb", p.package, p.version));
        let bytes = std::fs::read(&deb).with_context(|| format!("reading {}", deb.display()))?;
        let got = hex::encode(Sha256::digest(&bytes));
        ensure!(
            got == p.sha256,
            "{} has sha256 {got}, not the pinned {} (the archive changed under the same version?)",
            deb.display(),
            p.sha256
        );
        out.push(deb);
    }
    Ok(out)
}

/// The newest GLIBC_x.y symbol version `exe` needs (0.0 when none).
fn glibc_needed(sh: &Shell, exe: &Path) -> Result<(u32, u32)> {
    let syms = cmd!(sh, "objdump -T {exe}")
        .quiet()
        .read()
        .with_context(|| format!("objdump -T {} (binutils)", exe.display()))?;
    Ok(newest_glibc(&syms))
}

/// The newest GLIBC_x.y version named in `objdump -T` output, where it is
/// written "(GLIBC_2.34)" for a versioned symbol (0.0 when none).
fn newest_glibc(objdump: &str) -> (u32, u32) {
    objdump
        .split_whitespace()
        .map(|w| w.trim_start_matches('(').trim_end_matches(')'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(parse_glibc)
        .max()
        .unwrap_or((0, 0))
}

fn parse_glibc(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().unwrap_or("0").parse().ok()?;
    Some((major, minor))
}

/// This machine's glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36").
fn host_glibc(sh: &Shell) -> Result<(u32, u32)> {
    let v = cmd!(sh, "getconf GNU_LIBC_VERSION").quiet().read()?;
    v.split_whitespace()
        .last()
        .and_then(parse_glibc)
        .with_context(|| format!("unreadable glibc version {v:?}"))
}

fn install_one(sh: &Shell, work: &Path, p: &Plugin, deb: &Path, dir: &Path) -> Result<()> {
    let x = work.join(format!("extract-{}", p.package));
    let _ = std::fs::remove_dir_all(&x);
    cmd!(sh, "dpkg-deb -x {deb} {x}").run()?;
    let exe = x.join("usr/libexec/docker/cli-plugins").join(p.binary);
    ensure!(
        exe.is_file(),
        "{} holds no {}",
        deb.display(),
        exe.display()
    );
    let (need, have) = (glibc_needed(sh, &exe)?, host_glibc(sh)?);
    ensure!(
        need <= have,
        "{SUITE}'s {} needs GLIBC_{}.{} but this machine has glibc {}.{}",
        p.package,
        need.0,
        need.1,
        have.0,
        have.1
    );
    let got = reported_version(sh, &exe);
    ensure!(
        got.as_deref() == Some(p.reports),
        "{} does not run here or reports {got:?}, not {}",
        exe.display(),
        p.reports
    );
    // Copy beside, then rename: a CLI running now sees the old or the new
    // binary, never half of one.
    let dest = dir.join(p.binary);
    let tmp = dir.join(format!(".{}.new", p.binary));
    std::fs::copy(&exe, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("installing {}", dest.display()))?;
    let _ = std::fs::remove_dir_all(&x);
    eprintln!(
        "[deps] installed {} {} to {} (needs GLIBC_{}.{}, host has {}.{})",
        p.package,
        p.version,
        dest.display(),
        need.0,
        need.1,
        have.0,
        have.1
    );
    Ok(())
}

/// The Docker CLI finds and runs both plugins (`docker compose version`,
/// `docker buildx version`).
fn check_cli(sh: &Shell) -> Result<()> {
    for p in PLUGINS {
        let sub = p.binary.trim_start_matches("docker-");
        let want = p.reports;
        match cmd!(sh, "docker {sub} version").quiet().read() {
            Ok(s) if s.contains(want) => {}
            Ok(s) => bail!(
                "`docker {sub} version` reports {s:?}, not {want}: another {} shadows the one installed",
                p.binary
            ),
            Err(e) => bail!("`docker {sub} version` fails after installing {}: {e}", p.package),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_versions_parse_and_order() {
        assert_eq!(super::parse_glibc("2.34"), Some((2, 34)));
        assert_eq!(super::parse_glibc("2.3.4"), Some((2, 3)));
        assert!(super::parse_glibc("2.38") > super::parse_glibc("2.36"));
        assert!(super::parse_glibc("2.9") < super::parse_glibc("2.36"));
        assert_eq!(super::parse_glibc("PRIVATE"), None);
    }

    #[test]
    fn newest_glibc_reads_objdump_t() {
        // The form objdump -T prints for versioned symbols.
        let out = "DYNAMIC SYMBOL TABLE:\n\
            0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.34) res_search\n\
            0000000000000000      DF *UND*\t0000000000000000 (GLIBC_2.2.5) free\n\
            0000000000000000      DF *UND*\t0000000000000000  GLIBC_2.3.4  __vfprintf_chk\n";
        assert_eq!(super::newest_glibc(out), (2, 34));
        assert_eq!(super::newest_glibc("no versions here"), (0, 0));
    }

    #[test]
    fn pins_are_whole() {
        for p in super::PLUGINS {
            assert_eq!(p.sha256.len(), 64, "{}", p.package);
            assert!(p
                .version
                .starts_with(p.reports.split('-').next().unwrap_or("")));
        }
    }
}
