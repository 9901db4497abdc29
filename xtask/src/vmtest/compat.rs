//! desktop/client-compat (issue 16, "Clients see Docker Engine"): real
//! clients from the ecosystem — the Docker SDK for Python 7.2.0 and
//! testcontainers-python 4.15.0, pinned in `cargo xtask deps`'s venv — run
//! the same script (xtask/clients/compat.py) against hull and against a
//! plain Docker Engine (Debian's dockerd, started here on the host). The
//! two record sets must be equal except for the checks in [`EXPECTED`],
//! each with the ECI reason it differs; an unlisted difference fails, and
//! so does a listed one that no longer happens (a stale entry).
//!
//! testcontainers' reaper is `testcontainers/ryuk:0.8.1` (4.15.0's
//! default), made here from busybox + `hull-probe ryuk` and pushed to the
//! ECI suite's registry on the host, which both engines use as their
//! Docker Hub mirror: a pull gives it the repository digest
//! `testcontainers/ryuk@sha256:...` a real pull from Docker Hub would, so
//! the ECI allow-list entry `docker.io/testcontainers/ryuk:*` applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::vm::Vm;

/// testcontainers-python 4.15.0's reaper (`testcontainers/core/config.py`).
const RYUK: &str = "testcontainers/ryuk:0.8.1";

/// The checks whose records differ between hull and Docker Engine, and why
/// (docs/compat.md has the table). `eci-behaviours.md` is the project's
/// digest of Docker's ECI documentation (shared/reference/), beside the
/// ECI FAQ.
const EXPECTED: &[(&str, &str)] = &[
    (
        "engine.info",
        "DefaultRuntime is hull's runtime, not runc: ECI's hardened runtime is \
         the default and only one (eci-behaviours.md §6; Docker's ECI runs \
         Sysbox)",
    ),
    (
        "containers.exec-uid-map",
        "root in the container is an unprivileged user of the VM: every \
         container gets its own user namespace with an exclusive id range \
         (eci-behaviours.md §1; ECI docs, 'How does it work')",
    ),
    (
        "socket.ryuk-undigested",
        "the socket mount is refused for an image whose tag is allowed \
         (docker.io/testcontainers/ryuk:*) but which has no repository digest \
         (loaded, not pulled): the allow-list is enforced by digest \
         (eci-behaviours.md §8; docs/settings.md); after a pull both engines \
         agree (socket.ryuk-pulled)",
    ),
    (
        "socket.client-path",
        "the host's path of the socket (DOCKER_HOST's) is not the engine's \
         socket, which runs in the VM, and hull's home in the /tmp share reads \
         as an empty read-only folder; as with Docker Desktop a container gets \
         the engine's socket as /var/run/docker.sock (ECI FAQ 'Can I mount the \
         host's Docker socket'; testcontainers: \
         TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE=/var/run/docker.sock; \
         docs/compat.md)",
    ),
];

/// What one engine's run of the script reported: check -> (ok, value).
type Records = BTreeMap<String, (bool, serde_json::Value)>;

/// A plain Docker Engine on the host: Debian's dockerd with its own data
/// root, exec root, pidfile, socket, bridge and address pools (none
/// shared with another dockerd on the machine), no iptables rules (ports
/// are published on 127.0.0.1 by docker-proxy). Dropped, it removes its
/// containers, stops, and leaves no bridge, mount or folder behind.
struct HostEngine {
    child: Option<Child>,
    dir: PathBuf,
    sock: PathBuf,
}

/// The host engine's bridge, and the ranges its networks use; the VM tier
/// runs one VM scenario set at a time (flock), so fixed names do not clash.
const BRIDGE: &str = "hullcompat0";
const BRIDGE_CIDR: &str = "10.250.7.1/24";
const POOL: &str = "10.251.0.0/16";

