//! Workloads that must keep working under hull (the proof issue's list).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};

use super::vm::Vm;

/// Docker-in-Docker: dockerd in a privileged container, overlay2 inside,
/// running an inner container.
pub fn dind(vm: &Vm) -> Result<()> {
    let work = super::boot::tempdir()?;
    let imported = super::images::import_dind(vm, &work);
    let _ = std::fs::remove_dir_all(&work);
    imported?;
    // The inner /var/lib/docker must not be on the container's own overlay
    // (overlayfs cannot be an overlay's upper layer): a volume, as the
    // official docker:dind image declares.
    vm.docker(&[
        "run",
        "-d",
        "--privileged",
        "--name",
        "dind",
        "-v",
        "/var/lib/docker",
        "dind:local",
        "dockerd",
        "--storage-driver",
        "overlay2",
    ])?
    .success()?;
    let start = Instant::now();
    loop {
        let r = vm.docker(&["exec", "dind", "docker", "info", "--format", "{{.Driver}}"])?;
        // The inner CLI can print an empty driver (and exit 0) while its
        // daemon is still starting.
        if r.ok() && !r.out().is_empty() {
            ensure!(r.out() == "overlay2", "inner engine uses {}", r.out());
            break;
        }
        let running = vm.docker(&["inspect", "-f", "{{.State.Running}}", "dind"])?;
        if running.out() != "true" || start.elapsed() > Duration::from_secs(180) {
            let logs = vm.docker(&["logs", "--tail", "30", "dind"])?;
            let _ = vm.docker(&["rm", "-f", "dind"]);
            bail!("the inner dockerd never answered: {r}\n{logs}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    vm.docker(&[
        "exec",
        "dind",
        "docker",
        "import",
        "/busybox.tar",
        "inner-bb",
    ])?
    .success()?;
    let r = vm.docker(&[
        "exec", "dind", "docker", "run", "--rm", "inner-bb", "echo", "inner-ok",
    ])?;
    let _ = vm.docker(&["rm", "-f", "dind"]);
    let r = r.success()?;
    ensure!(r.out() == "inner-ok", "{r}");
    Ok(())
}

/// A compose-style app: two containers on a user network, found by name,
/// with a port published to the host's loopback.
pub fn compose_app(vm: &Vm) -> Result<()> {
    vm.docker(&["network", "create", "app-net"])?.success()?;
    let cleanup = |vm: &Vm| {
        let _ = vm.docker(&["rm", "-f", "app-db", "app-web"]);
        let _ = vm.docker(&["network", "rm", "app-net"]);
    };
    let run = || -> Result<()> {
        vm.docker(&[
            "run",
            "-d",
            "--name",
            "app-db",
            "--network",
            "app-net",
            "--network-alias",
            "db",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /www && echo data-from-db > /www/index.html && httpd -f -p 80 -h /www",
        ])?
        .success()?;
        vm.docker(&[
            "run", "-d", "--name", "app-web", "--network", "app-net", "-p", "18080:80", "busybox", "sh", "-c",
            "mkdir -p /www; (while true; do wget -qO /www/index.html.new http://db/ && mv /www/index.html.new /www/index.html; sleep 1; done) & httpd -f -p 80 -h /www",
        ])?
        .success()?;
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < Duration::from_secs(90) {
            // From the host, as a browser would: localhost, no DOCKER_HOST magic.
            let r = vm.sh("curl -s --max-time 5 http://127.0.0.1:18080/")?;
            if r.ok() && r.out() == "data-from-db" {
                return Ok(());
            }
            last = r.to_string();
            std::thread::sleep(Duration::from_secs(2));
        }
        bail!("the app was not reachable on localhost:18080: {last}")
    };
    let r = run();
    cleanup(vm);
    r
}

/// testcontainers-style: a helper container allowed to mount the socket
/// creates, runs, waits for and removes a sibling through it (run in the
/// ECI suite, whose settings allow the helper's image).
pub fn testcontainers(vm: &Vm) -> Result<()> {
    let helper = format!("{}/hull/socket-ok:1", vm.var("registry")?);
    // hull-probe exits 1 when a request was allowed: no `set -e`.
    let script = r#"S=/var/run/docker.sock
out=$(hull-probe http $S POST /v1.43/containers/create?name=sibling '{"Image":"busybox","Cmd":["sh","-c","cat /proc/self/uid_map"]}')
id=$(echo "$out" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4)
[ -n "$id" ] || { echo "create failed: $out"; exit 1; }
hull-probe http $S POST /v1.43/containers/$id/start >/dev/null || true
hull-probe http $S POST /v1.43/containers/$id/wait | grep -q '"StatusCode":0' || { echo "wait failed"; exit 1; }
hull-probe http $S GET "/v1.43/containers/$id/logs?stdout=1" | tr -d '\000-\010' | grep -q 65536 && echo sibling-userns
hull-probe http $S DELETE /v1.43/containers/$id >/dev/null || true
hull-probe http $S GET /v1.43/containers/$id/json | grep -q '^DENIED' && echo reaped"#;
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &helper,
            "sh",
            "-c",
            script,
        ])?
        .success()?;
    ensure!(
        r.stdout.contains("sibling-userns"),
        "the sibling did not run hardened: {r}"
    );
    ensure!(
        r.stdout.contains("reaped"),
        "the sibling was not removed: {r}"
    );
    Ok(())
}

