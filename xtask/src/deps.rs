//! `cargo xtask deps`: everything the build and the tests need, installed idempotently.

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// Debian packages of the build machine (bookworm).
const APT_PACKAGES: &[&str] = &[
    // VM
    "qemu-system-x86",
    "qemu-utils",
    // image
    "mmdebstrap",
    "erofs-utils",
    // veritysetup: the root's dm-verity hash tree
    "cryptsetup-bin",
    "e2fsprogs",
    "debian-archive-keyring",
    // kernel build
    "linux-source-6.12",
    "build-essential",
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "lz4",
    "zstd",
    "xz-utils",
    "python3",
    // the client-compat scenario's Python clients live in a venv of Debian's python3
    "python3-venv",
    // runtime crates and host-tier tests; virtiofsd's build
    "libseccomp-dev",
    "libcap-ng-dev",
    "pkg-config",
    "busybox-static",
    "crun",
    "runc",
    // the guard's tests compile static C helpers (cc -static)
    "gcc",
    "libc6-dev",
    // host-tier tests of the runtime and gate drive a real (bookworm) dockerd
    // on this machine; a local registry gives images real repo digests
    "docker.io",
    "containerd",
    "docker-registry",
    "util-linux",
    "iproute2",
    // VM-tier tests drive the VM as a user would
    "curl",
    "socat",
    "tmux",
];

pub fn run() -> Result<()> {
    let sh = Shell::new()?;
    apt(&sh)?;
    arm64(&sh)?;
    vhost_user_backends(&sh)?;
    rust_components(&sh)?;
    cargo_fuzz(&sh)?;
    docker_cli(&sh)?;
    crate::plugins::install(&sh)?;
    python_clients(&sh)?;
    tools()?;
    test_user(&sh)?;
    eprintln!("[deps] all present");
    Ok(())
}

/// What the host-tier tests run, by the path or name they look for, and the
/// package that provides it. dpkg may call a package installed while its
/// file is gone; the tests would then fail one by one, so say it here once.
const TOOLS: &[(&str, &str)] = &[
    ("/bin/busybox", "busybox-static"),
    // the image build appends the root's verity tree with it
    ("/usr/sbin/veritysetup", "cryptsetup-bin"),
    ("/usr/bin/python3", "python3"),
    ("/usr/sbin/dockerd", "docker.io"),
    ("docker", "docker.io"),
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("runc", "runc"),
    ("/usr/bin/crun", "crun"),
    ("docker-registry", "docker-registry"),
    ("cc", "gcc"),
    ("unshare", "util-linux"),
    ("ip", "iproute2"),
];

/// The Python interpreter of the clients' venv: Debian's, which apt (above)
/// installs and keeps at this path for every account, root included. A
/// `python3` found on PATH may be a pyenv shim whose version depends on who
/// runs it and from where.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The venv holding the client-compat scenario's clients (the Docker SDK
/// for Python, testcontainers-python), pinned in xtask/clients/requirements.txt.
pub fn clients_venv() -> std::path::PathBuf {
    crate::paths::cache().join("clients-venv")
}

/// What the venv must answer: the pinned versions of the two clients.
const CLIENTS_CHECK: &str = "import docker, importlib.metadata as m; print(docker.__version__, m.version('testcontainers'))";
const CLIENTS_WANT: &str = "7.2.0 4.15.0";

fn clients_present(sh: &Shell, python: &std::path::Path) -> bool {
    python.is_file()
        && cmd!(sh, "{python} -c {CLIENTS_CHECK}")
            .quiet()
            .ignore_stderr()
            .read()
            .is_ok_and(|v| v.trim() == CLIENTS_WANT)
}

fn python_clients(sh: &Shell) -> Result<()> {
    let venv = clients_venv();
    let python = venv.join("bin/python");
    if clients_present(sh, &python) {
        return Ok(());
    }
    let req = crate::paths::workspace().join("xtask/clients/requirements.txt");
    eprintln!("[deps] python clients into {}", venv.display());
    // A venv left half-made (or of another interpreter) is made again.
    let _ = std::fs::remove_dir_all(&venv);
    cmd!(sh, "{SYSTEM_PYTHON} -m venv {venv}")
        .run()
        .context("python3 -m venv (package python3-venv)")?;
    // --no-deps: the requirements file pins the whole closure; pip must
    // not pick anything else.
    cmd!(
        sh,
        "{python} -m pip install --quiet --disable-pip-version-check --no-deps -r {req}"
    )
    .run()
    .context("pip install of the pinned Python clients")?;
    if !clients_present(sh, &python) {
        bail!(
            "{} does not import docker 7.2.0 and testcontainers 4.15.0 after the install",
            python.display()
        );
    }
    Ok(())
}

