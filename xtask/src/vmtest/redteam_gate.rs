//! Red-team routes at the engine door (issue 12): what the gate must read
//! the way the engine reads it, and what it must pin or refuse. Every
//! scenario drives the VM as a user would: the `docker` CLI, or raw HTTP
//! on `$HULL_HOME/docker.sock` (the host's hull socket).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::escapes::{baseline, unchanged};
use super::vm::Vm;

/// Every x86_64 syscall name (from the kernel's `asm/unistd_64.h`): a
/// profile allowing all of them is `unconfined` by another name.
const EVERY_SYSCALL: &str = "
    read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction 
    rt_sigprocmask rt_sigreturn ioctl pread64 pwrite64 readv writev access pipe select 
    sched_yield mremap msync mincore madvise shmget shmat shmctl dup dup2 pause nanosleep 
    getitimer alarm setitimer getpid sendfile socket connect accept sendto recvfrom sendmsg 
    recvmsg shutdown bind listen getsockname getpeername socketpair setsockopt getsockopt 
    clone fork vfork execve exit wait4 kill uname semget semop semctl shmdt msgget msgsnd 
    msgrcv msgctl fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir 
    fchdir rename mkdir rmdir creat link unlink symlink readlink chmod fchmod chown fchown 
    lchown umask gettimeofday getrlimit getrusage sysinfo times ptrace getuid syslog getgid 
    setuid setgid geteuid getegid setpgid getppid getpgrp setsid setreuid setregid 
    getgroups setgroups setresuid getresuid setresgid getresgid getpgid setfsuid setfsgid 
    getsid capget capset rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_sigsuspend 
    sigaltstack utime mknod uselib personality ustat statfs fstatfs sysfs getpriority 
    setpriority sched_setparam sched_getparam sched_setscheduler sched_getscheduler 
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval mlock munlock 
    mlockall munlockall vhangup modify_ldt pivot_root _sysctl prctl arch_prctl adjtimex 
    setrlimit chroot sync acct settimeofday mount umount2 swapon swapoff reboot sethostname 
    setdomainname iopl ioperm create_module init_module delete_module get_kernel_syms 
    query_module quotactl nfsservctl getpmsg putpmsg afs_syscall tuxcall security gettid 
    readahead setxattr lsetxattr fsetxattr getxattr lgetxattr fgetxattr listxattr 
    llistxattr flistxattr removexattr lremovexattr fremovexattr tkill time futex 
    sched_setaffinity sched_getaffinity set_thread_area io_setup io_destroy io_getevents 
    io_submit io_cancel get_thread_area lookup_dcookie epoll_create epoll_ctl_old 
    epoll_wait_old remap_file_pages getdents64 set_tid_address restart_syscall semtimedop 
    fadvise64 timer_create timer_settime timer_gettime timer_getoverrun timer_delete 
    clock_settime clock_gettime clock_getres clock_nanosleep exit_group epoll_wait 
    epoll_ctl tgkill utimes vserver mbind set_mempolicy get_mempolicy mq_open mq_unlink 
    mq_timedsend mq_timedreceive mq_notify mq_getsetattr kexec_load waitid add_key 
    request_key keyctl ioprio_set ioprio_get inotify_init inotify_add_watch 
    inotify_rm_watch migrate_pages openat mkdirat mknodat fchownat futimesat newfstatat 
    unlinkat renameat linkat symlinkat readlinkat fchmodat faccessat pselect6 ppoll unshare 
    set_robust_list get_robust_list splice tee sync_file_range vmsplice move_pages 
    utimensat epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime 
    timerfd_gettime accept4 signalfd4 eventfd2 epoll_create1 dup3 pipe2 inotify_init1 
    preadv pwritev rt_tgsigqueueinfo perf_event_open recvmmsg fanotify_init fanotify_mark 
    prlimit64 name_to_handle_at open_by_handle_at clock_adjtime syncfs sendmmsg setns 
    getcpu process_vm_readv process_vm_writev kcmp finit_module sched_setattr sched_getattr 
    renameat2 seccomp getrandom memfd_create kexec_file_load bpf execveat userfaultfd 
    membarrier mlock2 copy_file_range preadv2 pwritev2 pkey_mprotect pkey_alloc pkey_free 
    statx io_pgetevents rseq pidfd_send_signal io_uring_setup io_uring_enter 
    io_uring_register open_tree move_mount fsopen fsconfig fsmount fspick pidfd_open clone3 
    close_range openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2 mount_setattr 
    quotactl_fd landlock_create_ruleset landlock_add_rule landlock_restrict_self 
    memfd_secret process_mrelease futex_waitv set_mempolicy_home_node";

