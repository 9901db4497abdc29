//! Building the image and running the VM: `cargo xtask image/up/down`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::weaken::Wall;
use crate::{deps, kernel, paths};
use hull_qemu::arch::Arch;

#[derive(clap::Args, Default, Clone)]
pub struct ImageArgs {
    /// Output folder (default: target/hull-image).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rebuild the Debian rootfs even when a cached one exists.
    #[arg(long)]
    pub fresh_rootfs: bool,
    /// Skip `cargo xtask deps` (CI and tests call it once up front).
    #[arg(long)]
    pub no_deps: bool,
    /// Resolve the Debian packages afresh from the mirror, rewrite
    /// image/packages.lock, print the changes, then build from the new lock.
    #[arg(long)]
    pub update_lock: bool,
    /// Build a weakened variant with this one wall removed (see `cargo xtask
    /// walls`); default output target/hull-image-weak-<wall>. Never ship it.
    #[arg(long, value_enum)]
    pub weaken: Option<Wall>,
    /// The guest architecture (default: this host's). Another one is
    /// cross-built (kernel, binaries, root) and its image goes to
    /// target/hull-image-<arch> unless --out says otherwise.
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Build this `[variant.<name>]` of image/manifest.toml instead of the
    /// shipped image (e.g. `bench`: reference runtimes, benchmark binary,
    /// init's benchmark operations); default output target/hull-image-<name>.
    /// Never ship it.
    #[arg(long, conflicts_with = "weaken")]
    pub variant: Option<String>,
    #[command(flatten)]
    pub knobs: InitKnobs,
}

impl ImageArgs {
    pub fn arch(&self) -> Arch {
        self.arch.unwrap_or_else(Arch::host)
    }
}

/// What a build of hull-init records about itself (compile-time variables):
/// two images of one version are told apart, and the VM tests build a real
/// "newer hull" whose data disks an older one must refuse.
#[derive(clap::Args, Default, Clone)]
pub struct InitKnobs {
    /// Name this build (default `dev`): init writes it into the data disk's
    /// stamp and `hull status` shows it.
    #[arg(long)]
    pub build_id: Option<String>,
    /// Tests only: the data-disk format this build's init writes and reads.
    #[arg(long, hide = true)]
    pub data_format: Option<u32>,
}

impl InitKnobs {
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(b) = &self.build_id {
            v.push(("HULL_BUILD_ID", b.clone()));
        }
        if let Some(f) = self.data_format {
            v.push(("HULL_DATA_FORMAT", f.to_string()));
        }
        v
    }

    /// A knobbed build's binaries get their own folder (beside hull-bin).
    fn bin_dir(&self, target: &Path) -> Option<PathBuf> {
        if self.build_id.is_none() && self.data_format.is_none() {
            return None;
        }
        let id = self.build_id.as_deref().unwrap_or("dev");
        let fmt = self
            .data_format
            .map(|f| format!("-f{f}"))
            .unwrap_or_default();
        Some(target.join(format!("hull-bin-{id}{fmt}")))
    }
}

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Arguments passed on to `hull up` (e.g. `-- --cpus 2 --memory 4096`).
    #[arg(last = true)]
    pub hull_args: Vec<String>,
}

#[derive(clap::Args)]
pub struct DownArgs {
    /// Kill the VM instead of shutting it down.
    #[arg(long)]
    pub force: bool,
}

pub fn manifest() -> PathBuf {
    paths::workspace().join("image/manifest.toml")
}

pub fn packages_lock() -> PathBuf {
    paths::workspace().join("image/packages.lock")
}

/// `--update-lock`: resolves every set afresh (the shipped image's and one
/// per `[variant.<name>]`, each its complete closure, for amd64; the
/// shipped image's for every other arch hull builds, `production-arm64`),
/// rewrites the lock, prints the changes.
pub fn update_lock() -> Result<()> {
    use hull_image::lock;
    let full = hull_image::Manifest::load(&manifest())?;
    let path = packages_lock();
    let old = lock::Lock::load(&path).ok();
    let native = hull_image::foreign::native_arch()?;
    let mut wanted = vec![(None, lock::PLAIN_ARCH)];
    wanted.extend(
        full.variants
            .keys()
            .map(|k| (Some(k.clone()), lock::PLAIN_ARCH)),
    );
    wanted.push((None, Arch::Arm64.debian()));
    let mut sets = std::collections::BTreeMap::new();
    for (name, arch) in wanted {
        let m = full.variant(name.as_deref()).map_err(anyhow::Error::msg)?;
        let set_name = lock::set_name(name.as_deref().unwrap_or(lock::PRODUCTION), arch);
        let req = lock::Request::production(&m);
        eprintln!(
            "[image] set {set_name}: resolving {:?} for {arch} afresh from {:?}",
            req.requested, req.sources
        );
        let work = paths::cache().join("lock-resolve");
        let set = if arch == native {
            lock::resolve(&m, &req, &work)?
        } else {
            hull_image::foreign::resolve(&m, &req, arch, &work)?
        };
        let before = old
            .as_ref()
            .and_then(|l| l.set.get(&set_name))
            .map(|s| s.packages.clone())
            .unwrap_or_default();
        let changes = lock::changes(&before, &set.packages);
        eprintln!(
            "[image] set {set_name}: {} packages, {} changes",
            set.packages.len(),
            changes.len()
        );
        for c in &changes {
            println!("{set_name}: {c}");
        }
        sets.insert(set_name, set);
    }
    fs::write(&path, lock::new_lock(sets).render())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("[image] wrote {}", path.display());
    Ok(())
}

