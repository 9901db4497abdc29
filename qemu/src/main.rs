//! `hull`: the host CLI. Boots and stops the VM and carries the docker socket.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hull_qemu::accel::{self, Accel, AccelChoice};
use hull_qemu::arch::Arch;
use hull_qemu::bundle;
use hull_qemu::home::Home;
use hull_qemu::machine::{BootConfig, Console, Machine, MachineKind, RootVerity, ShareDevice};
use hull_qemu::state::{self, VmState};
use hull_qemu::system::{self, Mode, SystemConfig};
use hull_qemu::{control, daemon, lifecycle, settings, tsc};

mod cli_system;

#[derive(Parser)]
#[command(name = "hull", version, about = "A hardened VM for running containers")]
struct Cli {
    /// Which VM (profile): its home is ~/.local/share/hull for `default`,
    /// ~/.local/share/hull/profiles/<name> otherwise. HULL_HOME overrides.
    // Its own id: `hull logs <name>` has a positional `name`, which clap
    // would otherwise take for this global flag.
    #[arg(long = "name", id = "profile", value_name = "PROFILE", global = true)]
    profile: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot the VM (building nothing) and wait until the engine answers.
    Up(UpArgs),
    /// Shut the VM down cleanly; --force kills it.
    Down {
        #[arg(long)]
        force: bool,
    },
    /// `hull down`, then `hull up` (with new sizes, or another image).
    Restart(UpArgs),
    /// Every VM under ~/.local/share/hull: state, size, image.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete the VM: its data disk (images, containers, volumes) and state.
    Delete {
        /// No question asked; a running VM is stopped first.
        #[arg(long)]
        force: bool,
    },
    /// VM state, services, settings in force.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print the shell line that points docker at the VM.
    Env,
    /// Show a service's log (or `console`, or `audit`).
    Logs {
        name: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Show the settings in force and where each value came from.
    Settings {
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a service in the VM (for debugging and tests).
    #[command(hide = true)]
    Signal { service: String, signal: String },
    /// The background process behind `hull up` (not for direct use).
    #[command(name = "__serve", hide = true)]
    Serve(UpArgs),
    /// System mode, for the admin (root): install, start, stop or remove the
    /// VM service whose settings no user can change.
    #[command(subcommand)]
    System(cli_system::SystemCmd),
}

#[derive(clap::Args, Clone)]
struct UpArgs {
    /// Virtual CPUs (default: the host's; then what the VM had last time).
    #[arg(long)]
    cpus: Option<u32>,
    /// Guest memory in MiB (default 4096; then what the VM had last time).
    #[arg(long)]
    memory: Option<u32>,
    /// Folder with vmlinuz and root.erofs (default: $HULL_IMAGE, or the build's target/hull-image).
    #[arg(long)]
    image: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    accel: AccelChoice,
    #[arg(long, value_enum, default_value_t = MachineKind::Microvm)]
    machine: MachineKind,
    /// The guest architecture (default: the image's, which is the host's
    /// unless built with `cargo xtask image --arch`). Without --image, an
    /// arch other than the host's boots the build's target/hull-image-<arch>
    /// under emulation (TCG).
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    /// Size of the data disk in GiB (default 64 when it is created). A
    /// bigger size grows the disk of a stopped VM; shrinking is refused.
    #[arg(long)]
    disk_gib: Option<u32>,
    /// Give up waiting for the engine after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Deliver this file to the VM verbatim as its settings, unchecked (tests
    /// the VM's fail-closed handling of a bad blob). Test builds only.
    #[cfg(feature = "test-hooks")]
    #[arg(long, hide = true)]
    raw_settings: Option<PathBuf>,
    /// Benchmarking only: one more kernel command-line word, from a fixed
    /// list of hardening switches (`init_on_free=0`, ...), so `cargo xtask
    /// bench --kernel-options` can price each option on the same kernel.
    /// Settings never travel on the command line, so this cannot touch them.
    #[arg(long = "bench-kernel-arg", hide = true, value_parser = bench_kernel_arg)]
    bench_kernel_arg: Vec<String>,
    /// Benchmarking only: also share this directory over QEMU's 9p, the
    /// transport virtiofs replaced, so `cargo xtask bench` can compare the
    /// two in one boot. Containers cannot write to a 9p share.
    #[arg(long = "bench-9p-share", hide = true)]
    bench_9p_share: Vec<PathBuf>,
}

/// `hull up` with no flags, to tell which flags a user gave.
#[derive(Parser)]
struct UpDefaults {
    #[command(flatten)]
    a: UpArgs,
}

fn bench_kernel_arg(w: &str) -> Result<String, String> {
    hull_qemu::machine::check_bench_kernel_word(w).map(str::to_string)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HULL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("hull: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    // A system config a user could have written is an error, never user
    // mode: the lock fails closed.
    let mode = system::detect()?;
    let cmd = match cli.cmd {
        Cmd::System(c) => return cli_system::run(c, &mode, image_dir),
        cmd => cmd,
    };
    if let Mode::System(cfg) = &mode {
        if let Some(home) = system_home(cfg)? {
            if cli.profile.is_some() {
                bail!("--name is refused: this machine is in system mode, where there is one VM, the admin's");
            }
            return system_client(&mode, &home, cmd);
        }
    }
    // From here on: user mode, or root's own VM beside the system one
    // (root is the admin), which is a user-mode VM.
    let mode = Mode::User;
    let home = Home::for_profile(cli.profile.as_deref()).map_err(anyhow::Error::msg)?;
    match cmd {
        Cmd::Up(a) => up(&home, &a),
        Cmd::Down { force } => down(&home, force),
        Cmd::Restart(a) => {
            if state::in_use(&home) {
                down(&home, false)?;
            }
            up(&home, &a)
        }
        Cmd::List { json } => {
            let rows = lifecycle::list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                lifecycle::print_list(&rows, &mut std::io::stdout())?;
            }
            Ok(())
        }
        Cmd::Delete { force } => delete(&home, force),
        Cmd::Status { json } => status(&home, &mode, json),
        Cmd::Env => {
            println!("{}", env_line(&home));
            Ok(())
        }
        Cmd::Logs { name, follow } => logs(&home, &name, follow),
        Cmd::Settings { json } => show_settings(&home, &mode, json),
        Cmd::Signal {
            service,
            signal: sig,
        } => signal(&home, &service, &sig),
        Cmd::Serve(a) => serve(&home, &a, false),
        Cmd::System(_) => unreachable_system(),
    }
}

fn unreachable_system() -> Result<()> {
    bail!("`hull system` is handled before the VM's home is chosen")
}

fn signal(home: &Home, service: &str, signal: &str) -> Result<()> {
    let v = control::request(
        &home.vsock_uds(),
        &serde_json::json!({"op": "kill", "service": service, "signal": signal}),
    )?;
    if let Some(e) = v.get("error") {
        bail!("{}", e.as_str().unwrap_or_default());
    }
    println!("{v}");
    Ok(())
}

/// In system mode, which home a command acts on: the system VM's, or
/// `None` for root's own user-mode VM (root is the admin and may run one
/// with an explicit `HULL_HOME`, as the tests do). Anyone else who names a
/// home of their own is refused: the VM is the admin's.
fn system_home(cfg: &SystemConfig) -> Result<Option<Home>> {
    let explicit = std::env::var_os("HULL_HOME");
    if nix::unistd::geteuid().is_root() && explicit.is_some() {
        return Ok(None);
    }
    if let Some(h) = explicit.filter(|h| Path::new(h) != cfg.home) {
        bail!(
            "HULL_HOME={} is refused: this machine is in system mode ({}), the VM is the admin's and lives in {}; unset HULL_HOME",
            Path::new(&h).display(),
            system::CONFIG,
            cfg.home.display()
        );
    }
    Ok(Some(cfg.home()))
}

/// A command in system mode: `up`/`down` ask the service; `status`,
/// `settings` and `env` read what the service left readable to the group.
fn system_client(mode: &Mode, home: &Home, cmd: Cmd) -> Result<()> {
    let me = nix::unistd::geteuid();
    let up = |a: &UpArgs, restart: bool| -> Result<()> {
        let defaults = UpDefaults::parse_from(["up"]).a;
        let changed = a.image.is_some()
            || a.cpus.is_some()
            || a.memory != defaults.memory
            || a.disk_gib != defaults.disk_gib
            || a.accel != defaults.accel
            || a.machine != defaults.machine
            || !a.bench_kernel_arg.is_empty()
            || !a.bench_9p_share.is_empty();
        if changed {
            bail!(
                "this machine is in system mode: the VM's image, cpus, memory, disk and accelerator are the admin's ({}); `hull up` takes no flags here",
                system::CONFIG
            );
        }
        // Refused with its reason (settings::admin_path says why).
        settings::admin_path(mode)?;
        if let Some(h) = std::env::var_os("HOME") {
            let own = Path::new(&h).join(".local/share/hull");
            for f in ["settings.json", "engine.json"] {
                if own.join(f).exists() {
                    eprintln!(
                        "hull: {} is not used: in system mode the settings are the admin's ({})",
                        own.join(f).display(),
                        system::ADMIN_SETTINGS
                    );
                }
            }
        }
        let start = Instant::now();
        if restart {
            let answer = system::ask(home, system::Op::Down, Duration::from_secs(120))?;
            if !answer.ok {
                bail!("the hull service: {}", answer.message);
            }
        }
        let answer = system::ask(home, system::Op::Up, Duration::from_secs(60))?;
        if !answer.ok {
            bail!("the hull service: {}", answer.message);
        }
        eprintln!("hull: system mode: {}", answer.message);
        wait_engine(home, start, Duration::from_secs(a.timeout))?;
        println!("{}", env_line(home));
        Ok(())
    };
    match cmd {
        Cmd::Up(a) => up(&a, false),
        Cmd::Restart(a) => up(&a, true),
        Cmd::List { json } => {
            let running = state::in_use(home);
            let row = serde_json::json!({
                "name": "system",
                "home": home.dir,
                "state": if running { "running" } else { "stopped" },
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&[row])?);
            } else {
                println!(
                    "system  {}  {}  (system mode: one VM, the admin's)",
                    row["state"].as_str().unwrap_or("?"),
                    home.dir.display()
                );
            }
            Ok(())
        }
        Cmd::Delete { .. } => bail!(
            "the system VM is the admin's: `hull system uninstall --purge` (as root) removes it and its disk"
        ),
        Cmd::Down { force } => {
            if force && !me.is_root() {
                bail!("`hull down --force` is the admin's in system mode; `hull down` asks the service");
            }
            let answer = system::ask(home, system::Op::Down, Duration::from_secs(120))?;
            if !answer.ok {
                bail!("the hull service: {}", answer.message);
            }
            eprintln!("hull: {}", answer.message);
            Ok(())
        }
        Cmd::Status { json } => status(home, mode, json),
        Cmd::Env => {
            println!("{}", env_line(home));
            Ok(())
        }
        Cmd::Settings { json } => show_settings(home, mode, json),
        Cmd::Logs { name, follow } => {
            if name != "console" && !me.is_root() && me.as_raw() != home_owner(home) {
                bail!("in system mode the VM's service logs are the admin's (as root: `hull logs {name}`); `hull logs console` is readable to group `hull`");
            }
            logs(home, &name, follow)
        }
        Cmd::Signal {
            service,
            signal: sig,
        } => {
            if !me.is_root() {
                bail!("`hull signal` is the admin's in system mode");
            }
            signal(home, &service, &sig)
        }
        Cmd::Serve(a) => {
            if me.as_raw() != home_owner(home) {
                bail!(
                    "this machine is in system mode: only the hull service (user {}) runs the VM; `hull up` asks it",
                    system::USER
                );
            }
            serve(home, &a, true)
        }
        Cmd::System(_) => unreachable_system(),
    }
}

fn home_owner(home: &Home) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(&home.dir).map_or(0, |m| m.uid())
}

