//! hull-runtime: the CLI edge. Parses runc's command line, sets up logging the
//! way the shim reads it, and maps library errors to exit codes.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use hull_runtime::cli::{Cli, Command, LogFormat};
use hull_runtime::commands as cmd;
use hull_runtime::config::RuntimeConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    hull_runtime::logging::init(
        cli.global.log.as_deref(),
        cli.global.log_format == LogFormat::Json,
        cli.global.debug,
    );
    // CVE-2019-5736: while the runtime sits in (or next to) a container's
    // namespaces, nothing there may open /proc/<our pid>/exe or ptrace us.
    if let Err(e) = hull_runtime::sys::set_dumpable(false) {
        tracing::error!("prctl(PR_SET_DUMPABLE): {e}");
        return ExitCode::FAILURE;
    }
    tracing::debug!(stage = "process started", "hull-runtime");
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    if cli.global.systemd_cgroup {
        bail!("--systemd-cgroup is not supported by hull-runtime: configure the engine with the cgroupfs driver (native.cgroupdriver=cgroupfs)");
    }
    let cfg = RuntimeConfig::from_opts(&cli.global);
    match cli.command {
        Command::Create(a) => {
            cmd::create::create(&cfg, &a)?;
        }
        Command::Start { id } => cmd::start::start(&cfg, &id)?,
        Command::State { id } => println!("{}", cmd::info::state(&cfg, &id)?),
        Command::Kill(a) => cmd::kill::kill(&cfg, &a.id, &a.signal, a.all)?,
        Command::Delete(a) => cmd::delete::delete(&cfg, &a.id, a.force)?,
        Command::Exec(a) => {
            let out = cmd::exec::exec(&cfg, &a)?;
            if let Some(c) = out.code {
                return Ok(c.clamp(0, 255) as u8);
            }
        }
        Command::Ps(a) => println!("{}", cmd::ps::ps(&cfg, &a.id, &a.format)?),
        Command::Pause { id } => cmd::pause::set_paused(&cfg, &id, true)?,
        Command::Resume { id } => cmd::pause::set_paused(&cfg, &id, false)?,
        Command::Update(a) => cmd::update::update(&cfg, &a)?,
        Command::Features => println!("{}", cmd::features::features()),
        Command::Run(a) => return Ok(cmd::run::run(&cfg, &a)?.clamp(0, 255) as u8),
        Command::List => print!("{}", cmd::info::list(&cfg)?),
    }
    Ok(0)
}