/// The Rust crates compiled into the image's binaries: the normal
/// dependencies (no build scripts, no proc-macros, no dev-dependencies) of
/// the packages owning the manifest's `binary =` entries, for the VM's
/// target (`arch`'s: a crate used on one arch only is listed for that one),
/// as `cargo tree` resolves them (hull-init on its own, as it is built
/// alone).
pub fn shipped_crates(ws: &Path, arch: Arch) -> Result<Vec<hull_image::sbom::Crate>> {
    let target = arch.rust_target();
    let m = hull_image::Manifest::load(&ws.join("image/manifest.toml"))?;
    let sh = Shell::new()?;
    let _dir = sh.push_dir(ws);
    let meta = cmd!(sh, "cargo metadata --no-deps --format-version 1 --locked")
        .quiet()
        .read()?;
    let meta: serde_json::Value = serde_json::from_str(&meta)?;
    let mut owner = std::collections::BTreeMap::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
            {
                owner.insert(
                    t["name"].as_str().unwrap_or_default().to_string(),
                    p["name"].as_str().unwrap_or_default().to_string(),
                );
            }
        }
    }
    let mut groups: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for b in m.binaries() {
        let pkg = owner
            .get(b)
            .with_context(|| format!("no workspace package has the binary {b:?}"))?;
        let g = usize::from(b == "hull-init");
        if !groups[g].contains(pkg) {
            groups[g].push(pkg.clone());
        }
    }
    let mut out = Vec::new();
    for g in groups.iter().filter(|g| !g.is_empty()) {
        let ps: Vec<String> = g
            .iter()
            .flat_map(|p| ["-p".to_string(), p.clone()])
            .collect();
        let fmt = "{p}";
        let tree = cmd!(
            sh,
            "cargo tree --locked {ps...} -e normal,no-proc-macro --target {target} --prefix none -f {fmt}"
        )
        .quiet()
        .read()?;
        out.extend(parse_tree(&tree)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Lines of `cargo tree -f {p} --prefix none`: `name vX.Y.Z [(path)] [(*)]`.
fn parse_tree(text: &str) -> Result<Vec<hull_image::sbom::Crate>> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut w = l.split_whitespace();
        let (Some(name), Some(v)) = (w.next(), w.next()) else {
            bail!("cargo tree printed {l:?}");
        };
        let Some(version) = v.strip_prefix('v') else {
            bail!("cargo tree printed {l:?} (no version)");
        };
        out.push(hull_image::sbom::Crate {
            name: name.to_string(),
            version: version.to_string(),
            registry: !l.contains(" (/"),
        });
    }
    Ok(out)
}

/// Writes the SBOM of `arch`'s image (Debian packages of the lock's
/// production set for that arch, Rust crates of the shipped binaries built
/// for it) into `out`.
pub fn write_sbom(ws: &Path, arch: Arch, out: &Path) -> Result<(PathBuf, usize, usize)> {
    use hull_image::lock;
    let m = hull_image::Manifest::load(&ws.join("image/manifest.toml"))?;
    let l = lock::Lock::load(&ws.join("image/packages.lock"))?;
    let set = l.set_for(
        &lock::set_name(lock::PRODUCTION, arch.debian()),
        &lock::Request::production(&m),
    )?;
    let crates = shipped_crates(ws, arch)?;
    let p = hull_image::sbom::write(
        out,
        "hull",
        env!("CARGO_PKG_VERSION"),
        m.image.source_date_epoch,
        set,
        &crates,
    )?;
    Ok((p, set.packages.len(), crates.len()))
}