/// One HTTP answer: status and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.head.lines().next().unwrap_or(""),
            self.body.trim()
        )
    }
}

fn read_head(s: &mut UnixStream) -> Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(head.len() < 65536, "an endless response head");
        if s.read(&mut b).context("reading the response head")? == 0 {
            bail!(
                "the connection closed before a response head: {:?}",
                String::from_utf8_lossy(&head)
            );
        }
        head.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn status_of(head: &str) -> Result<u16> {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))
}

/// Reads the body of a response whose head is `head` (Content-Length, or
/// until the connection closes).
fn read_body(s: &mut UnixStream, head: &str) -> Result<String> {
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            s.read_exact(&mut body)
                .context("reading the response body")?;
        }
        None => {
            s.read_to_end(&mut body)?;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn connect(vm: &Vm) -> Result<UnixStream> {
    let path = vm.home.join("docker.sock");
    let s = UnixStream::connect(&path).with_context(|| format!("connecting {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    Ok(s)
}

/// One raw request on the host's hull socket (`Connection: close`).
fn http(vm: &Vm, method: &str, target: &str, content_type: &str, body: &[u8]) -> Result<Answer> {
    let mut s = connect(vm)?;
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let head = read_head(&mut s)?;
    let body = read_body(&mut s, &head)?;
    Ok(Answer {
        status: status_of(&head)?,
        head,
        body,
    })
}

/// `POST /hull/v1/forward?port=<port>` on the host's hull socket, as the
/// host CLI's port forwarder sends it. On `101`, `send` goes through the
/// tunnel and the answer's first bytes come back as the body.
fn forward(vm: &Vm, port: u16, send: &[u8]) -> Result<Answer> {
    let mut s = connect(vm)?;
    write!(
        s,
        "POST /hull/v1/forward?port={port} HTTP/1.1\r\nHost: hull\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    )?;
    let head = read_head(&mut s)?;
    let status = status_of(&head)?;
    let body = if status == 101 {
        s.write_all(send)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        String::from_utf8_lossy(&out).into_owned()
    } else {
        read_body(&mut s, &head)?
    };
    Ok(Answer { status, head, body })
}

/// The message of a Docker JSON error body.
fn message(a: &Answer) -> String {
    serde_json::from_str::<Value>(&a.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| a.body.clone())
}

/// Requires a refusal with `status` whose message contains `needle`. A
/// container the engine created anyway is removed.
fn refused(vm: &Vm, a: &Answer, status: u16, needle: &str, what: &str) -> Result<()> {
    if a.status == 201 {
        if let Some(id) = serde_json::from_str::<Value>(&a.body)
            .ok()
            .and_then(|v| v["Id"].as_str().map(str::to_string))
        {
            let _ = vm.docker(&["rm", "-f", &id]);
        }
    }
    ensure!(
        a.status == status && message(a).contains(needle),
        "{what}: expected {status} with {needle:?}; got {a}"
    );
    Ok(())
}

fn full_id(vm: &Vm, name: &str) -> Result<String> {
    let id = vm
        .docker(&["inspect", "-f", "{{.Id}}", name])?
        .success()?
        .out()
        .to_string();
    ensure!(id.len() == 64, "odd container id {id:?}");
    Ok(id)
}

/// A create body for busybox with `host_config`.
fn create_body(host_config: Value) -> Vec<u8> {
    serde_json::json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config})
        .to_string()
        .into_bytes()
}

/// attacks.md #28: seccomp profiles read the way the engine reads them
/// (Go's encoding/json: keys matched ignoring case, the last of duplicates
/// wins), and profiles that allow everything refused like `unconfined`.
pub fn seccomp_profiles(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let dir = super::boot::tempdir()?;
    let names: Vec<String> = EVERY_SYSCALL
        .split_whitespace()
        .map(|n| format!("\"{n}\""))
        .collect();
    let every = format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
        names.join(",")
    );
    let cased = r#"must be spelt \"defaultAction\""#;
    let cases: [(&str, String, u16, &str); 5] = [
        (
            "cased",
            r#"{"DefaultAction":"SCMP_ACT_ALLOW"}"#.into(),
            400,
            cased,
        ),
        (
            "dup-cased",
            r#"{"defaultAction":"SCMP_ACT_ERRNO","DEFAULTACTION":"SCMP_ACT_ALLOW"}"#.into(),
            400,
            r#"must be spelt \"defaultAction\""#,
        ),
        (
            "dup-exact",
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultAction":"SCMP_ACT_ALLOW"}"#.into(),
            400,
            "duplicate key",
        ),
        (
            "cased-rules",
            r#"{"defaultAction":"SCMP_ACT_ERRNO","Syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW"}]}"#.into(),
            400,
            r#"must be spelt \"syscalls\""#,
        ),
        ("every-syscall", every, 403, "hull: seccomp can't be disabled"),
    ];
    let mut problems = Vec::new();
    for (name, profile, status, needle) in &cases {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, profile)?;
        let opt = format!("seccomp={}", file.display());
        // Through the CLI (it reads the file and sends it compacted).
        let r = vm.docker(&[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "echo",
            "RAN",
        ])?;
        let needle_cli = needle.replace("\\\"", "\"");
        if r.ok() || !r.stderr.contains(&needle_cli) {
            problems.push(format!(
                "{name}: docker run was not refused with {needle_cli:?}: {r}"
            ));
            continue;
        }
        // Raw: the very profile text, status checked.
        let a = http(
            vm,
            "POST",
            "/v1.43/containers/create",
            "application/json",
            &create_body(serde_json::json!({"SecurityOpt": [format!("seccomp={profile}")]})),
        )?;
        if let Err(e) = refused(vm, &a, *status, &needle_cli, name) {
            problems.push(e.to_string());
        }
    }
    // A narrow profile is accepted by the gate and the engine (the runtime
    // adds its own deny list on top of any profile).
    let narrow = dir.join("narrow.json");
    std::fs::write(
        &narrow,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )?;
    let opt = format!("seccomp={}", narrow.display());
    let r = vm.docker(&["create", "--security-opt", &opt, "busybox", "true"])?;
    let _ = std::fs::remove_dir_all(&dir);
    let id = r
        .success()
        .context("a narrow seccomp profile was refused")?;
    vm.docker(&["rm", id.out()])?.success()?;
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    unchanged(vm, &b)
}

