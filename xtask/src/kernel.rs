//! `cargo xtask kernel`: a monolithic x86_64 kernel from Debian's linux-source-6.12
//! with kernel-config/hull.config merged onto `ARCH=x86_64 tinyconfig`;
//! `--arch arm64`: the same source cross-built with Debian's
//! `aarch64-linux-gnu-` compiler, hull.config (less its x86-only options)
//! plus kernel-config/arm64.config merged onto `ARCH=arm64 tinyconfig`.
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
use hull_qemu::arch::Arch;

/// Bump when the steps below change in a way that changes the output.
/// 2: the build is reproducible ([`repro_env`]); recipe-1 kernels carried
/// their build time, build counter and `root@<host>` in `uname -v`.
const RECIPE: &str = "hull-kernel-recipe-2";

/// What `uname -v` shows instead of the build time: a constant, so that two
/// builds of the same inputs give the same bytes (the source version is in
/// `uname -r`, the recipe in the cache's `source` file).
pub const BUILD_TIMESTAMP: &str = "Thu Jan  1 00:00:00 UTC 2026";
const SOURCE_PKG: &str = "linux-source-6.12";

#[derive(clap::Args)]
pub struct Args {
    /// Rebuild even if a cached kernel exists.
    #[arg(long)]
    pub force: bool,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The guest architecture (default: this host's).
    #[arg(long, value_enum, default_value_t = Arch::host())]
    pub arch: Arch,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            force: false,
            jobs: None,
            arch: Arch::host(),
        }
    }
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

/// kernel-config/arm64.config: arm64's own options and `# drop` lines.
pub fn arm64_fragment_path() -> PathBuf {
    paths::workspace().join("kernel-config/arm64.config")
}

/// The fragment merged for `arch`: hull.config as it is on x86_64; on
/// arm64, hull.config without the options arm64.config drops, then
/// arm64.config (written to the object folder for merge_config.sh).
pub fn fragment_for(arch: Arch) -> Result<String> {
    let common = read_fragment()?;
    match arch {
        Arch::X86_64 => Ok(common),
        Arch::Arm64 => {
            let path = arm64_fragment_path();
            let own =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(combine(&common, &own))
        }
    }
}

/// `common` less the options named by `# drop CONFIG_X` lines of `own`,
/// followed by `own`.
fn combine(common: &str, own: &str) -> String {
    let dropped: Vec<&str> = own
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# drop "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let mut out = String::new();
    for line in common.lines() {
        let name = config_name(line);
        if name.is_some_and(|n| dropped.contains(&n)) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(own);
    out
}

/// The option a fragment line sets or unsets, if any.
fn config_name(line: &str) -> Option<&str> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("# ") {
        return rest
            .strip_suffix(" is not set")
            .filter(|n| n.starts_with("CONFIG_"));
    }
    line.split_once('=')
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CONFIG_"))
}

/// The cache entry of `arch`'s kernel. x86_64's key is [`cache_dir`]'s
/// (unchanged, so the kernels cached before arm64 existed stay valid);
/// arm64's adds the architecture.
pub fn cache_dir_for(arch: Arch, version: &str, fragment: &str) -> PathBuf {
    match arch {
        Arch::X86_64 => cache_dir(version, fragment),
        Arch::Arm64 => {
            let mut h = Sha256::new();
            h.update(RECIPE);
            h.update([0]);
            h.update(arch.as_str());
            h.update([0]);
            h.update(version);
            h.update([0]);
            h.update(fragment);
            let hash = hex::encode(h.finalize());
            paths::cache()
                .join("kernel")
                .join(format!("{arch}-{}", &hash[..16]))
        }
    }
}

/// Where `arch`'s object tree is kept between builds (one per arch: the two
/// never share objects).
fn obj_dir(arch: Arch) -> PathBuf {
    match arch {
        Arch::X86_64 => paths::cache().join("kernel-build/obj"),
        Arch::Arm64 => paths::cache().join(format!("kernel-build/obj-{arch}")),
    }
}

/// The make variables that select `arch` (and its cross compiler when it is
/// not the host's).
fn make_vars(arch: Arch) -> Vec<String> {
    let mut v = vec![format!("ARCH={}", arch.kernel())];
    if arch != Arch::host() {
        v.push(format!("CROSS_COMPILE={}-", arch.gnu_triple()));
    }
    v
}

pub fn run(args: &Args) -> Result<Kernel> {
    let sh = Shell::new()?;
    let arch = args.arch;
    let version = source_version()?;
    let fragment = fragment_for(arch)?;
    let out = cache_dir_for(arch, &version, &fragment);
    let kernel = Kernel {
        image: out.join(image_name(arch)),
    };
    if kernel.image.exists() && !args.force {
        eprintln!("[kernel] cached: {}", kernel.image.display());
        return Ok(kernel);
    }

    let src = source_tree(&sh, &version)?;
    let obj = obj_dir(arch);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    build_tree_for(arch, &src, &obj, &version, &fragment, jobs)?;
    publish_for(arch, &obj, &out, &version)?;
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
    publish_for(Arch::X86_64, obj, out, version)
}

