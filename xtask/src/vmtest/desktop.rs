//! Issue 16: what a Docker Desktop user runs on the host beside `docker`:
//! `docker compose` (v2) and `docker buildx`, the CLI plugins `cargo xtask
//! deps` installs from the VM's own Debian suite (xtask/src/plugins.rs).
//! With buildx installed, `docker build` goes to the engine's built-in
//! BuildKit (the docker driver over `/grpc` and `/session`), whose RUN
//! steps must be as hardened as any container.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::vm::{Run, Vm};

/// Builds can be slow under TCG on a shared machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The plugin behind `docker <sub>` runs for this VM's CLI environment, or
/// the scenario fails naming what installs it.
pub(super) fn require_plugin(vm: &Vm, sub: &str) -> Result<()> {
    let r = vm.docker(&[sub, "version"])?;
    if !r.ok() {
        bail!(
            "the Docker CLI plugin docker-{sub} is missing (`docker {sub} version`: {}): run `cargo xtask deps` (as root it installs Debian trixie's docker-{sub} to {})",
            r.stderr.trim(),
            crate::plugins::SYSTEM_DIR
        );
    }
    Ok(())
}

/// A fresh project folder under the suite's share (so that a bind of it
/// works inside the VM), named after the scenario.
fn project(vm: &Vm, name: &str) -> Result<PathBuf> {
    let dir = Path::new(vm.var("share")?).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    Ok(dir)
}

/// Resources of a compose project the engine still has: (containers,
/// networks, volumes), by the labels compose puts on them.
fn compose_leftovers(vm: &Vm, project: &str) -> Result<(String, String, String)> {
    let label = format!("label=com.docker.compose.project={project}");
    let c = vm.docker(&["ps", "-aq", "--filter", &label])?.success()?;
    let n = vm
        .docker(&["network", "ls", "-q", "--filter", &label])?
        .success()?;
    let v = vm
        .docker(&["volume", "ls", "-q", "--filter", &label])?
        .success()?;
    Ok((c.out().into(), n.out().into(), v.out().into()))
}

const COMPOSE_PROJECT: &str = "hulldesk";
const COMPOSE_PORT: u16 = 18091;

