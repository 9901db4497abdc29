//! hull-guard: the CLI edge of the guard daemon (the `hull_guard` library).
//! `hull-guard [serve]` is what init runs; `worker` and `freshfs` are the
//! guard's own helper processes (it re-executes itself), never run by hand.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hull_guard::{freshfs, procfs, server, worker};

#[derive(Parser, Debug)]
#[command(
    name = "hull-guard",
    version,
    about = "hull's mount-vetting guard daemon"
)]
struct Cli {
    #[command(flatten)]
    serve: ServeOpts,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Args, Debug, Clone)]
struct ServeOpts {
    /// The root-only socket hull-runtime hands listeners to.
    #[arg(
        long,
        env = "HULL_GUARD_SOCKET",
        default_value = "/run/hull/guard.sock"
    )]
    socket: PathBuf,
    /// The guard's private state (scratch space, the emulated procfs mount).
    #[arg(
        long = "state-dir",
        env = "HULL_GUARD_STATE",
        default_value = "/run/hull/guard"
    )]
    state_dir: PathBuf,
    /// Audit trail (JSON lines).
    #[arg(
        long = "audit-log",
        env = "HULL_GUARD_AUDIT",
        default_value = "/run/hull/log/audit.jsonl"
    )]
    audit_log: PathBuf,
    /// Size at which the audit log is rotated once (to audit.jsonl.1).
    #[arg(long = "audit-max-bytes", default_value_t = 8 << 20)]
    audit_max_bytes: u64,
    #[arg(
        long = "idranges-dir",
        env = "HULL_IDRANGES_DIR",
        default_value = "/var/lib/hull/idranges"
    )]
    idranges_dir: PathBuf,
    #[arg(long = "idranges-max", env = "HULL_IDRANGES_MAX", default_value_t = hull_guard_proto::idrange::DEFAULT_MAX_RANGES)]
    idranges_max: usize,
    /// Do not mount the procfs emulation (FUSE).
    #[arg(long = "no-procfs")]
    no_procfs: bool,
    #[arg(long)]
    debug: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the daemon (the default).
    Serve,
    /// Internal: one container's worker (control socket on fd 3).
    #[command(hide = true)]
    Worker,
    /// Internal: build a masked proc/sysfs (result on fd 3).
    #[command(hide = true)]
    Freshfs(freshfs::FreshArgs),
    /// Internal: the procfs emulation server (started detached by the guard).
    #[command(hide = true)]
    Procfs {
        #[arg(long)]
        mount: PathBuf,
        #[arg(long)]
        socket: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings and errors on stderr (init keeps it); everything with --debug.
    let level = if cli.serve.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(level)
        .try_init();
    let r = match cli.command {
        None | Some(Cmd::Serve) => {
            let o = cli.serve;
            let procfs = (!o.no_procfs).then(|| o.state_dir.join("procfs"));
            server::serve(server::Config {
                socket: o.socket,
                state_dir: o.state_dir,
                audit_log: o.audit_log,
                audit_max_bytes: o.audit_max_bytes,
                idranges_dir: o.idranges_dir,
                idranges_max: o.idranges_max,
                procfs,
            })
        }
        Some(Cmd::Worker) => {
            // SAFETY: fd 3 was set up by the guard for this process alone.
            let fd = unsafe { OwnedFd::from_raw_fd(3) };
            worker::run(fd).map_err(anyhow::Error::from)
        }
        Some(Cmd::Freshfs(a)) => freshfs::run(&a).map_err(anyhow::Error::from),
        Some(Cmd::Procfs { mount, socket }) => procfs::serve(&mount, &socket),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