fn tools() -> Result<()> {
    let on_path = |n: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(n).is_file()))
    };
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(t, _)| {
            if t.starts_with('/') {
                !std::path::Path::new(t).exists()
            } else {
                !on_path(t)
            }
        })
        .map(|(t, p)| format!("{t} (package {p})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing though their packages are installed: {}; `apt-get install --reinstall` them",
            missing.join(", ")
        );
    }
    Ok(())
}

fn installed(sh: &Shell, pkg: &str) -> bool {
    // With a foreign architecture added (arm64, below), dpkg-query answers
    // once per installed architecture of a name: a plain name means the
    // host's own (or an `all` package), `name:arch` that arch's.
    let fmt = "${Status}\t${Architecture}\n";
    let want = pkg
        .split_once(':')
        .map_or(hull_qemu::arch::Arch::host().debian(), |(_, a)| a);
    cmd!(sh, "dpkg-query -W -f {fmt} {pkg}")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| {
            s.lines().any(|l| {
                l.split_once('\t').is_some_and(|(st, arch)| {
                    st == "install ok installed" && (arch == want || arch == "all")
                })
            })
        })
        .unwrap_or(false)
}

/// The names of `packages` that are not installed for their architecture.
fn missing<'a>(sh: &Shell, packages: &[&'a str]) -> Vec<&'a str> {
    packages
        .iter()
        .copied()
        .filter(|p| !installed(sh, p))
        .collect()
}

fn apt(sh: &Shell) -> Result<()> {
    apt_install(sh, APT_PACKAGES, "the build machine's packages")
}

/// Installs whichever of `packages` are missing; `what` names them in an
/// error. A second pass, because one install can remove a package another
/// needs: a machine with a backported qemu-utils (10.x) loses it when
/// bookworm's qemu-system-x86 (7.2) comes in, and then needs bookworm's
/// qemu-utils.
fn apt_install(sh: &Shell, packages: &[&str], what: &str) -> Result<()> {
    let apt = if is_root() { "apt-get" } else { "sudo" };
    let pre: &[&str] = if is_root() { &[] } else { &["apt-get"] };
    for pass in 1..=2 {
        let missing = missing(sh, packages);
        if missing.is_empty() {
            return Ok(());
        }
        eprintln!("[deps] installing (pass {pass}) {}", missing.join(" "));
        if pass == 1 {
            cmd!(sh, "{apt} {pre...} update -q").run()?;
        }
        cmd!(
            sh,
            "{apt} {pre...} install -y -q --no-install-recommends {missing...}"
        )
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .with_context(|| format!("apt-get install of {what} failed"))?;
    }
    let still = missing(sh, packages);
    if !still.is_empty() {
        bail!(
            "apt-get left these packages ({what}) uninstalled: {} (does another installed package conflict with them?)",
            still.join(" ")
        );
    }
    Ok(())
}

/// The vhost-user backends `hull up` runs beside QEMU: the vsock device,
/// and virtiofsd for shared directories (1.13+: UID/GID translation and
/// FUSE_ALLOW_IDMAP, which the runtime's idmapped binds need).
const BACKENDS: &[(&str, &str)] = &[("vhost-device-vsock", ""), ("virtiofsd", "1.13.0")];

/// Run as root, the backends go to /usr/local/bin, so that every user of
/// the machine can `hull up` (root's ~/.cargo/bin is closed to them);
/// otherwise to the user's own cargo bin.
fn vhost_user_backends(sh: &Shell) -> Result<()> {
    let root_dir = is_root().then_some("/usr/local");
    for (krate, min) in BACKENDS {
        let exe = match root_dir {
            Some(r) => format!("{r}/bin/{krate}"),
            None => krate.to_string(),
        };
        let version_of = |exe: &str| {
            cmd!(sh, "{exe} --version")
                .quiet()
                .ignore_stderr()
                .read()
                .ok()
                .filter(|v| {
                    min.is_empty()
                        || version_at_least(v.split_whitespace().last().unwrap_or(""), min)
                })
        };
        if version_of(&exe).is_some() {
            continue;
        }
        // Built before into root's own cargo bin: copy, not rebuild.
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
        if let (Some(r), Some(home)) = (root_dir, cargo_home) {
            let built = home.join("bin").join(krate);
            if built.is_file() && version_of(&built.display().to_string()).is_some() {
                std::fs::copy(&built, &exe)
                    .with_context(|| format!("copying {krate} to {r}/bin"))?;
                continue;
            }
        }
        eprintln!("[deps] cargo install {krate}");
        match root_dir {
            Some(r) => cmd!(sh, "cargo install --locked --root {r} {krate}").run()?,
            None => cmd!(sh, "cargo install --locked {krate}").run()?,
        }
    }
    Ok(())
}

