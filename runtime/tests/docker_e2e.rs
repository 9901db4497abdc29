//! End to end through Docker: dockerd → containerd → containerd-shim-runc-v2 →
//! hull-runtime, on this machine (host tier: needs root and Debian's
//! docker.io, else it fails naming what is missing); dockerd runs in its own
//! network namespace so its bridge and iptables rules never touch the
//! machine's.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Daemon {
    child: Child,
    sock: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

fn docker(d: &Daemon, args: &[&str]) -> (bool, String) {
    let o = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", d.sock))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker CLI");
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

fn must(d: &Daemon, args: &[&str]) -> String {
    let (ok, out) = docker(d, args);
    assert!(ok, "docker {args:?}: {out}");
    out
}

#[test]
fn docker_drives_hull_runtime_through_the_shim() {
    const TEST: &str = "docker e2e";
    host_tier(TEST);
    require_file(TEST, "/usr/sbin/dockerd", "docker.io");
    require_on_path(TEST, "containerd", "containerd");
    require_on_path(TEST, "containerd-shim-runc-v2", "containerd");
    require_on_path(TEST, "unshare", "util-linux");
    require_on_path(TEST, "ip", "iproute2");
    require_on_path(TEST, "docker", "docker.io");
    let env = Env::new();
    let dir = env.dir.path();
    // The product's shape: a real hull-guard, the runtime's default `--guard required`.
    let guard = Guard::start(&env);
    let cfg = serde_json::json!({
        "runtimes": {"hull": {"path": BIN, "runtimeArgs": [
            "--guard-socket", guard.sock, "--guard-procfs", guard.procfs(),
            // dockerd's data root (containers/<id>/resolv.conf, ...) and the
            // test's volumes live in the test folder, the only mount root.
            "--mount-root", std::fs::canonicalize(dir).expect("canonical test folder"),
            "--idranges-dir", env.ids]}},
        "default-runtime": "hull",
        "default-cgroupns-mode": "private"
    });
    std::fs::write(dir.join("daemon.json"), cfg.to_string()).unwrap();
    let sock = dir.join("docker.sock").display().to_string();
    let shell = format!(
        "ip link set lo up; exec dockerd --config-file {d}/daemon.json --data-root {d}/data --exec-root {d}/exec -H unix://{sock} --pidfile {d}/docker.pid",
        d = dir.display()
    );
    let child = Command::new("unshare")
        .args(["-n", "sh", "-c", &shell])
        .stdout(std::fs::File::create(dir.join("dockerd.log")).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start dockerd");
    let d = Daemon { child, sock };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !docker(&d, &["version"]).0 {
        assert!(Instant::now() < deadline, "dockerd did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    make_rootfs(&dir.join("img"));
    let tar = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {}/img -c . | DOCKER_HOST=unix://{} docker import - busybox:hull",
            dir.display(),
            d.sock
        ))
        .status()
        .unwrap();
    assert!(tar.success());

    let (ok, out) = docker(
        &d,
        &[
            "run",
            "--rm",
            "busybox:hull",
            "sh",
            "-c",
            "cat /proc/self/uid_map; stat -c %u /bin/busybox",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("100000") && out.ends_with("0\n"), "{out}");
    must(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "busybox:hull",
            "httpd",
            "-f",
            "-p",
            "80",
        ],
    );
    must(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "sleeper",
            "busybox:hull",
            "sleep",
            "1000",
        ],
    );
    let (_, ma) = docker(&d, &["exec", "web", "cat", "/proc/self/uid_map"]);
    let (_, mb) = docker(&d, &["exec", "sleeper", "cat", "/proc/self/uid_map"]);
    assert_ne!(ma, mb, "ranges must be exclusive");
    let (_, ip) = docker(
        &d,
        &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"],
    );
    let (_, web) = docker(
        &d,
        &[
            "exec",
            "sleeper",
            "wget",
            "-qO-",
            &format!("http://{}/", ip.trim()),
        ],
    );
    assert!(
        web.contains("404"),
        "bridge networking through libnetwork's hook: {web}"
    );
    must(&d, &["pause", "sleeper"]);
    assert_eq!(
        docker(&d, &["inspect", "-f", "{{.State.Status}}", "sleeper"])
            .1
            .trim(),
        "paused"
    );
    must(&d, &["unpause", "sleeper"]);
    assert!(docker(&d, &["top", "sleeper"]).1.contains("sleep 1000"));
    let (ok, out) = docker(
        &d,
        &[
            "exec",
            "-t",
            "sleeper",
            "sh",
            "-c",
            "tty; cat /proc/self/uid_map",
        ],
    );
    assert!(
        ok && out.contains("/dev/pts/") && out.contains("165536"),
        "exec -t: {out}"
    );
    must(&d, &["stop", "-t", "1", "sleeper"]);
    must(&d, &["kill", "web"]);
    must(&d, &["rm", "-f", "web", "sleeper"]);
    // Named volume shared by two containers, files root-owned in both.
    must(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "v1:/data",
            "busybox:hull",
            "sh",
            "-c",
            "echo hi > /data/f",
        ],
    );
    let (_, f) = docker(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "v1:/data",
            "busybox:hull",
            "sh",
            "-c",
            "cat /data/f; stat -c %u /data/f",
        ],
    );
    assert_eq!(f, "hi\n0\n");
    // ECI §3 through the engine.
    let (ok, out) = docker(&d, &["run", "--rm", "--pid=host", "busybox:hull", "true"]);
    assert!(
        !ok && out.contains("can't share namespaces [pid] with the host"),
        "{out}"
    );
    let (ok, out) = docker(
        &d,
        &["run", "--rm", "--network=host", "busybox:hull", "true"],
    );
    assert!(
        !ok && out.contains("can't share a network namespace with the host"),
        "{out}"
    );
    // --privileged: all caps, own userns, no host devices.
    let (ok, out) = docker(
        &d,
        &[
            "run",
            "--rm",
            "--privileged",
            "busybox:hull",
            "sh",
            "-c",
            "cat /proc/self/uid_map; ls /dev/vda 2>&1; true",
        ],
    );
    assert!(
        ok && out.contains("100000") && out.contains("No such file"),
        "{out}"
    );
    // ECI §4 through Docker: a read-only volume stays read-only with
    // CAP_SYS_ADMIN; the container's own tmpfs is its own; a fresh proc is
    // masked; a global sysctl write stays in the container (§5).
    let vol = dir.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let (ok, out) = docker(
        &d,
        &[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            &format!("{}:/mnt:ro", vol.display()),
            "busybox:hull",
            "sh",
            "-c",
            "mount -o remount,rw /mnt /mnt; echo rc=$?",
        ],
    );
    assert!(ok && out.contains("rc=") && !out.contains("rc=0"), "{out}");
    let (ok, out) = docker(
        &d,
        &[
            "run",
            "--rm",
            "--privileged",
            "busybox:hull",
            "sh",
            "-c",
            "mkdir /t /p; mount -t tmpfs none /t && mount -o remount,bind,ro /t && echo own_tmpfs=ok; \
             mount -t proc proc /p && echo keys_bytes=$(wc -c < /p/keys); \
             echo 5 > /proc/sys/kernel/panic && echo panic=$(cat /proc/sys/kernel/panic)",
        ],
    );
    assert!(
        ok && out.contains("own_tmpfs=ok")
            && out.contains("keys_bytes=0")
            && out.contains("panic=5"),
        "{out}"
    );
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/panic")
            .unwrap_or_default()
            .trim(),
        "5",
        "the VM's kernel.panic is untouched"
    );
    // A terminal (console socket).
    let (ok, out) = docker(&d, &["run", "--rm", "-t", "busybox:hull", "tty"]);
    assert!(ok && out.contains("/dev/pts/0"), "{out}");
    // docker build RUN steps run under hull too.
    std::fs::create_dir(dir.join("ctx")).unwrap();
    std::fs::write(
        dir.join("ctx/Dockerfile"),
        "FROM busybox:hull\nRUN cat /proc/self/uid_map > /built\n",
    )
    .unwrap();
    let o = Command::new("docker")
        .env("DOCKER_HOST", format!("unix://{}", d.sock))
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "-q",
            "-t",
            "built",
            dir.join("ctx").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(docker(&d, &["run", "--rm", "built", "cat", "/built"])
        .1
        .contains("100000"));
    drop(d);
    // dockerd leaves its default netns bind behind; the temp dir goes with it.
    let _ = nix::mount::umount2(
        &dir.join("exec/netns/default"),
        nix::mount::MntFlags::MNT_DETACH,
    );
}
