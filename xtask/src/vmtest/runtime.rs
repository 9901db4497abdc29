//! hull-runtime as users see it through `docker` (ECI §1, §2 and the
//! runtime issue's list): every container runs hardened, and ordinary Docker
//! features keep working.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::vm::Vm;

fn run_out(vm: &Vm, args: &[&str]) -> Result<String> {
    Ok(vm.docker(args)?.success()?.out().to_string())
}

fn uid_map(vm: &Vm, name: &str) -> Result<String> {
    let m = run_out(vm, &["exec", name, "cat", "/proc/self/uid_map"])?;
    Ok(m.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `docker inspect` names hull's runtime, also when the user asked for runc.
pub fn runtime_is_hull(vm: &Vm) -> Result<()> {
    let id = run_out(vm, &["create", "busybox", "true"])?;
    let rt = run_out(vm, &["inspect", "-f", "{{.HostConfig.Runtime}}", &id])?;
    ensure!(rt == "hull", "default runtime is {rt:?}");
    vm.docker(&["rm", &id])?.success()?;
    // Even a container that asks for runc gets a user namespace.
    let m = run_out(
        vm,
        &[
            "run",
            "--rm",
            "--runtime=runc",
            "busybox",
            "cat",
            "/proc/self/uid_map",
        ],
    )?;
    ensure!(
        !m.contains("4294967295"),
        "--runtime=runc ran without a user namespace: {m}"
    );
    Ok(())
}

/// ECI §1: concurrent containers get distinct, exclusive 65536-id ranges.
pub fn exclusive_id_ranges(vm: &Vm) -> Result<()> {
    for n in ["ids-a", "ids-b"] {
        vm.docker(&["run", "-d", "--name", n, "busybox", "sleep", "300"])?
            .success()?;
    }
    let a = uid_map(vm, "ids-a")?;
    let b = uid_map(vm, "ids-b")?;
    let ga = run_out(vm, &["exec", "ids-a", "cat", "/proc/self/gid_map"])?;
    vm.docker(&["rm", "-f", "ids-a", "ids-b"])?.success()?;
    // Each map is one line `inside outside length`; the two ranges of the
    // VM's ids, [outside, outside + length), must not overlap.
    let mut ranges = Vec::new();
    for m in [&a, &b] {
        let f: Vec<u64> = m.split(' ').filter_map(|x| x.parse().ok()).collect();
        ensure!(
            f.len() == 3 && f[0] == 0 && f[1] >= 100_000 && f[2] == 65536,
            "uid_map is not `0 <base>=100000.. 65536`: {m}"
        );
        ranges.push((f[1], f[1] + f[2]));
    }
    let ((a0, a1), (b0, b1)) = (ranges[0], ranges[1]);
    ensure!(
        a1 <= b0 || b1 <= a0,
        "two running containers' id ranges overlap: [{a0}, {a1}) and [{b0}, {b1})"
    );
    ensure!(
        ga.split_whitespace().collect::<Vec<_>>().join(" ") == a,
        "gid_map differs from uid_map: {ga} vs {a}"
    );
    Ok(())
}

/// ECI §1: image files still appear owned by root; root inside is not root
/// in the VM.
pub fn files_root_owned(vm: &Vm) -> Result<()> {
    let r = run_out(
        vm,
        &[
            "run",
            "--rm",
            "busybox",
            "stat",
            "-c",
            "%u:%g",
            "/bin/busybox",
            "/etc/passwd",
        ],
    )?;
    ensure!(
        r.lines().all(|l| l == "0:0"),
        "image files not root-owned inside: {r}"
    );
    let r = run_out(
        vm,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "id -u; touch /newfile && stat -c %u /newfile",
        ],
    )?;
    ensure!(r == "0\n0", "{r}");
    Ok(())
}

/// ECI §1: a named volume is shared by two containers with different ranges.
pub fn named_volume_shared(vm: &Vm) -> Result<()> {
    vm.docker(&["volume", "create", "shared-vol"])?.success()?;
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "vol-a",
        "-v",
        "shared-vol:/data",
        "busybox",
        "sleep",
        "300",
    ])?
    .success()?;
    vm.docker(&[
        "exec",
        "vol-a",
        "sh",
        "-c",
        "echo from-a > /data/f && chmod 600 /data/f",
    ])?
    .success()?;
    let r = run_out(
        vm,
        &[
            "run",
            "--rm",
            "-v",
            "shared-vol:/data",
            "busybox",
            "sh",
            "-c",
            "cat /data/f; stat -c %u /data/f",
        ],
    )?;
    vm.docker(&["rm", "-f", "vol-a"])?.success()?;
    ensure!(
        r == "from-a\n0",
        "volume not shared with root ownership: {r}"
    );
    Ok(())
}

