//! hull-gate: the Docker API proxy in front of dockerd.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use hull_gate::{Config, Options};

const USAGE: &str = "usage: hull-gate [--docker-sock PATH] [--settings PATH] [--sockets-dir DIR]
                 [--audit-log PATH] [--vsock-port N] [--listen-unix PATH] [--ready-file PATH]

Defaults: --docker-sock /run/hull/docker.sock, --settings /run/hull/settings.json,
--sockets-dir /run/hull/sockets, --audit-log /run/hull/log/audit.jsonl,
--vsock-port 2375, --ready-file /run/hull/gate.ready.
--listen-unix serves plain HTTP on a unix socket instead of vsock (add
--vsock-port to serve both).";

/// Command-line options (few enough not to need a parser).
fn parse_args() -> Result<Options> {
    let mut config = Config::default();
    let mut vsock_port = None;
    let mut listen_unix = None;
    let mut ready_file = PathBuf::from("/run/hull/gate.ready");
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--docker-sock" => config.docker_sock = val()?.into(),
            "--settings" => config.settings = val()?.into(),
            "--sockets-dir" => config.sockets_dir = val()?.into(),
            "--audit-log" => config.audit_log = val()?.into(),
            "--vsock-port" => {
                vsock_port = Some(val()?.parse().context("--vsock-port")?);
            }
            "--listen-unix" => listen_unix = Some(PathBuf::from(val()?)),
            "--ready-file" => ready_file = val()?.into(),
            "--version" => {
                println!("hull-gate {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if listen_unix.is_none() && vsock_port.is_none() {
        vsock_port = Some(hull_channel::DOCKER_PORT);
    }
    Ok(Options {
        config,
        vsock_port,
        listen_unix,
        ready_file: Some(ready_file),
    })
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HULL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The gate holds the admin's settings and passes every request's
    // registry credentials (X-Registry-Auth): no core dump of it is ever
    // written, and no process of its uid may ptrace it.
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    let opts = parse_args()?;
    // One thread: under TCG a wake-up across vCPUs (an emulated IPI) costs
    // more than the proxy's own work, and one core is plenty for the API.
    // Nothing on it may block: disk and filesystem work goes to
    // spawn_blocking or the audit thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(hull_gate::run(opts))?;
    Ok(())
}
