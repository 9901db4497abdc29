//! `hull system ...`: installs, starts, stops and removes system mode, and is
//! the service itself (`hull system serve`, run as `_hull`). The paths and
//! the request protocol are in the library (`hull_qemu::system`).

use std::io::{BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hull_qemu::home::Home;
use hull_qemu::state;
use hull_qemu::system::{self, Answer, Mode, Op, SystemConfig};
use nix::unistd::{Group, User};

/// The service's PATH: root-owned tool folders only, never a user's.
const SERVICE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(clap::Args, Clone)]
pub struct InstallArgs {
    /// Image folder to install (default: the one `hull up` would use).
    #[arg(long)]
    pub image: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory: u32,
    /// Size of the data disk when it is created (GiB).
    #[arg(long, default_value_t = 64)]
    pub disk_gib: u32,
}

#[derive(clap::Subcommand)]
pub enum SystemCmd {
    /// Install system mode (root): the `_hull` user, the `hull` group,
    /// root-owned copies of hull and the image, /etc/hull/system.json and a
    /// systemd unit (started at once where systemd runs).
    Install(InstallArgs),
    /// Start the service and its VM without systemd (root).
    Start,
    /// Stop the VM and the service (root).
    Stop,
    /// Remove system mode (root). --purge also removes the VM's disk, the
    /// `_hull` user and the `hull` group; the admin's settings file stays.
    Uninstall {
        #[arg(long)]
        purge: bool,
    },
    /// The service itself, run as `_hull` by systemd or `hull system start`.
    #[command(hide = true)]
    Serve,
}

pub fn run(
    cmd: SystemCmd,
    mode: &Mode,
    image_dir: impl Fn(&Option<PathBuf>) -> Result<PathBuf>,
) -> Result<()> {
    match cmd {
        SystemCmd::Install(a) => install(&a, &image_dir(&a.image)?),
        SystemCmd::Start => start(need_system(mode)?),
        SystemCmd::Stop => stop(need_system(mode)?),
        SystemCmd::Uninstall { purge } => uninstall(mode, purge),
        SystemCmd::Serve => serve(need_system(mode)?),
    }
}

fn need_system(mode: &Mode) -> Result<&SystemConfig> {
    match mode {
        Mode::System(c) => Ok(c),
        Mode::User => bail!(
            "this machine is in user mode ({} does not exist): `hull system install` first",
            system::CONFIG
        ),
    }
}

fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("`hull system {what}` must run as root: it acts for every user of this machine");
    }
    Ok(())
}

fn service_user() -> Result<User> {
    User::from_name(system::USER)?.with_context(|| {
        format!(
            "the service user {} does not exist (`hull system install` creates it)",
            system::USER
        )
    })
}

fn sh(prog: &str, args: &[&str]) -> Result<()> {
    let st = Command::new(prog)
        .args(args)
        .status()
        .with_context(|| format!("running {prog}"))?;
    if !st.success() {
        bail!("{prog} {} failed ({st})", args.join(" "));
    }
    Ok(())
}

/// Writes `bytes` to `dst` as root with `mode`, atomically (a reader never
/// sees half a binary or half a config).
fn put(dst: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = dst.with_extension("hull-tmp");
    std::fs::write(&tmp, bytes).with_context(|| tmp.display().to_string())?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, dst).with_context(|| dst.display().to_string())
}

fn root_dir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).with_context(|| p.display().to_string())?;
    std::os::unix::fs::chown(p, Some(0), Some(0))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A tool the service runs: found in [`SERVICE_PATH`], owned by root and
/// writable by nobody else, executable by `_hull`.
fn service_tool(name: &str) -> Result<PathBuf> {
    for dir in SERVICE_PATH.split(':') {
        let p = Path::new(dir).join(name);
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        if m.uid() != 0 || m.mode() & 0o022 != 0 {
            bail!(
                "{} must be owned by root and writable by nobody else (mode {:o}, uid {}): the service would run what a user could replace",
                p.display(),
                m.mode() & 0o7777,
                m.uid()
            );
        }
        if m.mode() & 0o001 == 0 {
            bail!(
                "{} is not executable by others: {} could not run it",
                p.display(),
                system::USER
            );
        }
        return Ok(p);
    }
    bail!("{name} is not in {SERVICE_PATH}: run `cargo xtask deps` as root (it installs the backends to /usr/local/bin)")
}

