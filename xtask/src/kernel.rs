//! `cargo xtask kernel`: a monolithic x86_64 kernel from Debian's linux-source-6.12
//! with kernel-config/hull.config merged onto `ARCH=x86_64 tinyconfig`.
//!
//! The result is cached under `<cache>/kernel/<hash>` where the hash covers the
//! source package version, the fragment and this recipe, so a cached build
//! returns at once. The object tree is kept between builds so that a changed
//! option rebuilds in seconds, not minutes.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::paths;

/// Bump when the steps below change in a way that changes the output.
/// 2: the build is reproducible ([`repro_env`]); recipe-1 kernels carried
/// their build time, build counter and `root@<host>` in `uname -v`.
const RECIPE: &str = "hull-kernel-recipe-2";

/// What `uname -v` shows instead of the build time: a constant, so that two
/// builds of the same inputs give the same bytes (the source version is in
/// `uname -r`, the recipe in the cache's `source` file).
pub const BUILD_TIMESTAMP: &str = "Thu Jan  1 00:00:00 UTC 2026";
const SOURCE_PKG: &str = "linux-source-6.12";

#[derive(clap::Args, Default)]
pub struct Args {
    /// Rebuild even if a cached kernel exists.
    #[arg(long)]
    pub force: bool,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// A built kernel in the cache.
pub struct Kernel {
    pub image: PathBuf,
}

pub fn fragment_path() -> PathBuf {
    paths::workspace().join("kernel-config/hull.config")
}

/// The cache entry of the current inputs: source version, fragment, recipe.
pub fn cache_dir(version: &str, fragment: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(RECIPE);
    h.update([0]);
    h.update(version);
    h.update([0]);
    h.update(fragment);
    let hash = hex::encode(h.finalize());
    paths::cache().join("kernel").join(&hash[..16])
}

pub fn read_fragment() -> Result<String> {
    fs::read_to_string(fragment_path())
        .with_context(|| format!("reading {}", fragment_path().display()))
}

pub fn run(args: &Args) -> Result<Kernel> {
    let sh = Shell::new()?;
    let version = source_version()?;
    let fragment = read_fragment()?;
    let out = cache_dir(&version, &fragment);
    let kernel = Kernel {
        image: out.join("bzImage"),
    };
    if kernel.image.exists() && !args.force {
        eprintln!("[kernel] cached: {}", kernel.image.display());
        return Ok(kernel);
    }

    let src = source_tree(&sh, &version)?;
    let obj = paths::cache().join("kernel-build/obj");
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    build_tree(&src, &obj, &version, &fragment, jobs)?;
    publish(&obj, &out, &version)?;
    let size = fs::metadata(&kernel.image)?.len();
    eprintln!(
        "[kernel] built {} ({:.1} MiB)",
        kernel.image.display(),
        size as f64 / 1048576.0
    );
    Ok(kernel)
}

/// Copies a built object tree's kernel into the cache entry `out`,
/// atomically: a half-written cache entry must never look complete.
pub fn publish(obj: &Path, out: &Path, version: &str) -> Result<()> {
    let tmp = out.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    fs::copy(obj.join("arch/x86/boot/bzImage"), tmp.join("bzImage"))?;
    fs::copy(obj.join(".config"), tmp.join("config"))?;
    fs::write(
        tmp.join("source"),
        format!("{SOURCE_PKG} {version}\n{RECIPE}\n"),
    )?;
    let _ = fs::remove_dir_all(out);
    fs::rename(&tmp, out)?;
    Ok(())
}

/// The environment that makes a kernel build depend on its inputs only: no
/// clock, user, host or build counter in `uname -v`. Paths need nothing
/// more: kbuild itself maps the source folder out of `__FILE__`
/// (`-fmacro-prefix-map=$(srctree)/=`), an out-of-tree build runs in the
/// object folder (objtree `.`), and the kernel has no debug info
/// (no DWARF paths). No extra compiler flags: they would change every
/// object's command line, and with it every cached object tree.
pub fn repro_env(_src: &Path, _obj: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("KBUILD_BUILD_TIMESTAMP", BUILD_TIMESTAMP.to_string()),
        ("KBUILD_BUILD_USER", "hull".to_string()),
        ("KBUILD_BUILD_HOST", "hull".to_string()),
        ("KBUILD_BUILD_VERSION", "1".to_string()),
        // Tools some steps call honour it.
        ("SOURCE_DATE_EPOCH", "1767225600".to_string()),
        ("LC_ALL", "C".to_string()),
        ("TZ", "UTC".to_string()),
    ]
}