impl HostEngine {
    fn start(dir: &Path, mirror: &str) -> Result<HostEngine> {
        for (p, pkg) in [
            ("/usr/sbin/dockerd", "docker.io"),
            ("/usr/sbin/docker-proxy", "docker.io"),
        ] {
            ensure!(
                Path::new(p).exists(),
                "{p} is missing: run `cargo xtask deps` ({pkg})"
            );
        }
        let dir = dir.join("dockerd");
        std::fs::create_dir_all(&dir)?;
        let sock = dir.join("docker.sock");
        // From here on, Drop undoes whatever was made, even on an error.
        let mut e = HostEngine {
            child: None,
            dir: dir.clone(),
            sock: sock.clone(),
        };
        // A bridge left by an earlier run that was killed goes first.
        let _ = ip(&["link", "del", BRIDGE]);
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["addr", "add", BRIDGE_CIDR, "dev", BRIDGE])?;
        ip(&["link", "set", BRIDGE, "up"])?;
        let cfg = serde_json::json!({
            "bridge": BRIDGE,
            "iptables": false,
            "ip6tables": false,
            "ip-masq": false,
            "default-address-pools": [{"base": POOL, "size": 24}],
            "registry-mirrors": [format!("http://{mirror}")],
        });
        std::fs::write(dir.join("daemon.json"), cfg.to_string())?;
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let mut cmd = Command::new("/usr/sbin/dockerd");
        // If vm-test itself dies (^C), dockerd goes with it instead of
        // outliving the run; the next run removes the bridge it leaves.
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // only the forked child.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        e.child = Some(
            cmd.arg("--config-file")
                .arg(dir.join("daemon.json"))
                .arg("--data-root")
                .arg(dir.join("data"))
                .arg("--exec-root")
                .arg(dir.join("exec"))
                .arg("--pidfile")
                .arg(dir.join("docker.pid"))
                .arg("-H")
                .arg(format!("unix://{}", sock.display()))
                // A containerd shared with another dockerd keeps ours apart.
                .args(["--containerd-namespace", "hull-compat"])
                .args(["--containerd-plugins-namespace", "hull-compat-plugins"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting /usr/sbin/dockerd")?,
        );
        let t = Instant::now();
        loop {
            if e.docker(&["version"]).is_ok() {
                break;
            }
            let exited = e.child.as_mut().map(|c| c.try_wait()).transpose()?;
            if t.elapsed() > Duration::from_secs(60) || exited.flatten().is_some() {
                bail!(
                    "the host dockerd did not answer on {}: {}",
                    e.sock.display(),
                    e.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(e)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn docker(&self, args: &[&str]) -> Result<String> {
        let o = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .context("running the docker CLI")?;
        if !o.status.success() {
            bail!(
                "docker {} (host engine): {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

impl Drop for HostEngine {
    fn drop(&mut self) {
        if let Ok(ids) = self.docker(&["ps", "-aq"]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                let _ = self.docker(&args);
            }
        }
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of the dockerd this struct started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Networks the script left: dockerd keeps their bridges on exit.
        if let Ok(o) = Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
        {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 3 && f[3].starts_with("10.251.") && f[1].starts_with("br-") {
                    let _ = ip(&["link", "del", f[1]]);
                }
            }
        }
        let _ = ip(&["link", "del", BRIDGE]);
        // Mounts dockerd left under its folders (netns, overlay) go before the folder.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    ensure!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr).trim()
    );
    Ok(())
}

/// The venv's Python, or the error that says how to get it.
fn python() -> Result<PathBuf> {
    let p = crate::deps::clients_venv().join("bin/python");
    ensure!(
        p.is_file(),
        "{} is missing: run `cargo xtask deps` (it installs the pinned Python clients)",
        p.display()
    );
    Ok(p)
}

/// Runs compat.py against one engine; its records, or why there are none.
fn run_script(
    engine: &str,
    dir: &Path,
    docker_host: &str,
    socket_for_binds: &str,
) -> Result<Records> {
    let bind = dir.join(format!("bind-{engine}"));
    let home = dir.join(format!("home-{engine}"));
    std::fs::create_dir_all(&bind)?;
    std::fs::create_dir_all(&home)?;
    let script = crate::paths::workspace().join("xtask/clients/compat.py");
    let t = Instant::now();
    let child = Command::new(python()?)
        .arg(&script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        // The user's testcontainers and docker settings stay out.
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join("docker-config"))
        .env("DOCKER_HOST", docker_host)
        .env("TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE", socket_for_binds)
        // This build machine has a /.dockerenv, which makes testcontainers
        // reach containers by a gateway address; a user's desktop has none.
        .env("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
        .env("RYUK_RECONNECTION_TIMEOUT", "2s")
        .env("COMPAT_BIND_DIR", &bind)
        .env("COMPAT_RYUK_IMAGE", RYUK)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting compat.py")?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let o = match rx.recv_timeout(Duration::from_secs(900)) {
        Ok(o) => o?,
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child started above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            bail!("compat.py against {engine} did not finish within 900 s");
        }
    };
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    std::fs::write(dir.join(format!("{engine}.jsonl")), stdout.as_bytes())?;
    eprintln!(
        "[vm-test] client-compat: the script ran against {engine} in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    ensure!(
        o.status.success(),
        "compat.py against {engine} exited with {}: {}",
        o.status,
        stderr.trim()
    );
    let mut recs = Records::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("a record of compat.py against {engine}: {line}"))?;
        let name = v["check"]
            .as_str()
            .with_context(|| format!("a record without a check name: {line}"))?;
        let ok = v["ok"].as_bool().unwrap_or(false);
        ensure!(
            recs.insert(name.to_string(), (ok, v["value"].clone()))
                .is_none(),
            "compat.py reported {name} twice against {engine}"
        );
    }
    ensure!(
        !recs.is_empty(),
        "compat.py printed no records against {engine}: {}",
        stderr.trim()
    );
    Ok(recs)
}

/// The comparison: (the listed differences seen, every problem).
fn compare(
    docker: &Records,
    hull: &Records,
    expected: &[(&str, &str)],
) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    // The baseline must pass, or the comparison proves nothing.
    for (name, (ok, v)) in docker {
        if !ok {
            problems.push(format!("{name} failed on Docker Engine itself: {v}"));
        }
    }
    let names: std::collections::BTreeSet<&String> = docker.keys().chain(hull.keys()).collect();
    for name in names {
        let reason = expected.iter().find(|(n, _)| n == name).map(|(_, r)| *r);
        let (d, h) = (docker.get(name), hull.get(name));
        let fmt = |r: Option<&(bool, serde_json::Value)>| match r {
            Some((ok, v)) => format!("ok={ok} {v}"),
            None => "no record".to_string(),
        };
        if d == h {
            if reason.is_some() {
                problems.push(format!(
                    "{name}: listed as a difference but both engines gave {} (stale entry in EXPECTED)",
                    fmt(d)
                ));
            }
            continue;
        }
        match reason {
            Some(r) => seen.push(format!(
                "{name}: Docker Engine {} / hull {} — {r}",
                fmt(d),
                fmt(h)
            )),
            None => problems.push(format!(
                "{name}: Docker Engine {} but hull {} (unlisted difference)",
                fmt(d),
                fmt(h)
            )),
        }
    }
    (seen, problems)
}

pub fn client_compat(vm: &Vm) -> Result<()> {
    python()?;
    let dir = super::boot::tempdir()?;
    let r = client_compat_in(vm, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn client_compat_in(vm: &Vm, dir: &Path) -> Result<()> {
    ensure!(
        dir.starts_with("/tmp"),
        "the work folder {} is not under /tmp, the VM's default share",
        dir.display()
    );
    let port = vm
        .var("registry")?
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .context("the suite's registry variable has no port")?;
    let busybox = super::images::busybox_rootfs(dir)?;
    let busybox = busybox.display().to_string();
    let engine = HostEngine::start(dir, &format!("127.0.0.1:{port}"))?;
    // The same busybox as the VM's; the reaper image pushed to the mirror,
    // then loaded into both engines without a repository digest.
    engine.docker(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        &busybox,
        "busybox:latest",
    ])?;
    engine.docker(&[
        "import",
        "-c",
        "ENTRYPOINT [\"/bin/hull-probe\", \"ryuk\"]",
        "-c",
        "EXPOSE 8080",
        &busybox,
        RYUK,
    ])?;
    let pushed = format!("127.0.0.1:{port}/{RYUK}");
    engine.docker(&["tag", RYUK, &pushed])?;
    engine.docker(&["push", &pushed])?;
    let saved = dir.join("ryuk-image.tar").display().to_string();
    engine.docker(&["save", "-o", &saved, RYUK])?;
    engine.docker(&["rmi", RYUK, &pushed])?;
    engine.docker(&["load", "-i", &saved])?;
    vm.docker(&["load", "-i", &saved])?
        .success()
        .context("loading the reaper image into hull")?;

    let host_sock = engine.sock.display().to_string();
    let docker = run_script("docker", dir, &format!("unix://{host_sock}"), &host_sock)
        .with_context(|| format!("host dockerd log:\n{}", engine.log_tail()))?;
    let hull = run_script("hull", dir, &vm.docker_host(), "/var/run/docker.sock")?;
    drop(engine);
    let (seen, problems) = compare(&docker, &hull, EXPECTED);
    for s in &seen {
        eprintln!("[vm-test] client-compat: expected difference {s}");
    }
    eprintln!(
        "[vm-test] client-compat: {} checks, {} expected difference(s)",
        docker.len().max(hull.len()),
        seen.len()
    );
    if !problems.is_empty() {
        bail!(
            "hull and Docker Engine differ for the clients:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(v: &[(&str, bool, serde_json::Value)]) -> Records {
        v.iter()
            .map(|(n, ok, v)| (n.to_string(), (*ok, v.clone())))
            .collect()
    }

    #[test]
    fn unlisted_and_stale_differences_fail() {
        let d = recs(&[
            ("a", true, serde_json::json!(1)),
            ("b", true, serde_json::json!("x")),
        ]);
        let h = recs(&[
            ("a", true, serde_json::json!(2)),
            ("b", true, serde_json::json!("x")),
        ]);
        let (seen, problems) = compare(&d, &h, &[("a", "why")]);
        assert_eq!((seen.len(), problems.len()), (1, 0));
        let e = compare(&d, &h, &[]).1;
        assert!(e[0].contains("a: Docker Engine ok=true 1 but hull ok=true 2 (unlisted"));
        let e = compare(&d, &h, &[("a", "why"), ("b", "old")]).1;
        assert!(e[0].contains("b: listed as a difference but both engines gave"));
        let missing = recs(&[("b", true, serde_json::json!("x"))]);
        assert!(!compare(&d, &missing, &[]).1.is_empty());
        let bad_base = recs(&[("a", false, serde_json::json!(1))]);
        assert!(compare(&bad_base, &bad_base, &[]).1[0].contains("failed on Docker Engine itself"));
    }
}