/// Builds the cargo binaries the image needs into one folder.
/// PID 1 is linked statically so that nothing it needs can be missing.
/// A weakened variant gets its own folder, its crates' `weaken-*` features,
/// and its own host `hull` binary there too.
pub fn build_vm_binaries(sh: &Shell, weaken: Option<Wall>) -> Result<PathBuf> {
    build_knobbed(sh, weaken, &InitKnobs::default(), None, Arch::host())
}

fn build_knobbed(
    sh: &Shell,
    weaken: Option<Wall>,
    knobs: &InitKnobs,
    variant: Option<&str>,
    arch: Arch,
) -> Result<PathBuf> {
    build_vm_binaries_for(
        sh,
        &paths::workspace(),
        &paths::target(),
        weaken,
        knobs,
        arch,
        variant,
    )
}

/// [`build_vm_binaries`] of the checkout `ws` into the target folder
/// `target` (the reproducibility check builds a copy elsewhere). Paths are
/// remapped ([`crate::repro::rustflags`]) so the folder does not show.
pub fn build_vm_binaries_at(
    sh: &Shell,
    ws: &Path,
    target: &Path,
    weaken: Option<Wall>,
    knobs: &InitKnobs,
) -> Result<PathBuf> {
    build_vm_binaries_for(sh, ws, target, weaken, knobs, Arch::host(), None)
}

/// The environment that cross-builds for `arch` with Debian's cross
/// toolchain: its linker for the Rust target, and the target's libseccomp
/// from Debian's multiarch folder (`libseccomp-dev:arm64`). Set per command,
/// so host builds never see it.
pub fn cross_env(arch: Arch) -> Vec<(String, String)> {
    if arch == Arch::host() {
        return Vec::new();
    }
    let triple = arch.rust_target().to_uppercase().replace('-', "_");
    let gnu = arch.gnu_triple();
    vec![
        (
            format!("CARGO_TARGET_{triple}_LINKER"),
            format!("{gnu}-gcc"),
        ),
        ("LIBSECCOMP_LIB_PATH".to_string(), format!("/usr/lib/{gnu}")),
    ]
}

/// [`build_vm_binaries_at`] for the guest architecture `arch` and a
/// `[variant.<name>]` of the manifest (its binaries too, and hull-init with
/// its features). The host's shipped binaries go to `<target>/hull-bin`;
/// another arch's to `<target>/hull-bin-<arch>`, a variant's to
/// `<target>/hull-bin-<name>`.
pub fn build_vm_binaries_for(
    sh: &Shell,
    ws: &Path,
    target: &Path,
    weaken: Option<Wall>,
    knobs: &InitKnobs,
    arch: Arch,
    variant: Option<&str>,
) -> Result<PathBuf> {
    let cross = arch != Arch::host();
    if cross && (weaken.is_some() || knobs.bin_dir(target).is_some() || variant.is_some()) {
        bail!("--arch {arch}: weakened, knobbed and variant test builds exist for the host's arch only");
    }
    let test_builds = [
        weaken.is_some(),
        knobs.bin_dir(target).is_some(),
        variant.is_some(),
    ];
    if test_builds.iter().filter(|b| **b).count() > 1 {
        bail!(
            "--weaken, --variant and --build-id/--data-format are separate test builds; pick one"
        );
    }
    let full = hull_image::Manifest::load(&ws.join("image/manifest.toml"))?;
    let m = full.variant(variant).map_err(anyhow::Error::msg)?;
    let bins = m.binaries();
    let remap = crate::repro::rustflags(ws);
    let out = weaken
        .map(Wall::bin_dir)
        .or_else(|| knobs.bin_dir(target))
        .or_else(|| variant.map(|v| target.join(format!("hull-bin-{v}"))))
        .unwrap_or_else(|| {
            if cross {
                target.join(format!("hull-bin-{arch}"))
            } else {
                target.join("hull-bin")
            }
        });
    let triple = arch.rust_target();
    // A cross build names its target; the host's rest binaries stay where
    // they always were (target/release).
    let target_args: Vec<&str> = if cross {
        vec!["--target", triple]
    } else {
        vec![]
    };
    let rest_dir = if cross {
        target.join(triple).join("release")
    } else {
        target.join("release")
    };
    // Emptied first: a binary an older manifest named (e.g. the bench
    // binary before it became the bench variant's) must not linger beside
    // this build's set, where the reproducibility check compares folders.
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("emptying {}", out.display()))?;
    }
    fs::create_dir_all(&out)?;
    let vm_features = weaken.map(Wall::vm_features).unwrap_or_default();
    let _dir = sh.push_dir(ws);
    let (init, rest): (Vec<&str>, Vec<&str>) = bins.iter().partition(|b| **b == "hull-init");
    if !rest.is_empty() {
        let args: Vec<String> = rest
            .iter()
            .flat_map(|b| ["--bin".to_string(), b.to_string()])
            .collect();
        cmd!(
            sh,
            "cargo build --release {target_args...} {args...} {vm_features...}"
        )
        .env("CARGO_TARGET_DIR", target)
        .env("RUSTFLAGS", &remap)
        .envs(cross_env(arch))
        .run()?;
        for b in &rest {
            fs::copy(rest_dir.join(b), out.join(b)).with_context(|| format!("copying {b}"))?;
        }
    }
    if !init.is_empty() {
        let mut features = weaken.map(Wall::init_features).unwrap_or_default();
        let variant_features = full.init_features(variant);
        if !variant_features.is_empty() {
            features.push("--features".into());
            let named: Vec<String> = variant_features
                .iter()
                .map(|f| format!("hull-init/{f}"))
                .collect();
            features.push(named.join(","));
        }
        cmd!(
            sh,
            "cargo build --release --bin hull-init --target {triple} {features...}"
        )
        .env("CARGO_TARGET_DIR", target)
        .env(
            "RUSTFLAGS",
            format!("-C target-feature=+crt-static {remap}"),
        )
        .envs(knobs.env())
        .envs(cross_env(arch))
        .run()?;
        fs::copy(
            target.join(triple).join("release/hull-init"),
            out.join("hull-init"),
        )?;
    }
    if let Some(w) = weaken {
        let host = w.host_features();
        cmd!(sh, "cargo build --release --bin hull {host...}").run()?;
        fs::copy(target.join("release/hull"), out.join("hull")).context("copying hull")?;
    }
    Ok(out)
}

