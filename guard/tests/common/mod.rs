//! Shared helpers for the guard's host-tier tests (the same as
//! hull-runtime's, whose binary they drive): a busybox bundle, a runtime
//! invocation with per-test state, a real guard, and a root check.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// hull-runtime, which starts the containers the guard vets.
pub static BIN: std::sync::LazyLock<PathBuf> =
    std::sync::LazyLock::new(|| workspace_bin("hull-runtime", "hull-runtime"));

/// A binary of another package of this workspace: cargo hands tests only
/// their own package's binaries (`CARGO_BIN_EXE_*`), and hull-runtime and
/// hull-guard are separate packages. Built once per test process by cargo,
/// in this test's profile and target directory; a failed build fails the
/// test, naming the command.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .to_path_buf();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == bin) {
        let cargo = std::env::var("CARGO")
            .ok()
            .or(option_env!("CARGO").map(String::from))
            .unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let mut c = Command::new(&cargo);
        c.args([
            "build",
            "-q",
            "-p",
            package,
            "--bin",
            bin,
            "--manifest-path",
        ])
        .arg(&manifest);
        if dir.file_name() == Some("release".as_ref()) {
            c.arg("--release");
        }
        let st = c.status().expect("run cargo");
        assert!(
            st.success(),
            "`{cargo} build -p {package} --bin {bin}` failed: the test needs {bin}"
        );
        built.push(bin.to_string());
    }
    dir.join(bin)
}

/// Host-tier tests need root (namespaces, mounts, cgroups) and a static
/// busybox for their bundles. Without either the test FAILS naming what is
/// missing: a test that passes without running proves nothing.
pub fn host_tier(test: &str) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("{test}: host-tier test needs root (run it as root, e.g. `sudo cargo test`, or `cargo xtask test`)");
    }
    require_file(test, "/bin/busybox", "busybox-static");
}

/// Fails the test unless `path` exists, naming the Debian package that provides it.
pub fn require_file(test: &str, path: &str, package: &str) {
    if !Path::new(path).exists() {
        panic!("{test}: {path} is missing (Debian package {package}); run `cargo xtask deps`");
    }
}

/// The first `name` on PATH; fails the test, naming the Debian package, if none.
pub fn require_on_path(test: &str, name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{test}: `{name}` is not on PATH (Debian package {package}); run `cargo xtask deps`")
        })
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub guard: &'static str,
    /// A real hull-guard's socket and procfs (see `Guard`).
    pub guard_socket: Option<PathBuf>,
    pub guard_procfs: Option<PathBuf>,
    pub max_ranges: Option<usize>,
    pub ids: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("hullrt")
            .tempdir()
            .expect("tempdir");
        let ids = dir.path().join("ids");
        Env {
            dir,
            guard: "none",
            guard_socket: None,
            guard_procfs: None,
            max_ranges: None,
            ids,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&*BIN);
        c.arg("--root").arg(self.root());
        c.env("HULL_GUARD", self.guard);
        c.env("HULL_IDRANGES_DIR", &self.ids);
        // Bind sources of the tests live in the test's own folder (the
        // runtime refuses binds outside its mount roots).
        c.env(
            "HULL_MOUNT_ROOTS",
            std::fs::canonicalize(self.dir.path()).expect("canonical test folder"),
        );
        c.env_remove("HULL_GUARD_SOCKET");
        if let Some(s) = &self.guard_socket {
            c.env("HULL_GUARD_SOCKET", s);
        }
        match &self.guard_procfs {
            Some(p) => c.env("HULL_GUARD_PROCFS", p),
            None => c.env("HULL_GUARD_PROCFS", self.dir.path().join("no-procfs")),
        };
        if let Some(m) = self.max_ranges {
            c.env("HULL_IDRANGES_MAX", m.to_string());
        }
        c.args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_cmd(self.cmd(args), self.dir.path())
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "hull-runtime {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }

    /// A busybox rootfs shared by this env's bundles.
    pub fn rootfs(&self) -> PathBuf {
        let r = self.dir.path().join("rootfs");
        if r.exists() {
            return r;
        }
        make_rootfs(&r);
        r
    }

    /// A bundle directory with `config` as config.json and `rootfs` next to it
    /// (a real directory copy unless `config` says otherwise).
    pub fn bundle(&self, name: &str, config: &Value) -> PathBuf {
        let b = self.dir.path().join(name);
        std::fs::create_dir_all(&b).unwrap();
        let rootfs = self.rootfs();
        let link = b.join("rootfs");
        if !link.exists() && config["root"]["path"] == "rootfs" {
            // A bind-free copy is slow; a hard-linked tree is enough here.
            let st = Command::new("cp")
                .arg("-al")
                .arg(&rootfs)
                .arg(&link)
                .status()
                .unwrap();
            assert!(st.success());
        }
        std::fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
        b
    }
}