/// The kernel's file name in a cache entry: `bzImage` on x86_64 (as
/// always), `Image` on arm64.
pub fn image_name(arch: Arch) -> &'static str {
    arch.kernel_make_target()
}

/// [`publish`] for `arch`'s boot image.
pub fn publish_for(arch: Arch, obj: &Path, out: &Path, version: &str) -> Result<()> {
    let tmp = out.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    fs::copy(obj.join(arch.kernel_image()), tmp.join(image_name(arch)))?;
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
    build_tree_for(Arch::X86_64, src, obj, version, fragment, jobs)
}

/// [`build_tree`] for `arch`; `fragment` is [`fragment_for`]'s text.
pub fn build_tree_for(
    arch: Arch,
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

    let vars = make_vars(arch);
    eprintln!("[kernel] configuring {SOURCE_PKG} {version} for {arch} in {obj_s}");
    let vars_ref = &vars;
    cmd!(sh, "make -s {o} {vars_ref...} tinyconfig")
        .quiet()
        .run()?;
    // merge_config.sh takes files: the arch's combined fragment is written
    // beside the object tree.
    let frag = obj.join("hull-fragment.config");
    fs::write(&frag, fragment)?;
    cmd!(
        sh,
        "scripts/kconfig/merge_config.sh -m -O {obj_s} {obj_s}/.config {frag}"
    )
    .env("KCONFIG_CONFIG", obj.join(".config"))
    .env("ARCH", arch.kernel())
    .quiet()
    .ignore_stdout()
    .run()?;
    cmd!(sh, "make -s {o} {vars...} olddefconfig")
        .quiet()
        .run()?;
    let config = fs::read_to_string(obj.join(".config"))?;
    let missing = unmet(fragment, &config);
    if !missing.is_empty() {
        let files = match arch {
            Arch::X86_64 => "kernel-config/hull.config",
            Arch::Arm64 => "kernel-config/hull.config + arm64.config",
        };
        bail!(
            "{files}: these options did not stick after olddefconfig for {arch} \
             (a dependency is missing or they do not exist in {version}):\n  {}",
            missing.join("\n  ")
        );
    }
    make_with_progress(arch, src, obj, jobs)
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

fn make_with_progress(arch: Arch, src: &Path, obj: &Path, jobs: usize) -> Result<()> {
    let target = arch.kernel_make_target();
    eprintln!("[kernel] make {target} -j{jobs} for {arch} (about 10 minutes on 2 cores when cold)");
    let start = Instant::now();
    let mut child = Command::new("make")
        .current_dir(src)
        .envs(repro_env(src, obj))
        .arg(format!("O={}", obj.display()))
        .args(make_vars(arch))
        .arg(format!("-j{jobs}"))
        .arg(target)
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
    fn arm64_drops_only_what_it_names() {
        let common = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_PVH=y\n";
        let own = "# drop CONFIG_PVH (x86)\nCONFIG_C=y\n";
        assert_eq!(
            combine(common, own),
            "CONFIG_A=y\n# CONFIG_B is not set\n# drop CONFIG_PVH (x86)\nCONFIG_C=y\n"
        );
    }

    #[test]
    fn arm64_fragment_keeps_the_hardening_and_drops_only_existing_options() {
        let common = parse_config(&read_fragment().unwrap());
        let own = fs::read_to_string(arm64_fragment_path()).unwrap();
        for line in own.lines() {
            if let Some(rest) = line.strip_prefix("# drop ") {
                let name = rest.split_whitespace().next().unwrap();
                assert!(common.contains_key(name), "{name} is not in hull.config");
            }
        }
        let m = parse_config(&fragment_for(Arch::Arm64).unwrap());
        assert_eq!(m.get("CONFIG_MODULES").map(String::as_str), Some("n"));
        assert_eq!(
            m.get("CONFIG_ARM64_SW_TTBR0_PAN").map(String::as_str),
            Some("y")
        );
        assert_eq!(
            m.get("CONFIG_ARM64_PTR_AUTH_KERNEL").map(String::as_str),
            Some("y")
        );
        assert!(!m.contains_key("CONFIG_PVH"));
    }

    #[test]
    fn x86_cache_key_is_unchanged_by_arm64() {
        let x = cache_dir_for(Arch::X86_64, "1", "CONFIG_A=y\n");
        assert_eq!(x, cache_dir("1", "CONFIG_A=y\n"));
        assert_ne!(x, cache_dir_for(Arch::Arm64, "1", "CONFIG_A=y\n"));
    }

    #[test]
    fn the_fragment_forbids_modules() {
        let frag = fs::read_to_string(fragment_path()).unwrap();
        let m = parse_config(&frag);
        assert_eq!(m.get("CONFIG_MODULES").map(String::as_str), Some("n"));
        assert_eq!(m.get("CONFIG_KEXEC").map(String::as_str), Some("n"));
    }
}