/// `docker compose up -d --build` of a two-service project: `web` built
/// from a Dockerfile, publishing a port on the host's 127.0.0.1, binding
/// the project folder, waiting for `store` to be healthy; `store` keeping
/// its data in a named volume. The page on the host's port shows all four
/// (the built layer, the bind, the volume reached over the project
/// network); `docker compose down -v` leaves nothing behind.
pub fn compose_up_build(vm: &Vm) -> Result<()> {
    require_plugin(vm, "compose")?;
    require_plugin(vm, "buildx")?;
    let dir = project(vm, "compose-up-build")?;
    std::fs::create_dir_all(dir.join("web"))?;
    std::fs::write(dir.join("marker"), "from-project-bind\n")?;
    std::fs::write(
        dir.join("web/Dockerfile"),
        "FROM busybox\nRUN mkdir /www && echo from-built-layer > /built\n\
         CMD while true; do \
         { cat /built /project/marker; wget -qO- http://store/item; } > /www/index.html.new \
         && mv /www/index.html.new /www/index.html; sleep 1; done & httpd -f -p 80 -h /www\n",
    )?;
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            r#"name: {COMPOSE_PROJECT}
services:
  store:
    image: busybox:latest
    pull_policy: never
    command: ["sh", "-c", "echo from-named-volume > /data/item && httpd -f -p 80 -h /data"]
    volumes:
      - store-data:/data
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1/item"]
      interval: 2s
      timeout: 5s
      retries: 60
  web:
    build: ./web
    ports:
      - "127.0.0.1:{COMPOSE_PORT}:80"
    volumes:
      - ./:/project:ro
    depends_on:
      store:
        condition: service_healthy
volumes:
  store-data:
"#
        ),
    )?;
    let file = dir.join("compose.yaml").display().to_string();
    let compose = |args: &[&str], timeout: Duration| -> Result<Run> {
        let mut a = vec!["compose", "-f", file.as_str()];
        a.extend_from_slice(args);
        vm.docker_timeout(&a, timeout)
    };
    let result = (|| -> Result<()> {
        compose(&["up", "-d", "--build"], BUILD_TIMEOUT)?
            .success()
            .context("docker compose up -d --build")?;
        let want = "from-built-layer\nfrom-project-bind\nfrom-named-volume";
        let start = Instant::now();
        loop {
            // From the host, as a browser would: its own localhost.
            let r = vm.sh(&format!(
                "curl -s --max-time 5 http://127.0.0.1:{COMPOSE_PORT}/"
            ))?;
            if r.ok() && r.out() == want {
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                let last = r.to_string();
                let ps = compose(&["ps", "-a"], Duration::from_secs(60))?;
                let logs = compose(&["logs", "--tail", "20"], Duration::from_secs(60))?;
                bail!("the project never answered {want:?} on the host's 127.0.0.1:{COMPOSE_PORT}: {last}\n{ps}\n{logs}");
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        let health = vm
            .docker(&[
                "inspect",
                "-f",
                "{{.State.Health.Status}}",
                &format!("{COMPOSE_PROJECT}-store-1"),
            ])?
            .success()?;
        ensure!(health.out() == "healthy", "store is not healthy: {health}");
        // What `down -v` must remove was really there.
        let (c, n, v) = compose_leftovers(vm, COMPOSE_PROJECT)?;
        ensure!(
            c.lines().count() == 2 && n.lines().count() == 1 && v.lines().count() == 1,
            "before down: containers {c:?}, networks {n:?}, volumes {v:?}"
        );
        compose(&["down", "-v"], Duration::from_secs(300))?
            .success()
            .context("docker compose down -v")?;
        let (c, n, v) = compose_leftovers(vm, COMPOSE_PROJECT)?;
        ensure!(
            c.is_empty() && n.is_empty() && v.is_empty(),
            "docker compose down -v left containers {c:?}, networks {n:?}, volumes {v:?}"
        );
        let gone = vm.sh(&format!(
            "curl -s --max-time 5 http://127.0.0.1:{COMPOSE_PORT}/"
        ))?;
        ensure!(
            !gone.stdout.contains("from-built-layer"),
            "the port still answers after down: {gone}"
        );
        Ok(())
    })();
    if result.is_err() {
        let _ = compose(&["down", "-v"], Duration::from_secs(300));
    }
    let _ = vm.docker(&["rmi", &format!("{COMPOSE_PROJECT}-web")]);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `docker buildx build` (docker driver: the engine's BuildKit) of a
/// multi-stage Dockerfile whose first stage keeps a cache mount; a second
/// build, through plain `docker build`, sees what the first left in the
/// cache (and so ran on BuildKit too: the classic builder has no
/// `--mount`). Both images land in the engine and run.
pub fn buildx_multistage_cache(vm: &Vm) -> Result<()> {
    require_plugin(vm, "buildx")?;
    let driver = vm.docker(&["buildx", "inspect"])?.success()?;
    ensure!(
        driver
            .stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Driver:", "docker"]),
        "the default builder is not the engine's own (docker driver): {driver}"
    );
    let dir = super::boot::tempdir()?;
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox AS a\nARG PASS\n\
         RUN --mount=type=cache,target=/cache echo \"$PASS\" >> /cache/log \
         && mkdir /out && cp /cache/log /out/seen && cat /proc/self/uid_map > /out/uidmap\n\
         FROM busybox\nCOPY --from=a /out /app\nCMD cat /app/seen /app/uidmap\n",
    )?;
    let ctx = dir.display().to_string();
    let result = (|| -> Result<()> {
        vm.docker_timeout(
            &[
                "buildx",
                "build",
                "--load",
                "--build-arg",
                "PASS=first",
                "-t",
                "cachetest:1",
                &ctx,
            ],
            BUILD_TIMEOUT,
        )?
        .success()
        .context("docker buildx build (first)")?;
        vm.docker_timeout(
            &[
                "build",
                "--build-arg",
                "PASS=second",
                "-t",
                "cachetest:2",
                &ctx,
            ],
            BUILD_TIMEOUT,
        )?
        .success()
        .context("docker build (second)")?;
        let one = vm.docker(&["run", "--rm", "cachetest:1"])?.success()?;
        let two = vm.docker(&["run", "--rm", "cachetest:2"])?.success()?;
        ensure!(
            one.stdout.starts_with("first\n") && !one.stdout.contains("second"),
            "the first build's image: {one}"
        );
        ensure!(
            two.stdout.starts_with("first\nsecond\n"),
            "the second build did not see the first's cache mount: {two}"
        );
        for r in [&one, &two] {
            ensure!(
                !r.stdout.contains("4294967295"),
                "a BuildKit RUN step ran without a user namespace: {r}"
            );
        }
        Ok(())
    })();
    let _ = vm.docker(&["rmi", "cachetest:1", "cachetest:2"]);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// BuildKit's RUN steps are hardened: their own user namespace (not the
/// VM's identity map) and their own network namespace (no `docker0`, the
/// VM's bridge); and the entitlements `network.host` and
/// `security.insecure` are refused by the engine (they travel inside
/// gRPC, where the gate cannot see them: init's daemon.json denies them).
pub fn buildkit_entitlements_refused(vm: &Vm) -> Result<()> {
    require_plugin(vm, "buildx")?;
    let dir = super::boot::tempdir()?;
    let result = (|| -> Result<()> {
        let plain = dir.join("plain");
        std::fs::create_dir_all(&plain)?;
        std::fs::write(
            plain.join("Dockerfile"),
            "FROM busybox AS a\n\
             RUN mkdir /out && cat /proc/self/uid_map > /out/uid_map && ls /sys/class/net > /out/net\n\
             FROM scratch\nCOPY --from=a /out /\n",
        )?;
        let out = dir.join("out");
        vm.docker_timeout(
            &[
                "buildx",
                "build",
                "--no-cache",
                "--output",
                &format!("type=local,dest={}", out.display()),
                &plain.display().to_string(),
            ],
            BUILD_TIMEOUT,
        )?
        .success()
        .context("docker buildx build --output type=local")?;
        let uid_map = std::fs::read_to_string(out.join("uid_map"))
            .context("the RUN step's uid_map was not exported")?;
        let first: Vec<&str> = uid_map.split_whitespace().take(3).collect();
        ensure!(
            first.len() == 3 && first != ["0", "0", "4294967295"] && first[1] != "0",
            "a BuildKit RUN step shares the VM's user namespace: uid_map {uid_map:?}"
        );
        let net = std::fs::read_to_string(out.join("net"))?;
        ensure!(
            net.lines().any(|l| l == "lo") && !net.lines().any(|l| l == "docker0"),
            "a BuildKit RUN step sees the VM's network interfaces: {net:?}"
        );

        let host_net = dir.join("hostnet");
        std::fs::create_dir_all(&host_net)?;
        std::fs::write(
            host_net.join("Dockerfile"),
            "FROM busybox\nRUN --network=host ls /sys/class/net\n",
        )?;
        let host_net = host_net.display().to_string();
        for (args, want) in [
            (
                vec!["buildx", "build", &host_net],
                "failed to load LLB: network.host is not allowed",
            ),
            (
                vec!["buildx", "build", "--allow", "network.host", &host_net],
                "granting entitlement network.host is not allowed by build daemon configuration",
            ),
            (
                vec!["buildx", "build", "--allow", "security.insecure", &host_net],
                "granting entitlement security.insecure is not allowed by build daemon configuration",
            ),
            (
                vec!["build", "--network=host", &host_net],
                "granting entitlement network.host is not allowed by build daemon configuration",
            ),
        ] {
            let r = vm.docker_timeout(&args, BUILD_TIMEOUT)?;
            r.failure_with(want)
                .with_context(|| format!("docker {}", args.join(" ")))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