/// `a >= b` for dotted numeric versions (`1.14.0` >= `1.13.0`).
fn version_at_least(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) >= parse(b)
}

/// `cargo xtask fuzz` (and the test tier's fuzz step) drive cargo-fuzz.
fn cargo_fuzz(sh: &Shell) -> Result<()> {
    let have = cmd!(sh, "cargo fuzz --version")
        .quiet()
        .ignore_stderr()
        .read();
    if have.is_err() {
        eprintln!("[deps] cargo install cargo-fuzz");
        cmd!(sh, "cargo install --locked cargo-fuzz").run()?;
    }
    Ok(())
}

/// What the arm64 VM (`--arch arm64`) needs on this x86_64 machine: its
/// emulator, Debian's cross compiler and C library for the kernel and for
/// linking hull's binaries, and arm64's libseccomp (which the runtime links)
/// from Debian's multiarch archive, so dpkg must know the architecture.
const ARM64_APT_PACKAGES: &[&str] = &[
    "qemu-system-arm",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "libseccomp-dev:arm64",
];
const ARM64_RUST_TARGET: &str = "aarch64-unknown-linux-gnu";

fn arm64(sh: &Shell) -> Result<()> {
    if cfg!(target_arch = "aarch64") {
        // Native: the host's packages are arm64's already.
        return Ok(());
    }
    let dpkg_pre: &[&str] = if is_root() { &[] } else { &["dpkg"] };
    let dpkg = if is_root() { "dpkg" } else { "sudo" };
    let foreign = cmd!(sh, "dpkg --print-foreign-architectures")
        .quiet()
        .read()
        .unwrap_or_default();
    if !foreign.lines().any(|l| l.trim() == "arm64") {
        // apt_install's update (below) then reads arm64's indexes too.
        eprintln!("[deps] dpkg --add-architecture arm64 (for libseccomp-dev:arm64)");
        cmd!(sh, "{dpkg} {dpkg_pre...} --add-architecture arm64").run()?;
    }
    apt_install(sh, ARM64_APT_PACKAGES, "the arm64 build packages")?;
    let targets = cmd!(sh, "rustup target list --installed")
        .quiet()
        .read()
        .unwrap_or_default();
    if !targets.lines().any(|l| l.trim() == ARM64_RUST_TARGET) {
        cmd!(sh, "rustup target add {ARM64_RUST_TARGET}").run()?;
    }
    Ok(())
}

fn rust_components(sh: &Shell) -> Result<()> {
    let have = cmd!(sh, "rustup component list --installed")
        .quiet()
        .read()
        .unwrap_or_default();
    for c in ["rustfmt", "clippy"] {
        if !have.lines().any(|l| l.starts_with(c)) {
            cmd!(sh, "rustup component add {c}").run()?;
        }
    }
    Ok(())
}

fn docker_cli(sh: &Shell) -> Result<()> {
    // The tests drive the VM with the user's own docker CLI; the engine only runs in the VM.
    let v = cmd!(sh, "docker --version").quiet().ignore_stderr().read();
    match v {
        Ok(v) if v.starts_with("Docker version") => Ok(()),
        _ => bail!(
            "the docker CLI is missing from PATH: Debian's docker.io (installed above) puts it at /usr/bin/docker; is PATH missing /usr/bin?"
        ),
    }
}

/// The unprivileged account the VM tier runs `hull up` as (issue 14: shares
/// must work for a non-root host user, virtiofsd never running as root).
pub const TEST_USER: &str = "hull-test";

fn test_user(sh: &Shell) -> Result<()> {
    if cmd!(sh, "getent passwd {TEST_USER}")
        .quiet()
        .ignore_stdout()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    if !is_root() {
        bail!("the VM tier needs the account {TEST_USER}; run `cargo xtask deps` as root once");
    }
    eprintln!("[deps] useradd {TEST_USER}");
    cmd!(
        sh,
        "useradd --system --user-group --no-create-home --shell /usr/sbin/nologin {TEST_USER}"
    )
    .run()?;
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_compare_numerically() {
        assert!(super::version_at_least("1.14.0", "1.13.0"));
        assert!(super::version_at_least("1.13.0", "1.13.0"));
        assert!(!super::version_at_least("1.9.2", "1.13.0"));
        assert!(!super::version_at_least("", "1.13.0"));
    }
}