/// Waits until `port` (published by a container) answers through forward.
fn forward_until(vm: &Vm, port: u16, want: &str) -> Result<Answer> {
    let start = Instant::now();
    loop {
        let a = forward(vm, port, b"GET / HTTP/1.0\r\n\r\n")?;
        if a.status == 101 && a.body.contains(want) {
            return Ok(a);
        }
        if start.elapsed() > Duration::from_secs(90) {
            bail!("published port {port} did not answer through forward: {a}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `/hull/v1/forward` reaches only ports a container publishes, never any
/// other loopback port of the VM (one that nothing publishes, nor one a
/// VM process really listens on).
pub fn forward_published_only(vm: &Vm) -> Result<()> {
    const PUBLISHED: u16 = 28080;
    const UNPUBLISHED: u16 = 28081;
    const LISTENER: u16 = 28082;
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "rtg-web",
        "-p",
        "28080:80",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-rtg > /www/index.html && httpd -f -p 80 -h /www",
    ])?
    .success()?;
    let result = (|| -> Result<()> {
        // The attempt happens: a published port answers through forward.
        forward_until(vm, PUBLISHED, "hello-rtg")?;
        let a = forward(vm, UNPUBLISHED, b"")?;
        refused(
            vm,
            &a,
            403,
            "is not published by any container",
            "an unpublished port",
        )?;
        // A VM process really listening on loopback (init's test listener).
        let v = hull_qemu::control::request(
            &vm.home.join("vsock.sock"),
            &serde_json::json!({"op": "loopback-listen", "port": LISTENER, "seconds": 20}),
        )?;
        ensure!(
            v["listening"] == LISTENER,
            "init's loopback test listener is missing: {v}"
        );
        let a = forward(vm, LISTENER, b"")?;
        ensure!(
            !a.body.contains("hull-listener"),
            "forward reached a VM loopback listener nothing publishes: {a}"
        );
        refused(
            vm,
            &a,
            403,
            "is not published by any container",
            "a VM listener's port",
        )?;
        // The listener was there all along: it answers its own probe.
        let v = hull_qemu::control::request(
            &vm.home.join("vsock.sock"),
            &serde_json::json!({"op": "loopback-listen", "port": LISTENER, "seconds": 20}),
        )?;
        ensure!(
            v["error"].as_str().is_some_and(|e| e.contains("in use")),
            "the test listener on {LISTENER} was not held: {v}"
        );
        // It closes by itself unanswered; wait for that, so the VM is left
        // with no listener of ours (`escape/24-vm-surface` counts them).
        let gone = format!("tcp {LISTENER}");
        let start = Instant::now();
        loop {
            ensure!(
                start.elapsed() < Duration::from_secs(180),
                "init's test listener on {LISTENER} never closed"
            );
            let v = hull_qemu::control::request(
                &vm.home.join("vsock.sock"),
                &serde_json::json!({"op": "listening"}),
            )?;
            let list = v["listening"].as_array().cloned().unwrap_or_default();
            if !list.iter().any(|l| l == gone.as_str()) {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        Ok(())
    })();
    vm.docker(&["rm", "-f", "rtg-web"])?.success()?;
    result
}

/// The classic builder's `cgroupparent` and `networkmode=container:<id>`.
pub fn build_leftovers(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&[
        "create",
        "--name",
        "rtg-build-peer",
        "busybox",
        "sleep",
        "600",
    ])?
    .success()?;
    let dir = super::boot::tempdir()?;
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN echo built-rtg\n")?;
    let ctx = dir.display().to_string();
    let mut problems = Vec::new();
    for (flag, needle) in [
        (
            "--cgroup-parent=/",
            "hull: docker build --cgroup-parent is not allowed",
        ),
        (
            "--cgroup-parent=/hull",
            "hull: docker build --cgroup-parent is not allowed",
        ),
        (
            "--network=container:rtg-build-peer",
            "hull: docker build --network=container:<id> is not allowed",
        ),
    ] {
        let r = vm.sh(&format!(
            "DOCKER_BUILDKIT=0 docker build --no-cache {flag} {ctx} 2>&1"
        ))?;
        if r.ok() || !r.stdout.contains(needle) {
            problems.push(format!("build {flag}: not refused with {needle:?}: {r}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    for (q, needle) in [
        ("cgroupparent=%2F", "--cgroup-parent"),
        (
            "networkmode=container%3Artg-build-peer",
            "--network=container:",
        ),
    ] {
        let a = http(
            vm,
            "POST",
            &format!("/v1.43/build?{q}"),
            "application/x-tar",
            b"",
        )?;
        if let Err(e) = refused(vm, &a, 403, needle, q) {
            problems.push(e.to_string());
        }
    }
    vm.docker(&["rm", "-f", "rtg-build-peer"])?.success()?;
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    unchanged(vm, &b)
}

/// `HostConfig.CgroupParent` stays under the engine's container slice
/// (`/docker`), outside other containers' cgroups.
pub fn cgroup_parent(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "rtg-cg-peer",
        "busybox",
        "sleep",
        "600",
    ])?
    .success()?;
    let peer = full_id(vm, "rtg-cg-peer")?;
    let mut problems = Vec::new();
    for cp in [
        "/".to_string(),
        "/hull".into(),
        "init.scope".into(),
        "/docker/../hull".into(),
        "/docker/./../x".into(),
        format!("/docker/{peer}"),
    ] {
        let r = vm.docker(&["create", "--cgroup-parent", &cp, "busybox", "true"])?;
        if r.ok() || !r.stderr.contains("hull: --cgroup-parent") {
            problems.push(format!("--cgroup-parent {cp}: not refused: {r}"));
            if r.ok() {
                let _ = vm.docker(&["rm", r.out()]);
            }
        }
        let a = http(
            vm,
            "POST",
            "/v1.43/containers/create",
            "application/json",
            &create_body(serde_json::json!({"CgroupParent": cp})),
        )?;
        if let Err(e) = refused(vm, &a, 403, "hull: --cgroup-parent", &cp) {
            problems.push(e.to_string());
        }
    }
    // Under /docker, a group of one's own works.
    let r = vm.docker(&[
        "run",
        "--rm",
        "--cgroup-parent",
        "/docker/rtg-group",
        "busybox",
        "echo",
        "grouped",
    ])?;
    if !(r.ok() && r.out() == "grouped") {
        problems.push(format!("--cgroup-parent /docker/rtg-group refused: {r}"));
    }
    vm.docker(&["rm", "-f", "rtg-cg-peer"])?.success()?;
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    unchanged(vm, &b)
}

/// `--volumes-from`, `--network/--pid/--ipc container:<name>` are pinned to
/// the id of the container the gate checked: a rename and a new container
/// under the old name afterwards cannot be swapped in.
pub fn joins_pinned(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&[
        "create",
        "--name",
        "rtg-target",
        "--ipc",
        "shareable",
        "-v",
        "/data",
        "busybox",
        "sleep",
        "600",
    ])?
    .success()?;
    let target = full_id(vm, "rtg-target")?;
    let result = (|| -> Result<()> {
        let r = vm.docker(&[
            "create",
            "--name",
            "rtg-joiner",
            "--network",
            "container:rtg-target",
            "--pid",
            "container:rtg-target",
            "--ipc",
            "container:rtg-target",
            "--volumes-from",
            "rtg-target:ro",
            "busybox",
            "true",
        ])?;
        r.success().context("the join was refused")?;
        let got = vm
            .docker(&[
                "inspect",
                "-f",
                "{{.HostConfig.NetworkMode}} {{.HostConfig.PidMode}} {{.HostConfig.IpcMode}} {{json .HostConfig.VolumesFrom}}",
                "rtg-joiner",
            ])?
            .success()?;
        let want =
            format!("container:{target} container:{target} container:{target} [\"{target}:ro\"]");
        ensure!(
            got.out() == want,
            "the joins were not pinned to the checked container {target}:\n  stored: {}\n  wanted: {want}",
            got.out()
        );
        // Rename and recreate: the joiner still names the checked one.
        vm.docker(&["rename", "rtg-target", "rtg-target-old"])?
            .success()?;
        vm.docker(&["create", "--name", "rtg-target", "busybox", "true"])?
            .success()?;
        let got2 = vm
            .docker(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", "rtg-joiner"])?
            .success()?;
        ensure!(
            got2.out() == format!("container:{target}"),
            "after the swap the joiner names {}",
            got2.out()
        );
        // A container that does not exist is not left for the engine to
        // resolve later.
        let r = vm.docker(&[
            "create",
            "--network",
            "container:rtg-missing",
            "busybox",
            "true",
        ])?;
        r.failure_with("hull: no such container: rtg-missing")?;
        Ok(())
    })();
    for c in ["rtg-joiner", "rtg-target", "rtg-target-old"] {
        let _ = vm.docker(&["rm", "-f", c]);
    }
    result?;
    unchanged(vm, &b)
}