pub fn make_rootfs(r: &Path) {
    for d in [
        "bin", "proc", "sys", "dev", "etc", "tmp", "root", "mnt", "data",
    ] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for app in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", r.join("bin").join(app));
    }
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\ntty:x:5:\n").unwrap();
}

pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub fn all_caps() -> Vec<String> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    caps::all()
        .into_iter()
        .filter(|c| c.index() as u32 <= last)
        .map(|c| c.to_string())
        .collect()
}

/// A seccomp profile in Docker's shape: deny by default, allow a list, with
/// the mount family allowed only because the container has CAP_SYS_ADMIN.
pub fn docker_like_seccomp(mount_family: bool) -> Value {
    let mut allow: Vec<&str> = vec![
        "read",
        "write",
        "open",
        "openat",
        "openat2",
        "close",
        "stat",
        "fstat",
        "lstat",
        "newfstatat",
        "statx",
        "poll",
        "lseek",
        "mmap",
        "mprotect",
        "munmap",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "pread64",
        "pwrite64",
        "readv",
        "writev",
        "access",
        "faccessat",
        "faccessat2",
        "pipe",
        "pipe2",
        "select",
        "sched_yield",
        "mremap",
        "dup",
        "dup2",
        "dup3",
        "nanosleep",
        // Docker's profile has it: a sleep interrupted by the freezer resumes through it.
        "restart_syscall",
        "clock_nanosleep",
        "getpid",
        "getppid",
        "socket",
        "connect",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "bind",
        "listen",
        "accept",
        "accept4",
        "socketpair",
        "clone",
        "clone3",
        "fork",
        "vfork",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "wait4",
        "kill",
        "uname",
        "fcntl",
        "getdents64",
        "getcwd",
        "chdir",
        "fchdir",
        "rename",
        "renameat",
        "renameat2",
        "mkdir",
        "mkdirat",
        "rmdir",
        "unlink",
        "unlinkat",
        "symlink",
        "symlinkat",
        "readlink",
        "readlinkat",
        "chmod",
        "fchmod",
        "fchmodat",
        "chown",
        "fchown",
        "fchownat",
        "lchown",
        "umask",
        "gettimeofday",
        "getrlimit",
        "prlimit64",
        "getuid",
        "getgid",
        "geteuid",
        "getegid",
        "setuid",
        "setgid",
        "setresuid",
        "setresgid",
        "getresuid",
        "getresgid",
        "setgroups",
        "getgroups",
        "capget",
        "capset",
        "prctl",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "futex",
        "rseq",
        "getrandom",
        "sysinfo",
        "times",
        "tgkill",
        "tkill",
        "setsid",
        "setpgid",
        "getpgrp",
        "getpgid",
        "getsid",
        "sigaltstack",
        "statfs",
        "fstatfs",
        "clock_gettime",
        "clock_getres",
        "exit",
        "umount2",
        "sethostname",
        "mknod",
        "mknodat",
        "utimensat",
        "getpriority",
        "setpriority",
        "sched_getaffinity",
        "madvise",
        "truncate",
        "ftruncate",
        "fsync",
        "fdatasync",
        "close_range",
        "pidfd_open",
        "epoll_create1",
        "epoll_ctl",
        "epoll_wait",
        "epoll_pwait",
        "getsockopt",
        "setsockopt",
        "getsockname",
        "getpeername",
        "shutdown",
        "link",
        "linkat",
        "ppoll",
        "pselect6",
        "wait4",
        "waitid",
        "sendfile",
        "copy_file_range",
        "membarrier",
        "unshare",
        "personality",
        "sched_getparam",
        "sched_getscheduler",
        "getitimer",
        "setitimer",
        "alarm",
    ];
    if mount_family {
        allow.extend([
            "mount",
            "umount2",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
        ]);
    } else {
        allow.retain(|s| *s != "umount2");
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allow, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
        ]
    })
}

/// A config in the shape Docker writes (namespaces, mounts, masks, caps, seccomp).
pub fn config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "hulltest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            "seccomp": docker_like_seccomp(false)
        }
    })
}

/// Docker's `--privileged` shape: every capability, no seccomp, no masks,
/// every host device listed.
pub fn privileged_config(args: &[&str]) -> Value {
    let mut c = config(args);
    let caps = all_caps();
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    let linux = c["linux"].as_object_mut().unwrap();
    linux.remove("seccomp");
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    linux.insert(
        "devices".into(),
        json!([{"path": "/dev/vda", "type": "b", "major": 254, "minor": 0},
               {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11},
               {"path": "/dev/mem", "type": "c", "major": 1, "minor": 1}]),
    );
    c["mounts"][4]["options"] = json!(["rw", "nosuid", "noexec", "nodev"]);
    c["mounts"][3]["options"] = json!(["rw", "nosuid", "noexec", "nodev"]);
    c
}