fn unit_text() -> String {
    format!(
        "[Unit]\n\
         Description=hull: the admin's hardened container VM\n\
         After=network.target\n\n\
         [Service]\n\
         Type=simple\n\
         User={user}\n\
         Group={group}\n\
         UMask=0027\n\
         Environment=PATH={SERVICE_PATH}\n\
         ExecStart={libexec}/hull system serve\n\
         TimeoutStopSec=90\n\
         Restart=on-failure\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        user = system::USER,
        group = system::GROUP,
        libexec = system::LIBEXEC,
    )
}

fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn install(a: &InstallArgs, image: &Path) -> Result<()> {
    require_root("install")?;
    if a.cpus == 0 || a.memory < 512 || a.disk_gib == 0 {
        bail!("--cpus must be at least 1, --memory at least 512 MiB and --disk-gib at least 1");
    }
    // The emulator the image's kernel needs (its arch, from its header).
    let qemu = hull_qemu::arch::Arch::of_kernel(&image.join("vmlinuz"))
        .map_err(anyhow::Error::msg)?
        .qemu_binary();
    for tool in ["vhost-device-vsock", "virtiofsd", qemu, "qemu-img"] {
        service_tool(tool)?;
    }
    if Group::from_name(system::GROUP)?.is_none() {
        sh("groupadd", &["--system", system::GROUP])?;
    }
    if User::from_name(system::USER)?.is_none() {
        sh(
            "useradd",
            &[
                "--system",
                "--gid",
                system::GROUP,
                "--home-dir",
                system::HOME,
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "hull VM service",
                system::USER,
            ],
        )?;
    }
    let user = service_user()?;
    // Root-owned copies: what the service runs cannot be swapped by a user.
    let libexec = Path::new(system::LIBEXEC);
    root_dir(libexec)?;
    let exe = std::env::current_exe().context("finding this hull binary")?;
    put(
        &libexec.join("hull"),
        &std::fs::read(&exe).with_context(|| exe.display().to_string())?,
        0o755,
    )?;
    let img = Path::new(system::IMAGE);
    root_dir(img)?;
    // image.json carries the root's verity hash and boot.json the kernel
    // command line: without them the service would refuse to boot, so the
    // install refuses first. A release bundle is checked before it is copied.
    if hull_qemu::bundle::is_bundle(image) {
        hull_qemu::bundle::verify(image).context("refusing to install")?;
    }
    for f in [
        "vmlinuz",
        "root.erofs",
        hull_qemu::machine::IMAGE_JSON,
        hull_qemu::machine::BOOT_JSON,
    ] {
        let src = image.join(f);
        put(
            &img.join(f),
            &std::fs::read(&src).with_context(|| src.display().to_string())?,
            0o644,
        )?;
    }
    let home = Path::new(system::HOME);
    std::fs::create_dir_all(home)?;
    std::os::unix::fs::chown(home, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o750))?;
    let cfg = SystemConfig {
        home: home.to_path_buf(),
        hull: libexec.join("hull"),
        image: img.to_path_buf(),
        cpus: a.cpus,
        memory_mib: a.memory,
        disk_gib: a.disk_gib,
    };
    let etc = Path::new(system::CONFIG)
        .parent()
        .context("system config path has no folder")?;
    root_dir(etc)?;
    put(
        Path::new(system::CONFIG),
        &serde_json::to_vec_pretty(&cfg)?,
        0o644,
    )?;
    put(Path::new(system::UNIT), unit_text().as_bytes(), 0o644)?;
    println!("hull: system mode installed: {}", system::CONFIG);
    println!(
        "hull: admin settings are read from {} only",
        system::ADMIN_SETTINGS
    );
    if systemd_runs() {
        sh("systemctl", &["daemon-reload"])?;
        sh("systemctl", &["enable", "--now", "hull.service"])?;
        println!("hull: service started (systemctl status hull)");
    } else {
        println!(
            "hull: this machine runs no systemd; start the service with `hull system start` (the unit is in {} for when it does)",
            system::UNIT
        );
    }
    println!(
        "hull: users in group `{}` (usermod -aG {} NAME) use DOCKER_HOST=unix://{}/docker.sock",
        system::GROUP,
        system::GROUP,
        system::HOME
    );
    Ok(())
}

