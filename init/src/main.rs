//! hull-init: PID 1 of the hull VM. It must never panic and never exit: an
//! exiting PID 1 is a kernel panic. Every step logs to the console with a
//! timestamp, and lands in the boot timeline that `hull status` shows.

#[cfg(feature = "bench")]
mod bench;
mod cmdline;
mod control;
mod disk;
mod dumps;
mod engine;
mod fw_cfg;
mod idle;
mod integrity;
mod log;
mod logs;
mod mounts;
mod net;
mod netlink;
mod power;
mod selftest;
mod services;
mod settings;
mod shares;
mod stamp;
mod status;
mod supervisor;
mod sysctl;
mod vmconf;

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;

use cmdline::Cmdline;
use nix::sys::signal::{SigSet, Signal};
use serde_json::json;
use status::Timeline;
use supervisor::{Event, Supervisor};

fn main() {
    if std::env::args().any(|a| a == "--version") {
        println!("hull-init {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if std::process::id() != 1 {
        eprintln!("hull-init: must run as PID 1 (it is the VM's init)");
        std::process::exit(2);
    }
    let _ = status::CPU_AT_START.set(status::cpu_split());
    std::panic::set_hook(Box::new(|p| error!("panic: {p}")));
    if std::panic::catch_unwind(boot).is_err() {
        error!("init's main loop panicked; stopping everything");
    }
    power::power_off();
}

/// What boot found, reported by `status`.
struct Facts {
    engine_error: Option<String>,
    settings: settings::Loaded,
    disk: disk::Outcome,
    shares: shares::Outcome,
    net_errors: Vec<String>,
    sysctls: Vec<sysctl::Outcome>,
    mount_errors: Vec<String>,
}

fn boot() {
    let mut timeline = Timeline::default();
    info!(
        "starting (version {}, build {}, data format {})",
        env!("CARGO_PKG_VERSION"),
        stamp::BUILD,
        stamp::current_format()
    );
    timeline.mark("init started");
    // Signals are handled by one sigwait thread; block them before any thread exists.
    let sigs = signal_set();
    if let Err(e) = sigs.thread_block() {
        error!("blocking signals: {e}");
    }
    let mount_errors = mounts::mount_api();
    for f in &mount_errors {
        error!("{f}");
    }
    let _ = std::fs::create_dir_all("/run/hull");
    let _ = std::fs::set_permissions("/run/hull", std::fs::Permissions::from_mode(0o700));
    let _ = std::fs::create_dir_all(logs::DIR);
    log::to_file(&logs::path("init").to_string_lossy());
    info!("API filesystems mounted");
    timeline.mark("API filesystems mounted");

    let cmd = Cmdline::read();
    if cmd.get("log") == Some("debug") {
        log::set_max(log::Level::Debug);
    }
    if cmd.flag("selftest") {
        run_selftest();
        return;
    }

    // What the image defines the VM to be. Fail closed: without it, no
    // lockdown sysctls, so no services either.
    let vm = match vmconf::load() {
        Ok(v) => v,
        Err(e) => {
            error!("the image's VM configuration is unusable: {e}; refusing to start any service (rebuild the image with `cargo xtask image`)");
            return;
        }
    };

    let settings = settings::load();
    info!("settings: {} ({} bytes)", settings.source, settings.bytes);
    timeline.mark("settings loaded");

    let disk = disk::setup();
    match (&disk.error, disk.mounted) {
        (None, true) => info!(
            "data disk {} mounted on {}{}",
            disk.device.as_deref().unwrap_or("?"),
            disk::MOUNT_POINT,
            if disk.formatted { " (new)" } else { "" }
        ),
        (Some(e), _) => error!("data disk: {e}"),
        _ => {}
    }
    if disk.mounted {
        integrity::ensure_canary();
    }
    timeline.mark("data disk ready");

    let shares = shares::setup();
    for e in &shares.errors {
        error!("file sharing: {e}");
    }
    if !shares.mounted.is_empty() {
        info!("shared from the host: {}", shares.mounted.join(", "));
    }
    timeline.mark("host shares mounted");

    let net_errors = net::setup();
    for e in &net_errors {
        error!("network: {e}");
    }
    info!("network up ({}/24 via {})", net::ADDR, net::GATEWAY);
    timeline.mark("network up");

    let sysctls = sysctl::apply(&vm.sysctls);
    let refused = sysctls
        .iter()
        .filter(|o| o.result.starts_with("refused"))
        .count();
    info!("lockdown sysctls applied ({refused} refused)");
    for e in dumps::apply() {
        error!("core dumps: {e}");
    }
    timeline.mark("sysctls locked down");

    if let Some(wall) = engine::WEAKENED {
        error!("WEAKENED BUILD: the wall `{wall}` is removed (cargo xtask vm-test --weaken {wall}); never use this image");
    }
    let user_engine = engine::user_settings();
    if let Err(e) = &user_engine {
        error!("{e}; ignoring them");
    }
    // Fail closed: without hull-runtime the engine does not start at all
    // (no other runtime is ever used in its place).
    let runtime = engine::runtime(|p| std::path::Path::new(p).exists());
    let mut services = services::table();
    match &runtime {
        Ok(path) => {
            // The bench image points dockerd at a link it can switch
            // between hull-runtime and crun (`bench-engine-runtime`).
            #[cfg(feature = "bench")]
            let path = &bench::runtime_link(path);
            let daemon = engine::daemon_json(
                engine::RUNTIME_NAME,
                path,
                engine::RUNTIME_ARGS,
                &vm.engine,
                user_engine.as_ref().ok().and_then(|o| o.as_ref()),
            );
            if let Err(e) = std::fs::write(engine::DAEMON_JSON, daemon) {
                error!("writing {}: {e}", engine::DAEMON_JSON);
            }
        }
        Err(e) => {
            error!("{e}");
            services.retain(|d| !engine::NEEDS_RUNTIME.contains(&d.name));
        }
    }

    let facts = Facts {
        engine_error: runtime.err().or(user_engine.err()),
        settings,
        disk,
        shares,
        net_errors,
        sysctls,
        mount_errors,
    };
    let (tx, rx) = mpsc::channel();
    start_signal_thread(sigs, tx.clone());
    control::serve(tx.clone());
    idle::start();
    let mut sup = Supervisor::new(services, tx, timeline);
    let on_control =
        move |sup: &mut Supervisor, req: control::Request| control_reply(sup, &facts, req);
    sup.run(&rx, &on_control);
    sup.stop_all(&rx);
    info!("services stopped: {}", supervisor::summary(&sup.status()));
}

fn run_selftest() {
    let checks = selftest::run();
    let all = checks.iter().all(|c| c.ok);
    for c in &checks {
        info!(
            "selftest {} {}: {}",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    info!("selftest {}", if all { "PASSED" } else { "FAILED" });
}

fn signal_set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPWR,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        s.add(sig);
    }
    s
}

/// SIGCHLD reaps; SIGTERM, SIGINT (ctrl-alt-del) and SIGPWR shut down.
fn start_signal_thread(set: SigSet, tx: mpsc::Sender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(Signal::SIGCHLD) => supervisor::reap(&tx),
                Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGPWR)) => {
                    let _ = tx.send(Event::Signal(sig));
                }
                Ok(other) => debug!("ignoring {other}"),
                Err(e) => {
                    error!("sigwait: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        });
    if let Err(e) = spawned {
        error!("cannot start the signal thread: {e}");
    }
}

fn control_reply(sup: &mut Supervisor, facts: &Facts, req: control::Request) -> serde_json::Value {
    match req {
        control::Request::Status => json!({
            "version": env!("CARGO_PKG_VERSION"),
            "build": stamp::BUILD,
            "data_format": stamp::current_format(),
            "weakened": engine::WEAKENED,
            "uptime_s": log::uptime(),
            "services": sup.status(),
            "timeline": sup.timeline.events,
            "settings": facts.settings,
            "engine_settings_error": facts.engine_error,
            "idle_cache": idle::status(),
            "data_disk": facts.disk,
            "shares": facts.shares,
            "network_errors": facts.net_errors,
            "mount_errors": facts.mount_errors,
            "sysctls": facts.sysctls,
            "init": status::self_usage(),
            "root": status::root_verity(),
        }),
        control::Request::Shutdown => json!({"ok": true}),
        control::Request::Integrity => integrity::snapshot(),
        control::Request::Listening => json!({"listening": integrity::listening()}),
        control::Request::Kill { service, signal } => {
            let sig = match signal.parse::<Signal>() {
                Ok(s) => s,
                Err(_) => return json!({"error": format!("unknown signal {signal:?}")}),
            };
            match sup.signal(&service, sig) {
                Ok(pid) => json!({"ok": true, "pid": pid}),
                Err(e) => json!({"error": e}),
            }
        }
        control::Request::Logs { .. } | control::Request::LoopbackListen { .. } => {
            json!({"error": "served by the connection"})
        }
        #[cfg(feature = "bench")]
        control::Request::EnginePing { .. }
        | control::Request::Sink { .. }
        | control::Request::Echo { .. }
        | control::Request::BenchRuntimes { .. }
        | control::Request::BenchEngineRuntime { .. }
        | control::Request::BenchEngineFloor => {
            json!({"error": "served by the connection"})
        }
    }
}