fn env_line(home: &Home) -> String {
    format!("export DOCKER_HOST=unix://{}", home.docker_sock().display())
}

fn image_dir(arg: &Option<PathBuf>) -> Result<PathBuf> {
    image_dir_for(arg, None)
}

/// [`image_dir`] for the guest architecture `arch`: another arch than the
/// host's is looked for only in the build's target/hull-image-<arch>.
fn image_dir_for(arg: &Option<PathBuf>, arch: Option<Arch>) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    let foreign = arch.filter(|a| *a != Arch::host());
    if let Some(a) = arg {
        candidates.push(a.clone());
    } else if let Some(arch) = foreign {
        if let Ok(exe) = std::env::current_exe() {
            if let Some(t) = exe.parent().and_then(Path::parent) {
                candidates.push(t.join(format!("hull-image-{arch}")));
            }
        }
    } else {
        if let Some(e) = std::env::var_os("HULL_IMAGE") {
            candidates.push(e.into());
        }
        // target/release/hull -> target/hull-image
        if let Ok(exe) = std::env::current_exe() {
            if let Some(t) = exe.parent().and_then(Path::parent) {
                candidates.push(t.join("hull-image"));
            }
        }
        candidates.push("/usr/local/share/hull/image".into());
    }
    for c in &candidates {
        if c.join("vmlinuz").exists() && c.join("root.erofs").exists() {
            return c
                .canonicalize()
                .with_context(|| format!("resolving {}", c.display()));
        }
    }
    bail!(
        "no hull image (vmlinuz + root.erofs) in {}: build one with `cargo xtask image` or pass --image",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A release bundle is checked file by file before anything boots from it
/// (a build's image folder, without bundle.json, is the developer's own).
fn check_bundle(image: &Path) -> Result<()> {
    if !bundle::is_bundle(image) {
        return Ok(());
    }
    let t = Instant::now();
    let b = bundle::verify(image).context("refusing to boot")?;
    eprintln!(
        "hull: bundle {} (commit {}) verified: {} files in {:.1}s",
        b.name,
        b.commit,
        b.files.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn machine(home: &Home, a: &UpArgs) -> Result<Machine> {
    let image = image_dir_for(&a.image, a.arch)?;
    let arch = Arch::of_kernel(&image.join("vmlinuz")).map_err(anyhow::Error::msg)?;
    if let Some(asked) = a.arch.filter(|asked| *asked != arch) {
        bail!(
            "--arch {asked}: the image {} is {arch} (its vmlinuz); build one with `cargo xtask image --arch {asked}`",
            image.display()
        );
    }
    // Another architecture is emulated: KVM runs only the host's.
    let accel = if arch != Arch::host() {
        if a.accel == AccelChoice::Kvm {
            bail!("--accel kvm: the image is {arch} and this host is {}; only TCG emulates another architecture", Arch::host());
        }
        eprintln!(
            "hull: accelerator tcg (emulating {arch} on {})",
            Arch::host()
        );
        Accel::Tcg
    } else {
        let accel = accel::resolve(a.accel).map_err(anyhow::Error::msg)?;
        eprintln!(
            "hull: accelerator {}",
            accel::describe(a.accel).map_err(anyhow::Error::msg)?
        );
        accel
    };
    let cpus = a
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u32));
    let memory = a.memory.unwrap_or(lifecycle::DEFAULT_MEMORY_MIB);
    if cpus == 0 || memory < 512 {
        bail!("--cpus must be at least 1 and --memory at least 512 MiB");
    }
    // Before anything is written: an image that cannot say how to verify
    // its root does not boot.
    let root_verity = RootVerity::load(&image).map_err(anyhow::Error::msg)?;
    let boot = BootConfig::load(&image).map_err(anyhow::Error::msg)?;
    let shares = settings::write_shares(home, &a.bench_9p_share)?;
    let engine = settings::write_engine(home)?;
    Ok(Machine {
        arch,
        kind: a.machine,
        accel,
        cpus,
        memory_mib: memory,
        kernel: image.join("vmlinuz"),
        root: image.join("root.erofs"),
        root_verity,
        boot,
        data: Some(home.data_disk()),
        vsock: None,
        settings: Some(home.settings_blob()),
        console: Console::File(home.console_log()),
        tsc_khz: tsc::khz(),
        qmp: None,
        pidfile: None,
        shares: shares
            .into_iter()
            .enumerate()
            .map(|(i, share)| ShareDevice {
                share,
                socket: home.share_sock(i),
            })
            .collect(),
        shares_map: Some(home.shares_map()),
        engine,
        cmdline: a.bench_kernel_arg.clone(),
    })
}

/// `GET /_ping` through the user's docker socket: the whole path works.
fn engine_answers(home: &Home) -> bool {
    engine_get(home, "/_ping").is_some_and(|b| b == b"OK")
}

/// A GET through the user's docker socket (host proxy, channel, gate): the
/// body of a 200 answer, `None` otherwise.
fn engine_get(home: &Home, path: &str) -> Option<Vec<u8>> {
    hull_http::blocking::get(&home.docker_sock(), path, 1 << 20, Duration::from_secs(5))
        .and_then(|r| r.ok(path))
        .ok()
        .map(Vec::from)
}

fn up(home: &Home, a: &UpArgs) -> Result<()> {
    std::fs::create_dir_all(&home.dir)
        .with_context(|| format!("creating {}", home.dir.display()))?;
    let req = lifecycle::Requested {
        cpus: a.cpus,
        memory_mib: a.memory,
        disk_gib: a.disk_gib,
    };
    if state::in_use(home) {
        if let Some(st) = VmState::load(home) {
            lifecycle::check_running(home, &req, &st)?;
        }
        if engine_answers(home) {
            eprintln!("hull is already running in {}", home.dir.display());
            println!("{}", env_line(home));
            return Ok(());
        }
        eprintln!(
            "hull is starting in {} (another `hull up`); waiting",
            home.dir.display()
        );
        return wait_engine(home, Instant::now(), Duration::from_secs(a.timeout));
    }
    // Before anything is written for this boot (a missing image is named
    // below, after the settings, as before).
    if let Ok(dir) = image_dir(&a.image) {
        check_bundle(&dir)?;
    }
    #[cfg(feature = "test-hooks")]
    let raw = a.raw_settings.as_deref();
    #[cfg(not(feature = "test-hooks"))]
    let raw = None;
    let report = settings::prepare(home, &Mode::User, raw)?;
    for line in &report.ignored {
        eprintln!("hull: settings: {line}");
    }
    // The remembered size, changed by this command's flags; the disk made
    // or grown to match.
    let settled = lifecycle::settle(home, &req, &image_dir_for(&a.image, a.arch)?)?;
    for n in &settled.notes {
        eprintln!("hull: {n}");
    }
    let mut a = a.clone();
    if let Some(c) = &settled.config {
        a.cpus = Some(c.cpus);
        a.memory = Some(c.memory_mib);
    }
    let a = &a;
    let m = machine(home, a)?;
    if !m.cmdline.is_empty() {
        eprintln!(
            "hull: BENCHMARK kernel words (hardening switched by hand): {}",
            m.cmdline.join(" ")
        );
    }
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.daemon_log())?;
    let _ = std::fs::remove_file(home.console_log());
    let mut cmd = Command::new(exe);
    cmd.arg("__serve")
        .arg("--memory")
        .arg(m.memory_mib.to_string())
        .arg("--cpus")
        .arg(m.cpus.to_string())
        .arg("--image")
        .arg(m.kernel.parent().unwrap_or(Path::new(".")))
        .arg("--accel")
        .arg(m.accel.as_str())
        .arg("--machine")
        .arg(format!("{:?}", m.kind).to_lowercase())
        .args(
            m.cmdline
                .iter()
                .flat_map(|w| ["--bench-kernel-arg", w.as_str()]),
        )
        .args(
            a.bench_9p_share
                .iter()
                .flat_map(|d| [std::ffi::OsStr::new("--bench-9p-share"), d.as_os_str()]),
        )
        .env("HULL_HOME", &home.dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our terminal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let start = Instant::now();
    cmd.spawn().context("starting the hull daemon")?;
    eprintln!(
        "hull: booting ({}, {} cpus, {} MiB) in {}",
        m.accel.as_str(),
        m.cpus,
        m.memory_mib,
        home.dir.display()
    );
    wait_engine(home, start, Duration::from_secs(a.timeout))?;
    docker_context(home);
    report_shares(home);
    eprintln!(
        "hull: engine ready in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    println!("{}", env_line(home));
    Ok(())
}

/// One line per shared directory: what serves it, its cache mode, and
/// whether containers get it id-mapped (root-owned and writable inside).
/// `host` is the daemon's record, `guest` init's status.
fn share_lines(host: &[state::ShareState], guest: Option<&serde_json::Value>) -> Vec<String> {
    host.iter()
        .map(|s| {
            let g = guest
                .and_then(|g| g["shares"]["shares"].as_array())
                .and_then(|l| l.iter().find(|x| x["tag"] == s.tag.as_str()));
            let fs = match s.fs {
                hull_qemu::shares::ShareFs::Virtiofs => "virtiofs",
                hull_qemu::shares::ShareFs::NineP => "9p (benchmark only)",
            };
            let cache = s.cache.as_deref().unwrap_or("-");
            let idmap = match g {
                None => "id-mapping unknown (the VM did not answer)".to_string(),
                Some(g) if g["idmapped"] == true => "id-mapped".to_string(),
                Some(g) => format!(
                    "NOT id-mapped: {}",
                    g["error"].as_str().unwrap_or("containers cannot use it")
                ),
            };
            format!(
                "{} -> {} ({fs}, cache {cache}, {idmap})",
                s.path.display(),
                g.and_then(|g| g["vm_path"].as_str()).unwrap_or("?")
            )
        })
        .collect()
}

/// After boot: says loudly when a share cannot be id-mapped (containers
/// cannot write it), never leaving the user to find out from a failed run.
fn report_shares(home: &Home) {
    let Some(st) = VmState::load(home) else {
        return;
    };
    let guest = control::request(&home.vsock_uds(), &serde_json::json!({"op": "status"})).ok();
    for (s, line) in st
        .shares
        .iter()
        .zip(share_lines(&st.shares, guest.as_ref()))
    {
        let bad = line.contains("NOT id-mapped") && s.fs == hull_qemu::shares::ShareFs::Virtiofs;
        if bad {
            eprintln!("hull: WARNING: shared directory {line}; `docker run -v` of it is refused until this is fixed");
        } else {
            eprintln!("hull: shared {line}");
        }
    }
}

/// Waits for the engine, showing init's progress from the console.
fn wait_engine(home: &Home, start: Instant, timeout: Duration) -> Result<()> {
    let mut last = String::new();
    let mut seen_daemon = false;
    loop {
        if engine_answers(home) {
            return Ok(());
        }
        let running = state::in_use(home);
        seen_daemon |= running;
        if !running && (seen_daemon || start.elapsed() > Duration::from_secs(5)) {
            bail!(
                "the VM stopped while booting.\n--- {} (tail) ---\n{}\n--- {} (tail) ---\n{}",
                home.daemon_log().display(),
                tail(&home.daemon_log(), 20),
                home.console_log().display(),
                tail(&home.console_log(), 40)
            );
        }
        if start.elapsed() > timeout {
            bail!(
                "the engine did not answer within {}s (the VM keeps running: see `hull logs console`, or `hull down`).\n{}",
                timeout.as_secs(),
                tail(&home.console_log(), 20)
            );
        }
        let console = std::fs::read_to_string(home.console_log()).unwrap_or_default();
        if let Some(e) = lifecycle::disk_refusal(&console) {
            bail!(
                "the VM cannot use its data disk: {e}\nThe VM keeps running without it (`hull status` shows this); `hull down` stops it."
            );
        }
        let step = console
            .lines()
            .rev()
            .find(|l| l.contains("hull-init:"))
            .map(|l| l.split("hull-init: ").nth(1).unwrap_or(l).to_string())
            .unwrap_or_default();
        if !step.is_empty() && step != last {
            eprintln!("hull: [{:>5.1}s] {step}", start.elapsed().as_secs_f64());
            last = step;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn tail(p: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `docker context use hull` works after `hull up`.
fn docker_context(home: &Home) {
    let host = format!("host=unix://{}", home.docker_sock().display());
    let exists = Command::new("docker")
        .args(["context", "inspect", "hull"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let verb = if exists { "update" } else { "create" };
    let ok = Command::new("docker")
        .args([
            "context",
            verb,
            "hull",
            "--description",
            "hull VM",
            "--docker",
            &host,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "hull: could not {verb} the docker context `hull` (is the docker CLI installed?)"
        );
    }
}

fn serve(home: &Home, a: &UpArgs, group_socket: bool) -> Result<()> {
    // Again right before QEMU opens the files: `hull up` checked them, but
    // the system service starts here directly, and the files may have
    // changed since.
    check_bundle(&image_dir(&a.image)?)?;
    let m = machine(home, a)?;
    daemon::run(
        home,
        daemon::Config {
            machine: m,
            group_socket,
        },
    )
}

/// `hull delete`: asks first (a terminal is needed for that, else
/// `--force`); a running VM is refused, or stopped with `--force`.
fn delete(home: &Home, force: bool) -> Result<()> {
    lifecycle::exists(home)?;
    if state::in_use(home) {
        if !force {
            bail!(
                "the VM in {} is running; stop it first (`hull down`) or use `hull delete --force`",
                home.dir.display()
            );
        }
        if let Err(e) = down(home, false) {
            eprintln!("hull: {e:#}; killing it");
            down(home, true)?;
        }
    }
    if !force && !lifecycle::confirm_delete(home)? {
        bail!("not deleted");
    }
    let removed = lifecycle::delete(home)?;
    eprintln!(
        "hull: deleted the VM in {} ({} files)",
        home.dir.display(),
        removed.len()
    );
    Ok(())
}

fn down(home: &Home, force: bool) -> Result<()> {
    if !state::in_use(home) {
        eprintln!("hull is not running in {}", home.dir.display());
        return Ok(());
    }
    let start = Instant::now();
    if force {
        let pid = VmState::load(home)
            .map(|s| s.qemu_pid)
            .context("no state.json: cannot find QEMU")?;
        // SAFETY: kill(2) on a pid we recorded; the worst case is ESRCH.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        wait_stopped(home, start)
    } else {
        stop_vm(home)
    }
    .context("stopping the VM (`hull down --force` kills it)")?;
    eprintln!("hull: stopped in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

/// A clean shutdown through init's control port, waited for: `hull down`
/// and the system service's `down` (cli_system) both stop the VM this way.
fn stop_vm(home: &Home) -> Result<()> {
    if !state::in_use(home) {
        return Ok(());
    }
    let start = Instant::now();
    let v = control::request(&home.vsock_uds(), &serde_json::json!({"op": "shutdown"}))
        .context("asking the VM to shut down")?;
    if let Some(e) = v.get("error") {
        bail!("the VM refused to shut down: {e}");
    }
    wait_stopped(home, start)
}

fn wait_stopped(home: &Home, start: Instant) -> Result<()> {
    while state::in_use(home) {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the VM is still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Which mode this VM runs in, the admin file it was given (and that file's
/// digest now), and the digest of the admin file the VM itself holds: one
/// command tells an admin whether a machine runs what they wrote.
fn admin_report(mode: &Mode, running_settings: Option<&serde_json::Value>) -> serde_json::Value {
    let file = settings::admin_path(mode).ok();
    let now = file
        .as_deref()
        .and_then(|f| settings::file_sha256(f).ok().flatten());
    let in_vm = running_settings.map(|v| v["host"].clone());
    let guarantee = match mode {
        Mode::System(_) => "system mode: the VM runs as _hull from root-owned paths; only root can change the admin file, and users cannot restart the VM with other settings",
        Mode::User => "user mode: you control this VM (its home, settings blob and QEMU command line), so you can bypass the admin's locks; `hull system install` makes them hold",
    };
    serde_json::json!({
        "mode": mode.name(),
        "guarantee": guarantee,
        "adminFile": file,
        "adminSha256Now": now,
        "inVm": in_vm,
    })
}

fn status(home: &Home, mode: &Mode, json: bool) -> Result<()> {
    let running = state::in_use(home);
    let st = if running { VmState::load(home) } else { None };
    let guest = if running {
        control::request(&home.vsock_uds(), &serde_json::json!({"op": "status"})).ok()
    } else {
        None
    };
    let boot_phases = guest.as_ref().map(|g| {
        let answered = hull_qemu::phases::now_ms();
        hull_qemu::phases::phases(st.as_ref().and_then(|s| s.qemu_started_ms), answered, g)
    });
    let settings = settings::show(home, mode).ok();
    let unprotected: Option<Vec<serde_json::Value>> = if running {
        engine_get(home, "/hull/v1/unprotected").and_then(|b| serde_json::from_slice(&b).ok())
    } else {
        None
    };
    let in_vm: Option<serde_json::Value> = if running {
        engine_get(home, "/hull/v1/settings").and_then(|b| serde_json::from_slice(&b).ok())
    } else {
        None
    };
    let admin = admin_report(mode, in_vm.as_ref());
    // The release bundle the VM booted from (checked at boot; read again
    // here, unchecked, for its name): null for a build's image folder.
    let booted_bundle = st
        .as_ref()
        .filter(|s| bundle::is_bundle(&s.image))
        .map(|s| match bundle::read(&s.image) {
            Ok(b) => serde_json::json!({
                "name": b.name, "version": b.version, "commit": b.commit,
                "arch": b.arch, "path": s.image,
            }),
            Err(e) => serde_json::json!({"error": e.to_string(), "path": s.image}),
        });
    if json {
        let v = serde_json::json!({
            "mode": mode.name(),
            "admin": admin,
            "home": home.dir,
            "state": if running { "running" } else { "stopped" },
            "vm": st,
            "bundle": booted_bundle,
            "guest": guest,
            "boot_phases": boot_phases,
            "unprotected_containers": unprotected,
            "settings": settings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("mode      {}", admin["guarantee"].as_str().unwrap_or("?"));
    println!(
        "admin     {} ({})",
        admin["adminFile"].as_str().unwrap_or("?"),
        admin["adminSha256Now"].as_str().unwrap_or("no such file")
    );
    if running {
        let held = admin["inVm"]["adminSha256"].as_str();
        println!(
            "          the VM holds {}",
            held.unwrap_or("no admin digest (an older VM, or no admin file)")
        );
    }
    println!("home      {}", home.dir.display());
    let Some(st) = st.filter(|_| running) else {
        println!("state     stopped");
        return Ok(());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!(
        "state     running ({} s)",
        now.saturating_sub(st.started_unix)
    );
    println!(
        "vm        {} {}, {} cpus, {} MiB",
        st.machine, st.accel, st.cpus, st.memory_mib
    );
    match &booted_bundle {
        Some(b) if b["version"].is_string() => println!(
            "bundle    {} (hull {}, commit {})",
            b["name"].as_str().unwrap_or("?"),
            b["version"].as_str().unwrap_or("?"),
            b["commit"].as_str().unwrap_or("?")
        ),
        Some(b) => println!("bundle    ERROR: {}", b["error"].as_str().unwrap_or("?")),
        None => println!("image     {} (a build's image folder)", st.image.display()),
    }
    match &guest {
        None => println!("guest     not answering on the control port (still booting?)"),
        Some(g) => {
            println!("services");
            for s in g["services"].as_array().into_iter().flatten() {
                println!(
                    "  {:<12} {:<11} pid {:<6} restarts {:<3} {}",
                    s["name"].as_str().unwrap_or("?"),
                    s["state"].as_str().unwrap_or("?"),
                    s["pid"]
                        .as_i64()
                        .map(|p| p.to_string())
                        .unwrap_or("-".into()),
                    s["restarts"].as_u64().unwrap_or(0),
                    s["error"].as_str().unwrap_or("")
                );
            }
            if let Some(p) = boot_phases.as_ref().filter(|p| !p.is_empty()) {
                println!("boot");
                for p in p {
                    println!("  {:<40} {:>6.2}s  (+{:.2}s)", p.phase, p.at_s, p.took_s);
                }
            }
            let root = &g["root"];
            match root["root_hash"]
                .as_str()
                .filter(|_| root["verified"] == true)
            {
                Some(h) => println!("root      verified (dm-verity), root hash {h}"),
                None => println!("root      NOT verified: {root}"),
            }
            if let Some(e) = g["settings"]["error"].as_str() {
                println!("settings  ERROR in the VM: {e} (running with the strictest defaults)");
            }
            if let Some(e) = g["data_disk"]["error"].as_str() {
                println!("data disk ERROR: {e}");
            }
        }
    }
    if !st.shares.is_empty() {
        println!("shares");
        for line in share_lines(&st.shares, guest.as_ref()) {
            println!("  {line}");
        }
    }
    if let Some(list) = &unprotected {
        if !list.is_empty() {
            println!("unprotected containers (not created by hull-runtime; refused at start)");
            for c in list {
                println!(
                    "  {:<20} {:<24} runtime {:<8} remove with: {}",
                    c["name"].as_str().unwrap_or("?"),
                    c["image"].as_str().unwrap_or("?"),
                    c["runtime"].as_str().unwrap_or("?"),
                    c["remedy"].as_str().unwrap_or("")
                );
            }
        }
    }
    if let Some(s) = settings {
        println!("settings");
        for line in settings::human(&s) {
            println!("  {line}");
        }
    }
    Ok(())
}

fn logs(home: &Home, name: &str, follow: bool) -> Result<()> {
    let mut out = std::io::stdout();
    if name == "console" {
        let mut f = std::fs::File::open(home.console_log())
            .with_context(|| format!("{}", home.console_log().display()))?;
        let mut pos = 0u64;
        loop {
            let mut buf = Vec::new();
            f.seek(SeekFrom::Start(pos))?;
            f.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            out.write_all(&buf)?;
            out.flush()?;
            if !follow {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    if !state::in_use(home) {
        bail!(
            "hull is not running in {} (only `hull logs console` works now)",
            home.dir.display()
        );
    }
    control::logs(&home.vsock_uds(), name, follow, &mut out)?;
    Ok(())
}

fn show_settings(home: &Home, mode: &Mode, json: bool) -> Result<()> {
    let s = settings::show(home, mode)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        for line in settings::human(&s) {
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_name_is_not_the_profile() {
        use clap::Parser;
        let cli = super::Cli::parse_from(["hull", "logs", "dockerd"]);
        assert!(cli.profile.is_none());
        let cli = super::Cli::parse_from(["hull", "--name", "dev", "logs", "dockerd"]);
        assert_eq!(cli.profile.as_deref(), Some("dev"));
        assert!(matches!(cli.cmd, super::Cmd::Logs { ref name, .. } if name == "dockerd"));
    }
}