/// `docker build` of a multi-stage Dockerfile: every RUN step in a hardened
/// container, COPY --from between stages.
pub fn multi_stage_build(vm: &Vm) -> Result<()> {
    let dir = super::boot::tempdir()?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox AS build\nRUN mkdir /out && cat /proc/self/uid_map > /out/uidmap && echo compiled > /out/app\n\
         FROM busybox\nCOPY --from=build /out /app\nRUN test -f /app/app\nCMD cat /app/app /app/uidmap\n",
    )?;
    let r = vm.docker(&["build", "-t", "multi:1", &dir.display().to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
    r?.success()?;
    let out = vm.docker(&["run", "--rm", "multi:1"])?.success()?;
    vm.docker(&["rmi", "multi:1"])?.success()?;
    ensure!(out.stdout.starts_with("compiled"), "{out}");
    ensure!(
        !out.stdout.contains("4294967295"),
        "a build step ran without a user namespace: {out}"
    );
    Ok(())
}

/// systemd as PID 1 in a container (image from Debian's packages).
pub fn systemd_pid1(vm: &Vm) -> Result<()> {
    let tar = super::images::systemd_rootfs()?;
    vm.docker_timeout(
        &[
            "import",
            "-c",
            "CMD [\"/sbin/init\"]",
            &tar.display().to_string(),
            "systemd:local",
        ],
        Duration::from_secs(900),
    )?
    .success()?;
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "sysd",
        "--privileged",
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "-e",
        "container=docker",
        "systemd:local",
    ])?
    .success()?;
    let start = Instant::now();
    let mut last;
    let ok = loop {
        let r = vm.docker(&["exec", "sysd", "systemctl", "is-system-running"])?;
        last = r.to_string();
        if matches!(r.out(), "running" | "degraded") {
            break true;
        }
        if start.elapsed() > Duration::from_secs(180) {
            break false;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    let pid1 = vm.docker(&["exec", "sysd", "cat", "/proc/1/comm"])?;
    let failed = vm.docker(&["exec", "sysd", "systemctl", "--failed", "--no-legend"])?;
    let _ = vm.docker(&["rm", "-f", "sysd"]);
    ensure!(
        ok,
        "systemd never finished booting: {last}\nfailed units: {failed}"
    );
    ensure!(pid1.out() == "systemd", "PID 1 is {pid1}");
    Ok(())
}