/// `cargo xtask image`: kernel + binaries + rootfs -> target/hull-image.
pub fn image(args: &ImageArgs) -> Result<PathBuf> {
    if !deps::is_root() {
        bail!("building the image needs root (mmdebstrap --mode=root, file ownership in the root)");
    }
    if !args.no_deps {
        deps::run()?;
    }
    if args.update_lock {
        update_lock()?;
    }
    let arch = args.arch();
    let k = kernel::run(&kernel::Args {
        arch,
        ..Default::default()
    })?;
    let sh = Shell::new()?;
    let bins = build_knobbed(&sh, args.weaken, &args.knobs, args.variant.as_deref(), arch)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| match (&args.variant, args.weaken) {
            _ if arch != Arch::host() => paths::image_out_for(arch),
            (Some(v), _) => paths::target().join(format!("hull-image-{v}")),
            (None, w) => w.map_or_else(paths::image_out, Wall::image_dir),
        });
    let report = hull_image::build(&hull_image::Inputs {
        manifest: manifest(),
        lock: packages_lock(),
        kernel: k.image,
        bin_dir: bins,
        out: out.clone(),
        cache: paths::cache(),
        fresh_rootfs: args.fresh_rootfs,
        // The host's root keeps its cache key; another arch's is its own.
        arch: (arch != Arch::host()).then(|| arch.debian().to_string()),
        variant: args.variant.clone(),
    })?;
    eprintln!("[image] {}\n{report}", out.display());
    // The SBOM describes the shipped image: the lock's production set of
    // its arch and the crates built for it. A variant has none.
    if args.variant.is_none() {
        let (sbom, debs, crates) = write_sbom(&paths::workspace(), arch, &out)?;
        eprintln!(
            "[image] {}: {debs} Debian packages, {crates} Rust crates",
            sbom.display()
        );
    }
    Ok(out)
}

/// The `hull` binary of this checkout (built on demand).
pub fn hull_bin(sh: &Shell) -> Result<PathBuf> {
    let _dir = sh.push_dir(paths::workspace());
    cmd!(sh, "cargo build --release --bin hull").quiet().run()?;
    Ok(paths::target().join("release/hull"))
}

/// The `hull` of this checkout built with the test-only feature
/// `test-hooks` (`hull up --raw-settings`), copied aside to
/// target/hull-test-hooks/hull; target/release/hull is rebuilt without it
/// (a relink), since release builds must not have the flag.
pub fn hull_test_hooks_bin(sh: &Shell) -> Result<PathBuf> {
    let _dir = sh.push_dir(paths::workspace());
    cmd!(
        sh,
        "cargo build --release --bin hull --features hull-qemu/test-hooks"
    )
    .quiet()
    .run()?;
    let dir = paths::target().join("hull-test-hooks");
    fs::create_dir_all(&dir)?;
    let out = dir.join("hull");
    fs::copy(paths::target().join("release/hull"), &out).context("copying the test-hooks hull")?;
    hull_bin(sh)?;
    Ok(out)
}