/// The container lifecycle verbs all reach the runtime and work.
pub fn lifecycle(vm: &Vm) -> Result<()> {
    let c = "life";
    vm.docker(&[
        "run",
        "-d",
        "--name",
        c,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    ])?
    .success()?;
    vm.docker(&["pause", c])?.success()?;
    let st = run_out(vm, &["inspect", "-f", "{{.State.Status}}", c])?;
    ensure!(st == "paused", "after pause: {st}");
    vm.docker(&["unpause", c])?.success()?;
    vm.docker(&["update", "--memory", "64m", "--memory-swap", "-1", c])?
        .success()?;
    let mem = run_out(vm, &["exec", c, "cat", "/sys/fs/cgroup/memory.max"])?;
    ensure!(
        mem == (64u64 << 20).to_string(),
        "memory.max after update: {mem}"
    );
    let top = run_out(vm, &["top", c])?;
    ensure!(
        top.contains("sleep") || top.contains("sh"),
        "docker top: {top}"
    );
    let stats = run_out(
        vm,
        &["stats", "--no-stream", "--format", "{{.MemUsage}}", c],
    )?;
    ensure!(
        stats.contains("64MiB"),
        "docker stats shows no limit: {stats}"
    );
    vm.docker(&["stop", "-t", "10", c])?.success()?;
    let code = run_out(vm, &["inspect", "-f", "{{.State.ExitCode}}", c])?;
    ensure!(code == "0", "stop did not deliver SIGTERM (exit {code})");
    vm.docker(&["start", c])?.success()?;
    vm.docker(&["kill", "-s", "KILL", c])?.success()?;
    let code = run_out(vm, &["inspect", "-f", "{{.State.ExitCode}}", c])?;
    ensure!(code == "137", "kill: exit {code}");
    vm.docker(&["rm", c])?.success()?;
    Ok(())
}

pub fn logs(vm: &Vm) -> Result<()> {
    let id = run_out(
        vm,
        &["run", "-d", "busybox", "sh", "-c", "echo out; echo err >&2"],
    )?;
    vm.docker(&["wait", &id])?.success()?;
    let r = vm.docker(&["logs", &id])?.success()?;
    ensure!(r.stdout.trim() == "out" && r.stderr.trim() == "err", "{r}");
    vm.docker(&["rm", &id])?.success()?;
    Ok(())
}

pub fn restart_policy(vm: &Vm) -> Result<()> {
    let c = "restarter";
    vm.docker(&[
        "run",
        "-d",
        "--name",
        c,
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 3",
    ])?
    .success()?;
    let start = Instant::now();
    loop {
        let st = run_out(
            vm,
            &["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", c],
        )?;
        if st == "2 exited" {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("restart policy did not run twice: {st}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    vm.docker(&["rm", "-f", c])?.success()?;
    Ok(())
}

pub fn healthcheck(vm: &Vm) -> Result<()> {
    let c = "healthy";
    vm.docker(&[
        "run",
        "-d",
        "--name",
        c,
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "1s",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 300",
    ])?
    .success()?;
    let start = Instant::now();
    loop {
        let h = run_out(vm, &["inspect", "-f", "{{.State.Health.Status}}", c])?;
        if h == "healthy" {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("health check never passed: {h}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    vm.docker(&["rm", "-f", c])?.success()?;
    Ok(())
}

/// Bridge networking and a published port, reached from another container.
pub fn bridge_publish(vm: &Vm) -> Result<()> {
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:80",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-web > /www/index.html && httpd -f -p 80 -h /www",
    ])?
    .success()?;
    let ip = run_out(
        vm,
        &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"],
    )?;
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        // Through the VM's published port (DNAT) and directly on the bridge.
        let r = vm.docker(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!("wget -qO- http://10.0.2.15:8080/ && wget -qO- http://{ip}/"),
        ])?;
        if r.ok() && r.out() == "hello-web\nhello-web" {
            vm.docker(&["rm", "-f", "web"])?.success()?;
            return Ok(());
        }
        last = r.to_string();
        std::thread::sleep(Duration::from_secs(2));
    }
    let _ = vm.docker(&["rm", "-f", "web"]);
    bail!("published port not reachable: {last}")
}

/// `docker build` RUN steps run under hull-runtime (in a user namespace).
pub fn build_run_steps(vm: &Vm) -> Result<()> {
    let dir = super::boot::tempdir()?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN cat /proc/self/uid_map > /uidmap && echo built > /built\nCMD cat /built /uidmap\n",
    )?;
    let r = vm.docker(&["build", "-q", "-t", "built:1", &dir.display().to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
    r?.success().context("docker build")?;
    let out = run_out(vm, &["run", "--rm", "built:1"])?;
    ensure!(out.starts_with("built"), "{out}");
    ensure!(
        !out.contains("4294967295"),
        "the RUN step had no user namespace: {out}"
    );
    vm.docker(&["rmi", "built:1"])?.success()?;
    Ok(())
}

/// `docker cp` both ways on a running container, and `docker diff` after.
pub fn cp_running(vm: &Vm) -> Result<()> {
    let c = "cp-running";
    vm.docker(&["run", "-d", "--name", c, "busybox", "sleep", "300"])?
        .success()?;
    let r = vm
        .sh(&format!("docker cp {c}:/etc/passwd - | tar -xO"))?
        .success()?;
    ensure!(
        r.stdout.starts_with("root:x:0:0"),
        "docker cp out of a running container: {r}"
    );
    let dir = super::boot::tempdir()?;
    std::fs::write(dir.join("in.txt"), "into-running\n")?;
    let copied = vm.docker(&[
        "cp",
        &dir.join("in.txt").display().to_string(),
        &format!("{c}:/in.txt"),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    copied?.success()?;
    let got = run_out(vm, &["exec", c, "cat", "/in.txt"])?;
    ensure!(got == "into-running", "{got}");
    let diff = run_out(vm, &["diff", c])?;
    ensure!(diff.contains("A /in.txt"), "docker diff: {diff}");
    vm.docker(&["rm", "-f", c])?.success()?;
    Ok(())
}