fn pid_file(cfg: &SystemConfig) -> PathBuf {
    cfg.home.join("service.pid")
}

fn service_pid(cfg: &SystemConfig) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(cfg))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

fn start(cfg: &SystemConfig) -> Result<()> {
    require_root("start")?;
    if systemd_runs() {
        return sh("systemctl", &["start", "hull.service"]);
    }
    if let Some(pid) = service_pid(cfg) {
        println!("hull: the service is already running (pid {pid})");
        return Ok(());
    }
    let user = service_user()?;
    let log_path = cfg.home.join("service.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| log_path.display().to_string())?;
    std::os::unix::fs::chown(&log_path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
    let mut cmd = Command::new(&cfg.hull);
    cmd.args(["system", "serve"])
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .env("HOME", &cfg.home)
        .env("HULL_HOME", &cfg.home)
        .current_dir(&cfg.home)
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid and umask are async-signal-safe; the service leaves our
    // session and creates its files 0640/sockets 0750 (the group reads).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::umask(0o027);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", cfg.hull.display()))?;
    let sock = system::service_sock(&cfg.home());
    let t = Instant::now();
    while UnixStream::connect(&sock).is_err() {
        if let Some(st) = child.try_wait()? {
            bail!("the service exited ({st}); see {}", log_path.display());
        }
        if t.elapsed() > Duration::from_secs(20) {
            bail!("the service did not open {} within 20 s", sock.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("hull: service started (pid {}), booting the VM", child.id());
    Ok(())
}

fn stop(cfg: &SystemConfig) -> Result<()> {
    require_root("stop")?;
    if systemd_runs() {
        return sh("systemctl", &["stop", "hull.service"]);
    }
    let Some(pid) = service_pid(cfg) else {
        println!("hull: the service is not running");
        return Ok(());
    };
    // SAFETY: kill(2) on the service's recorded pid; it shuts the VM down
    // cleanly on SIGTERM (see `serve`).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t = Instant::now();
    while service_pid(cfg).is_some() {
        if t.elapsed() > Duration::from_secs(90) {
            bail!("the service (pid {pid}) is still running after 90 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("hull: service stopped");
    Ok(())
}

fn uninstall(mode: &Mode, purge: bool) -> Result<()> {
    require_root("uninstall")?;
    if let Mode::System(cfg) = mode {
        stop(cfg)?;
    }
    if systemd_runs() && Path::new(system::UNIT).exists() {
        let _ = sh("systemctl", &["disable", "hull.service"]);
    }
    for f in [system::UNIT, system::CONFIG] {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| f.to_string())
            }
            _ => {}
        }
    }
    for d in [system::LIBEXEC, system::IMAGE] {
        if Path::new(d).exists() {
            std::fs::remove_dir_all(d).with_context(|| d.to_string())?;
        }
    }
    if purge {
        if Path::new(system::HOME).exists() {
            std::fs::remove_dir_all(system::HOME).with_context(|| system::HOME.to_string())?;
        }
        if User::from_name(system::USER)?.is_some() {
            sh("userdel", &[system::USER])?;
        }
        if Group::from_name(system::GROUP)?.is_some() {
            sh("groupdel", &[system::GROUP])?;
        }
    }
    println!(
        "hull: system mode removed{} ({} is the admin's and stays)",
        if purge {
            ", with its disk, user and group"
        } else {
            "; the VM's disk stays in /var/lib/hull (--purge removes it)"
        },
        system::ADMIN_SETTINGS
    );
    Ok(())
}

/// The VM the service runs: settings from the admin's file only, the disk,
/// then `hull __serve` as the service's child.
fn boot(cfg: &SystemConfig, mode: &Mode) -> Result<Child> {
    let home = cfg.home();
    let report = hull_qemu::settings::prepare(&home, mode, None)?;
    for line in &report.ignored {
        eprintln!("hull: settings: {line}");
    }
    let disk = home.data_disk();
    if !disk.exists() {
        sh(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                &disk.display().to_string(),
                &format!("{}G", cfg.disk_gib),
            ],
        )?;
        // Everything in the VM is on it: the service's alone.
        std::fs::set_permissions(&disk, std::fs::Permissions::from_mode(0o600))?;
    }
    let _ = std::fs::remove_file(home.console_log());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.daemon_log())?;
    let child = Command::new(&cfg.hull)
        .arg("__serve")
        .args(["--image", &cfg.image.display().to_string()])
        .args(["--cpus", &cfg.cpus.to_string()])
        .args(["--memory", &cfg.memory_mib.to_string()])
        .env("HULL_HOME", &cfg.home)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the VM (hull __serve)")?;
    Ok(child)
}

fn serve(cfg: &SystemConfig) -> Result<()> {
    let user = service_user()?;
    let me = nix::unistd::geteuid();
    if me != user.uid {
        bail!(
            "`hull system serve` runs as the service user {} (uid {}), started by systemd or `hull system start`, not as uid {me}",
            system::USER,
            user.uid
        );
    }
    // SAFETY: umask(2) cannot fail; files the service makes are 0640 and
    // sockets 0750, so the group reads logs and state but connects only to
    // the sockets chmod'ed for it (docker.sock, service.sock).
    unsafe { libc::umask(0o027) };
    let home = cfg.home();
    let mode = Mode::System(cfg.clone());
    std::fs::write(pid_file(cfg), std::process::id().to_string())?;
    // SIGTERM/SIGINT are taken synchronously by one thread: the VM is shut
    // down cleanly before the service exits.
    let signals = nix::sys::signal::SigSet::from_iter([
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ]);
    signals.thread_block()?;
    let sock = system::service_sock(&home);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).with_context(|| sock.display().to_string())?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o660))?;
    let vm: std::sync::Arc<std::sync::Mutex<Option<Child>>> = Default::default();
    {
        let home = home.clone();
        let vm = vm.clone();
        let sock = sock.clone();
        std::thread::spawn(move || {
            let sig = signals.wait();
            eprintln!("hull service: {sig:?}: stopping the VM");
            if let Err(e) = super::stop_vm(&home) {
                eprintln!("hull service: {e:#}");
            }
            if let Ok(mut g) = vm.lock() {
                if let Some(c) = g.as_mut() {
                    let _ = c.wait();
                }
            }
            let _ = std::fs::remove_file(&sock);
            std::process::exit(0);
        });
    }
    match boot(cfg, &mode) {
        Ok(c) => {
            if let Ok(mut g) = vm.lock() {
                *g = Some(c);
            }
        }
        Err(e) => eprintln!("hull service: the VM did not start: {e:#}"),
    }
    eprintln!("hull service: listening on {}", sock.display());
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let who = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
            .map(|c| c.uid().to_string())
            .unwrap_or_else(|_| "?".into());
        let answer = match system::read_request(BufReader::new(&conn)) {
            Err(e) => Answer {
                ok: false,
                message: e,
            },
            Ok(op) => {
                eprintln!("hull service: {op:?} from uid {who}");
                handle(op, cfg, &mode, &home, &vm)
            }
        };
        if let Ok(line) = serde_json::to_string(&answer) {
            let _ = conn.write_all(format!("{line}\n").as_bytes());
        }
    }
    Ok(())
}

fn handle(
    op: Op,
    cfg: &SystemConfig,
    mode: &Mode,
    home: &Home,
    vm: &std::sync::Mutex<Option<Child>>,
) -> Answer {
    let Ok(mut g) = vm.lock() else {
        return Answer {
            ok: false,
            message: "the service's state is poisoned; the admin restarts it".into(),
        };
    };
    // Reap a VM that stopped (from `hull down`, a crash, or the guest).
    if let Some(c) = g.as_mut() {
        if matches!(c.try_wait(), Ok(Some(_))) {
            *g = None;
        }
    }
    let r = match op {
        Op::Up if state::in_use(home) || g.is_some() => Ok("the VM is running".to_string()),
        Op::Up => boot(cfg, mode).map(|c| {
            *g = Some(c);
            "the VM is starting".to_string()
        }),
        Op::Down => super::stop_vm(home).map(|()| {
            if let Some(c) = g.as_mut() {
                let _ = c.wait();
            }
            *g = None;
            "the VM stopped".to_string()
        }),
    };
    match r {
        Ok(message) => Answer { ok: true, message },
        Err(e) => Answer {
            ok: false,
            message: format!("{e:#}"),
        },
    }
}