/// Configures and builds `bzImage` of `src` into `obj` with [`repro_env`].
pub fn build_tree(
    src: &Path,
    obj: &Path,
    version: &str,
    fragment: &str,
    jobs: usize,
) -> Result<()> {
    let sh = Shell::new()?;
    for (k, v) in repro_env(src, obj) {
        sh.set_var(k, v);
    }
    fs::create_dir_all(obj)?;
    let obj_s = obj.to_string_lossy().to_string();
    let o = format!("O={obj_s}");
    sh.change_dir(src);

    eprintln!("[kernel] configuring {SOURCE_PKG} {version} in {obj_s}");
    cmd!(sh, "make -s {o} ARCH=x86_64 tinyconfig")
        .quiet()
        .run()?;
    let frag = fragment_path();
    cmd!(
        sh,
        "scripts/kconfig/merge_config.sh -m -O {obj_s} {obj_s}/.config {frag}"
    )
    .env("KCONFIG_CONFIG", obj.join(".config"))
    .quiet()
    .ignore_stdout()
    .run()?;
    cmd!(sh, "make -s {o} ARCH=x86_64 olddefconfig")
        .quiet()
        .run()?;
    let config = fs::read_to_string(obj.join(".config"))?;
    let missing = unmet(fragment, &config);
    if !missing.is_empty() {
        bail!(
            "kernel-config/hull.config: these options did not stick after olddefconfig \
             (a dependency is missing or they do not exist in {version}):\n  {}",
            missing.join("\n  ")
        );
    }
    make_with_progress(src, obj, jobs)
}

/// The installed source package's version (the cache key's first input).
pub fn source_version() -> Result<String> {
    let sh = Shell::new()?;
    let fmt = "${Version}";
    cmd!(sh, "dpkg-query -W -f {fmt} {SOURCE_PKG}")
        .quiet()
        .read()
        .with_context(|| format!("{SOURCE_PKG} is not installed: run `cargo xtask deps`"))
}

/// The unpacked source, re-extracted when the package version changes.
fn source_tree(sh: &Shell, version: &str) -> Result<PathBuf> {
    let base = paths::cache().join("src");
    let tree = base.join("linux-source-6.12");
    let stamp = base.join("linux-source-6.12.version");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(version) && tree.join("Makefile").exists()
    {
        return Ok(tree);
    }
    eprintln!("[kernel] unpacking /usr/src/linux-source-6.12.tar.xz");
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(&base)?;
    cmd!(sh, "tar -C {base} -xf /usr/src/linux-source-6.12.tar.xz").run()?;
    fs::write(&stamp, version)?;
    // A new source invalidates the object tree.
    let _ = fs::remove_dir_all(paths::cache().join("kernel-build"));
    Ok(tree)
}

fn make_with_progress(src: &Path, obj: &Path, jobs: usize) -> Result<()> {
    eprintln!("[kernel] make bzImage -j{jobs} (about 10 minutes on 2 cores when cold)");
    let start = Instant::now();
    let mut child = Command::new("make")
        .current_dir(src)
        .envs(repro_env(src, obj))
        .arg(format!("O={}", obj.display()))
        .arg("ARCH=x86_64")
        .arg(format!("-j{jobs}"))
        .arg("bzImage")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting make")?;
    let stdout = child.stdout.take().context("make stdout")?;
    let log_path = obj.join("hull-build.log");
    let mut log = String::new();
    let mut compiled = 0usize;
    let mut last = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line.trim_start().starts_with("CC") {
            compiled += 1;
        }
        if last.elapsed().as_secs() >= 15 {
            last = Instant::now();
            eprintln!(
                "[kernel] {:>4}s  {compiled} objects compiled, now: {}",
                start.elapsed().as_secs(),
                line.trim()
            );
        }
        log.push_str(&line);
        log.push('\n');
    }
    fs::write(&log_path, &log)?;
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "kernel make failed ({status}); full log in {}",
            log_path.display()
        );
    }
    eprintln!(
        "[kernel] make done in {}s ({compiled} objects compiled)",
        start.elapsed().as_secs()
    );
    Ok(())
}

/// Options of the fragment whose value differs in the final .config.
pub fn unmet(fragment: &str, config: &str) -> Vec<String> {
    let have = parse_config(config);
    parse_config(fragment)
        .into_iter()
        .filter(|(k, want)| have.get(k).map(String::as_str).unwrap_or("n") != want)
        .map(|(k, want)| {
            format!(
                "{k}={want} (got {})",
                have.get(&k).map(String::as_str).unwrap_or("n")
            )
        })
        .collect()
}

/// `CONFIG_X=v` and `# CONFIG_X is not set` (as `n`) lines.
fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                if name.starts_with("CONFIG_") {
                    m.insert(name.to_string(), "n".to_string());
                }
            }
        } else if let Some((k, v)) = line.split_once('=') {
            if k.starts_with("CONFIG_") {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmet_reports_missing_and_changed() {
        let frag = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\nCONFIG_D=y\n";
        let cfg = "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=\"x\"\n";
        assert_eq!(
            unmet(frag, cfg),
            vec![
                "CONFIG_B=n (got y)".to_string(),
                "CONFIG_D=y (got n)".to_string()
            ]
        );
    }

    #[test]
    fn not_set_matches_absent() {
        assert!(unmet("# CONFIG_MODULES is not set\n", "CONFIG_X=y\n").is_empty());
    }

    #[test]
    fn the_fragment_forbids_modules() {
        let frag = fs::read_to_string(fragment_path()).unwrap();
        let m = parse_config(&frag);
        assert_eq!(m.get("CONFIG_MODULES").map(String::as_str), Some("n"));
        assert_eq!(m.get("CONFIG_KEXEC").map(String::as_str), Some("n"));
    }
}