pub fn up(args: &UpArgs) -> Result<()> {
    let image = image(&args.image)?;
    let sh = Shell::new()?;
    let hull = hull_bin(&sh)?;
    let extra = &args.hull_args;
    cmd!(sh, "{hull} up --image {image} {extra...}").run()?;
    Ok(())
}

pub fn down(args: &DownArgs) -> Result<()> {
    let sh = Shell::new()?;
    let hull = hull_bin(&sh)?;
    let force = args.force.then_some("--force");
    cmd!(sh, "{hull} down {force...}").run()?;
    Ok(())
}

pub fn image_ready(dir: &Path) -> bool {
    dir.join(hull_image::pack::KERNEL).exists() && dir.join(hull_image::pack::ROOT_RAW).exists()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// The SBOM `cargo xtask image` writes lists exactly the lock's Debian
    /// packages (name, version, sha256) and the shipped binaries' crates,
    /// each at its Cargo.lock version; nothing else. For each arch: its own
    /// locked set (arm64 `.deb`s, not amd64 ones) and its own crate graph.
    #[test]
    fn the_sbom_lists_the_lock_and_the_shipped_crates_and_nothing_else() {
        sbom_of(Arch::X86_64);
        sbom_of(Arch::Arm64);
    }

    fn sbom_of(arch: Arch) {
        let ws = paths::workspace();
        let out = tempfile::tempdir().unwrap();
        let (p, debs, crates) = write_sbom(&ws, arch, out.path()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["bomFormat"], "CycloneDX");
        let comps = v["components"].as_array().unwrap();
        assert_eq!(
            comps.len(),
            debs + crates,
            "the components are not exactly the lock's packages plus the shipped crates"
        );

        let m = hull_image::Manifest::load(&manifest()).unwrap();
        let lock = hull_image::lock::Lock::load(&packages_lock()).unwrap();
        let set = lock
            .set_for(
                &hull_image::lock::set_name(hull_image::lock::PRODUCTION, arch.debian()),
                &hull_image::lock::Request::production(&m),
            )
            .unwrap();
        assert!(
            set.packages
                .iter()
                .all(|e| e.arch == arch.debian() || e.arch == "all"),
            "{arch}: the set holds another arch's packages"
        );
        let purl_arch = format!("arch={}&", arch.debian());
        assert!(
            v["components"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c["purl"].as_str())
                .filter(|p| p.starts_with("pkg:deb/"))
                .all(|p| p.contains(&purl_arch) || p.contains("arch=all&")),
            "{arch}: a Debian purl names another arch"
        );
        let kind = |c: &serde_json::Value| c["properties"][0]["value"].as_str().map(String::from);
        let got_debs: BTreeSet<(String, String, String)> = comps
            .iter()
            .filter(|c| kind(c).as_deref() == Some("debian"))
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["version"].as_str().unwrap().to_string(),
                    c["hashes"][0]["content"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want_debs: BTreeSet<(String, String, String)> = set
            .packages
            .iter()
            .map(|e| (e.name.clone(), e.version.clone(), e.sha256.clone()))
            .collect();
        assert_eq!(got_debs, want_debs);

        // Cargo.lock: name -> versions (a crate may be there twice).
        let text = fs::read_to_string(ws.join("Cargo.lock")).unwrap();
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let mut cargo_lock: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in parsed["package"].as_array().unwrap() {
            cargo_lock
                .entry(p["name"].as_str().unwrap().to_string())
                .or_default()
                .push(p["version"].as_str().unwrap().to_string());
        }
        let got_crates: Vec<(String, String)> = comps
            .iter()
            .filter(|c| kind(c).as_deref() == Some("crate"))
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["version"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got_crates.len(), crates);
        for (n, ver) in &got_crates {
            let have = cargo_lock.get(n).cloned().unwrap_or_default();
            assert!(
                have.contains(ver),
                "{n} {ver} is in the SBOM, Cargo.lock has {have:?}"
            );
        }
        // The shipped binaries' own packages and a few known dependencies.
        let names: BTreeMap<&str, &str> = got_crates
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        for want in [
            "hull-init",
            "hull-gate",
            "hull-guard",
            "hull-runtime",
            "hyper",
            "libc",
        ] {
            assert!(names.contains_key(want), "{want} missing from the SBOM");
        }
        // Build-time only: proc-macros, build scripts' deps, dev-dependencies.
        for not in ["syn", "proc-macro2", "tempfile", "cc"] {
            assert!(
                !names.contains_key(not),
                "{not} does not ship, yet is listed"
            );
        }
    }
}
