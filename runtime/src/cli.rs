//! The command line, shaped like runc's so containerd-shim-runc-v2 (and anything
//! else that shells out to "runc") can drive hull-runtime unchanged. Flags runc
//! accepts but hull ignores are still accepted, so a caller never fails on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
// The version text has runc's shape ("<name> version X", "commit:", "spec:"),
// which dockerd parses for `docker info`.
#[command(
    name = "hull-runtime",
    version = concat!("version ", env!("CARGO_PKG_VERSION"), "\ncommit: hull\nspec: 1.1.0"),
    about = "hull's hardened OCI runtime (runc-compatible CLI)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Directory for container state (runc's --root).
    #[arg(long, global = true, default_value = "/run/hull-runtime")]
    pub root: PathBuf,
    /// Log file (the shim reads errors from it).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: LogFormat,
    /// Refused: hull manages cgroups itself (cgroupfs layout on cgroup v2).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Accepted for runc compatibility; ignored (hull always uses its own user namespaces).
    #[arg(long, global = true, hide = true)]
    pub rootless: Option<String>,
    /// How the mount family is handled: `required` (default: trapped and sent to
    /// hull-guard; no guard, no container), `deny` (trapped calls fail with EPERM),
    /// `none` (not trapped: tests of the kernel's own locking only).
    #[arg(long, global = true, env = "HULL_GUARD", default_value = "required")]
    pub guard: GuardMode,
    /// hull-guard's root-only unix socket.
    #[arg(
        long = "guard-socket",
        global = true,
        env = "HULL_GUARD_SOCKET",
        default_value = "/run/hull/guard.sock"
    )]
    pub guard_socket: PathBuf,
    /// hull-guard's procfs emulation (FUSE), bound over /proc files when mounted.
    #[arg(
        long = "guard-procfs",
        global = true,
        env = "HULL_GUARD_PROCFS",
        default_value = "/run/hull/guard/procfs"
    )]
    pub guard_procfs: PathBuf,
    /// Where exclusive id ranges are recorded (flock-protected; survives restarts).
    #[arg(
        long = "idranges-dir",
        global = true,
        env = "HULL_IDRANGES_DIR",
        default_value = "/var/lib/hull/idranges"
    )]
    pub idranges_dir: PathBuf,
    /// A root bind and volume sources must lie under (repeatable; `*` is one
    /// path component). Default: hull-policy's mount roots, the ones hull-gate
    /// enforces. dockerd's own sources (containers/<id>, BuildKit) and the
    /// gate's per-container sockets are always accepted.
    #[arg(
        long = "mount-root",
        global = true,
        env = "HULL_MOUNT_ROOTS",
        value_delimiter = ':'
    )]
    pub mount_roots: Vec<String>,
    /// How many 65536-id ranges may be handed out at once.
    #[arg(long = "idranges-max", global = true, env = "HULL_IDRANGES_MAX", default_value_t = crate::idrange::DEFAULT_MAX_RANGES)]
    pub idranges_max: usize,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardMode {
    Required,
    Deny,
    None,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container; its process waits until `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Print the container's state as JSON (runc's format).
    State { id: String },
    /// Send a signal to the container's init (or all its processes with --all).
    Kill(KillArgs),
    /// Delete a container's resources.
    Delete(DeleteArgs),
    /// Run a new process inside a running container.
    Exec(ExecArgs),
    /// List the container's processes.
    Ps(PsArgs),
    /// Freeze every process of the container (cgroup v2 freezer).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change the container's cgroup resources.
    Update(UpdateArgs),
    /// Print the features this runtime supports (JSON).
    Features,
    /// Create and start a container; wait for it unless --detach.
    Run(RunArgs),
    /// List containers under --root.
    #[command(alias = "ls")]
    List,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    pub id: String,
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Ignored: hull always uses pivot_root (a chroot would leave the VM's root reachable).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many extra fds (from 3 up) to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility; ignored.
    #[arg(long = "notify-socket", hide = true)]
    pub notify_socket: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long = "keep")]
    pub keep: bool,
}

#[derive(Args, Debug, Clone)]
pub struct KillArgs {
    #[arg(short = 'a', long)]
    pub all: bool,
    pub id: String,
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// JSON file with the OCI process to run.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(long)]
    pub cwd: Option<String>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// uid[:gid] inside the container.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(long = "cap")]
    pub caps: Vec<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long = "process-label", hide = true)]
    pub process_label: Option<String>,
    #[arg(long = "apparmor", hide = true)]
    pub apparmor: Option<String>,
    #[arg(long = "cgroup", hide = true)]
    pub cgroup: Option<String>,
    pub id: String,
    /// Command and arguments when --process is not given.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    /// JSON file with OCI LinuxResources ("-" = stdin).
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub memory: Option<i64>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    pub id: String,
}