/// `run` a bundle to completion; returns (exit ok, stdout, stderr).
pub fn run_to_end(env: &Env, id: &str, bundle: &Path) -> (bool, String, String) {
    let o = env.run(&["run", "-b", bundle.to_str().unwrap(), id]);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Lines "key=value" printed by a check script, as a map.
pub fn kv(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Run to exit with stdout/stderr in files: a container's init inherits the
/// runtime's stdio, so waiting for pipe EOF would wait for the container.
pub fn run_cmd(mut c: Command, dir: &Path) -> Output {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (o, e) = (dir.join(format!("out.{n}")), dir.join(format!("err.{n}")));
    // stdin is an empty file of the test, never the host's /dev/null: crun
    // in a user namespace fchowns its stdio to the container's root, and
    // would hand the machine's /dev/null to an unprivileged id.
    let i = dir.join(format!("in.{n}"));
    std::fs::write(&i, b"").unwrap();
    c.stdin(std::fs::File::open(&i).unwrap());
    c.stdout(std::fs::File::create(&o).unwrap());
    c.stderr(std::fs::File::create(&e).unwrap());
    let status = c.status().expect("spawn hull-runtime");
    Output {
        status,
        stdout: std::fs::read(&o).unwrap_or_default(),
        stderr: std::fs::read(&e).unwrap_or_default(),
    }
}

/// crun 1.8 refuses hybrid cgroup hosts outright. For comparisons, run in a
/// private mount namespace whose /sys/fs/cgroup is the (controller-less) v2
/// hierarchy, so all runtimes see a pure v2 machine; crun then runs with
/// `--cgroup-manager=disabled`.
pub fn pure_v2_view() -> bool {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_err() {
        return false;
    }
    let _ = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    );
    let is_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type().0 == 0x6367_7270)
        .unwrap_or(false);
    if is_v2 {
        return true;
    }
    umount2("/sys/fs/cgroup", MntFlags::MNT_DETACH).is_ok()
        && mount(
            Some("none"),
            "/sys/fs/cgroup",
            Some("cgroup2"),
            MsFlags::empty(),
            None::<&str>,
        )
        .is_ok()
}

pub const GUARD_BIN: &str = env!("CARGO_BIN_EXE_hull-guard");

/// A real hull-guard for one test: its own socket, state, audit log and the
/// env's id-range table. Killed (and its FUSE mount detached) on drop.
pub struct Guard {
    pub child: Option<std::process::Child>,
    pub sock: PathBuf,
    pub state: PathBuf,
    pub audit: PathBuf,
    ids: PathBuf,
    log: PathBuf,
}

impl Guard {
    pub fn start(env: &Env) -> Guard {
        let d = env.dir.path();
        let mut g = Guard {
            child: None,
            sock: d.join("guard.sock"),
            state: d.join("guard-state"),
            audit: d.join("audit.jsonl"),
            ids: env.ids.clone(),
            log: d.join("guard.log"),
        };
        g.spawn();
        g
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(GUARD_BIN)
            .arg("--socket")
            .arg(&self.sock)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--audit-log")
            .arg(&self.audit)
            .arg("--idranges-dir")
            .arg(&self.ids)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn hull-guard");
        self.child = Some(child);
        // Ready when the socket accepts connections.
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("hull-guard did not come up: {}", self.log_text());
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A child the guard was forking when it died holds the listening
        // socket until its exec: without the file, `spawn` waits for the new
        // guard's own socket instead of connecting to that stale one.
        let _ = std::fs::remove_file(&self.sock);
    }

    pub fn procfs(&self) -> PathBuf {
        self.state.join("procfs")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Audit events of one container, once the log has settled (workers
    /// batch their lines and flush after 50 ms of quiet).
    pub fn audit(&self, container: &str) -> Vec<Value> {
        let size = || std::fs::metadata(&self.audit).map(|m| m.len()).unwrap_or(0);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut last = size();
        while std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let now = size();
            if now == last {
                break;
            }
            last = now;
        }
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["container"] == container)
            .collect()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
        // The procfs server outlives guard restarts by design; not the test.
        if let Ok(pid) = std::fs::read_to_string(self.state.join("procfs.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = nix::mount::umount2(&self.procfs(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Compile a static C helper from tests/helpers into `dir`; fails the
/// caller, naming the compiler and its output, when that cannot be done.
pub fn c_helper(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(format!("{name}.c"));
    let out = dir.join(name);
    let o = Command::new("cc")
        .args(["-static", "-O2", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!("no C compiler `cc` for tests/helpers/{name}.c ({e}): Debian packages gcc and libc6-dev; run `cargo xtask deps`")
        });
    assert!(
        o.status.success(),
        "cc -static tests/helpers/{name}.c failed (Debian packages gcc, libc6-dev): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}
