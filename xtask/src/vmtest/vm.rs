//! A booted hull VM for one suite, driven only through what a user has: the
//! `hull` CLI, the `docker` CLI and its socket. Always torn down on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The result of one command, with everything needed to explain a failure.
pub struct Run {
    pub shown: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(shown: String, o: Output) -> Run {
        Run {
            shown,
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Fails unless the command exited 0.
    pub fn success(self) -> Result<Run> {
        if !self.ok() {
            bail!("{self}");
        }
        Ok(self)
    }

    /// Fails unless the command failed with `needle` in its output.
    pub fn failure_with(self, needle: &str) -> Result<Run> {
        if self.ok() || !(self.stderr.contains(needle) || self.stdout.contains(needle)) {
            bail!("expected a failure mentioning {needle:?}; got {self}");
        }
        Ok(self)
    }

    pub fn out(&self) -> &str {
        self.stdout.trim()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n  stdout: {}\n  stderr: {}",
            self.shown,
            self.code,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// Every retried `hull up` of this process: (suite: why, outcome).
static RETRIES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The retried `hull up`s so far, for the vm-test summary.
pub fn retries() -> Vec<String> {
    RETRIES.lock().map(|v| v.clone()).unwrap_or_default()
}

pub struct Vm {
    pub home: PathBuf,
    pub hull: PathBuf,
    pub image: PathBuf,
    pub up_args: Vec<String>,
    /// Extra environment for every command (e.g. HULL_ADMIN_SETTINGS).
    pub env: Vec<(String, String)>,
    /// Facts a suite's setup hands its scenarios (e.g. the registry address).
    pub vars: std::collections::BTreeMap<String, String>,
    pub boot_time: Duration,
    /// Run `hull`, `docker` and shells as this (uid, gid), not as root.
    pub as_user: Option<(u32, u32)>,
    /// Run `hull`, `docker` and shells as this login, with its groups
    /// (`setpriv --init-groups`), as a real member of a group would.
    pub login: Option<String>,
    down: bool,
    /// A home this Vm did not make (the system VM's): never removed.
    keep_home: bool,
}

impl Vm {
    /// `hull up` in a fresh home.
    pub fn boot(hull: &Path, image: &Path, up_args: &[&str]) -> Result<Vm> {
        let mut vm = Vm::new(hull, image, up_args)?;
        vm.up()?;
        Ok(vm)
    }

    /// A fresh home, not booted yet (to write settings into it first).
    pub fn new(hull: &Path, image: &Path, up_args: &[&str]) -> Result<Vm> {
        let home = super::boot::tempdir()?.join("home");
        std::fs::create_dir_all(&home)?;
        let mut vm = Vm::attach(hull, image, &home);
        vm.up_args = up_args.iter().map(|s| s.to_string()).collect();
        vm.keep_home = false;
        Ok(vm)
    }

    /// Use `home` (one this Vm did not make, e.g. a user's default
    /// `~/.local/share/hull`) instead of the fresh one; it is not removed.
    pub fn use_home(&mut self, home: &Path) {
        if let Some(parent) = self.home.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
        self.home = home.to_path_buf();
        self.keep_home = true;
    }

    /// A VM somebody else runs (system mode's service), driven through its
    /// home's sockets; dropping it neither stops it nor removes the home.
    pub fn attach(hull: &Path, image: &Path, home: &Path) -> Vm {
        Vm {
            home: home.to_path_buf(),
            hull: hull.to_path_buf(),
            image: image.to_path_buf(),
            up_args: Vec::new(),
            env: Vec::new(),
            vars: Default::default(),
            boot_time: Duration::ZERO,
            as_user: None,
            login: None,
            down: true,
            keep_home: true,
        }
    }

    pub fn var(&self, k: &str) -> Result<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .with_context(|| format!("suite variable {k} is not set"))
    }

    /// `hull up` (again) in this home. A boot whose engine does not answer
    /// is retried once, loudly: under TCG on a loaded machine a boot now and
    /// then never gets its vsock channel going (see the diagnostics printed);
    /// a real regression fails twice.
    pub fn up(&mut self) -> Result<()> {
        let start = Instant::now();
        let mut args = vec![
            "up".to_string(),
            "--image".into(),
            self.image.display().to_string(),
        ];
        if !self.up_args.iter().any(|a| a == "--timeout") {
            // A healthy boot answers in ~10 s, ~60 s on a busy machine.
            args.extend(["--timeout".to_string(), "240".to_string()]);
        }
        args.extend(self.up_args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut r = self.hull_cmd(&args)?;
        self.down = false;
        if !r.ok() {
            eprintln!(
                "[vm-test] WARNING: hull up in {} failed; retrying once after `hull down --force`: {r}\n{}",
                self.home.display(),
                self.diagnostics()
            );
            let _ = self.hull_cmd(&["down", "--force"]);
            let first = r.to_string();
            r = self.hull_cmd(&args)?;
            // For the summary at the end: a retry must not hide in the log.
            let suite = self.vars.get("suite").map_or("?", String::as_str);
            let why: String = first.replace('\n', " ").chars().take(300).collect();
            let outcome = if r.ok() {
                "the retry came up"
            } else {
                "the retry failed too"
            };
            if let Ok(mut v) = RETRIES.lock() {
                v.push(format!(
                    "{suite}: first `hull up` failed ({why}); {outcome}"
                ));
            }
        }
        if !r.ok() {
            bail!("hull up failed twice: {r}\n{}", self.diagnostics());
        }
        self.boot_time = start.elapsed();
        Ok(())
    }

    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.home.join("docker.sock").display())
    }

    fn command(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = match &self.login {
            Some(name) => {
                let mut c = Command::new("setpriv");
                c.args([
                    "--reuid",
                    name,
                    "--regid",
                    name,
                    "--init-groups",
                    "--",
                    prog,
                ]);
                c
            }
            None => Command::new(prog),
        };
        c.args(args)
            .env("HULL_HOME", &self.home)
            .env("DOCKER_HOST", self.docker_host())
            // Keep the user's docker config (contexts, auths) out of the tests.
            .env("DOCKER_CONFIG", self.home.join("docker-config"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.as_user {
            use std::os::unix::process::CommandExt;
            // std drops root's supplementary groups when it sets the ids.
            c.uid(uid).gid(gid).env("HOME", &self.home);
        }
        c
    }

    /// From now on, drive this VM as the unprivileged `uid:gid`: its home
    /// (and the folder around it) becomes theirs.
    pub fn become_user(&mut self, uid: u32, gid: u32) -> Result<()> {
        for dir in [self.home.parent(), Some(self.home.as_path())]
            .into_iter()
            .flatten()
        {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", dir.display()))?;
        }
        self.as_user = Some((uid, gid));
        Ok(())
    }

    fn finish(&self, mut c: Command, shown: String, timeout: Duration) -> Result<Run> {
        let child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {shown}"))?;
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(timeout) {
            Ok(o) => Ok(Run::from(shown, o?)),
            Err(_) => {
                // SAFETY: kill(2) on the pid of the child we started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                bail!("`{shown}` did not finish within {timeout:?}")
            }
        }
    }

    pub fn hull_cmd(&self, args: &[&str]) -> Result<Run> {
        let c = self.command(&self.hull.display().to_string(), args);
        self.finish(
            c,
            format!("hull {}", args.join(" ")),
            Duration::from_secs(900),
        )
    }

    /// `docker <args>` against this VM.
    pub fn docker(&self, args: &[&str]) -> Result<Run> {
        self.docker_timeout(args, Duration::from_secs(300))
    }

    pub fn docker_timeout(&self, args: &[&str], timeout: Duration) -> Result<Run> {
        let c = self.command("docker", args);
        self.finish(c, format!("docker {}", args.join(" ")), timeout)
    }

    /// `docker <args>` with `input` on stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Result<Run> {
        use std::io::Write;
        let mut c = self.command("docker", args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn()?;
        if let Some(mut si) = child.stdin.take() {
            si.write_all(input)?;
        }
        let o = child.wait_with_output()?;
        Ok(Run::from(format!("docker {} < input", args.join(" ")), o))
    }

    /// A shell pipeline with DOCKER_HOST and HULL_HOME set (for ptys, curl, pipes).
    pub fn sh(&self, script: &str) -> Result<Run> {
        let c = self.command("bash", &["-c", script]);
        self.finish(c, format!("bash -c {script:?}"), Duration::from_secs(300))
    }

    /// init's status, as `hull status --json` reports it.
    pub fn status(&self) -> Result<serde_json::Value> {
        let r = self.hull_cmd(&["status", "--json"])?.success()?;
        Ok(serde_json::from_str(&r.stdout)?)
    }

    /// The logs worth reading when a scenario fails.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for name in ["dockerd", "hull-gate", "hull-guard", "containerd", "init"] {
            if let Ok(r) = self.hull_cmd(&["logs", name]) {
                let lines: Vec<&str> = r.stdout.lines().collect();
                let tail = lines[lines.len().saturating_sub(25)..].join("\n    ");
                out.push_str(&format!("\n  --- hull logs {name} (tail) ---\n    {tail}"));
            }
        }
        let console = std::fs::read_to_string(self.home.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = console.lines().collect();
        out.push_str(&format!(
            "\n  --- console (tail) ---\n    {}",
            lines[lines.len().saturating_sub(40)..].join("\n    ")
        ));
        let daemon = std::fs::read_to_string(self.home.join("hull.log")).unwrap_or_default();
        let lines: Vec<&str> = daemon.lines().collect();
        let head = lines.len().min(25);
        out.push_str(&format!(
            "\n  --- hull.log (head) ---\n    {}",
            lines[..head].join("\n    ")
        ));
        out.push_str(&format!(
            "\n  --- hull.log (tail) ---\n    {}",
            lines[lines.len().saturating_sub(15).max(head)..].join("\n    ")
        ));
        out.push_str(&self.processes());
        out
    }

    /// Whether QEMU and the vsock backend still run, and where they sleep.
    fn processes(&self) -> String {
        let Ok(text) = std::fs::read_to_string(self.home.join("state.json")) else {
            return String::new();
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let mut out = String::from("\n  --- processes ---");
        for key in ["qemu_pid", "vhost_pid", "daemon_pid"] {
            let pid = v[key].as_u64().unwrap_or(0);
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 3 is the state; the name may hold spaces, so split after ')'.
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|d| d.count())
                .unwrap_or(0);
            out.push_str(&format!(
                "\n    {key} {pid}: state {} wchan {wchan} threads {threads}",
                state.unwrap_or("gone")
            ));
        }
        out
    }

    /// `hull down`, falling back to `--force`.
    pub fn down(&mut self) -> Result<Run> {
        self.down = true;
        let r = self.hull_cmd(&["down"])?;
        if !r.ok() {
            let _ = self.hull_cmd(&["down", "--force"]);
        }
        Ok(r)
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.down();
        }
        if !self.keep_home && std::env::var_os("HULL_KEEP_TEST_HOME").is_none() {
            if let Some(parent) = self.home.parent() {
                let _ = std::fs::remove_dir_all(parent);
            }
        }
    }
}
