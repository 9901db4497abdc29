//! ECI conformance: `eci-behaviours.md` line by line, through the real docker
//! CLI (and raw HTTP where the document says "a raw HTTP request").

use anyhow::{bail, ensure, Context, Result};

use super::escapes::{baseline, sh_both, unchanged};
use super::vm::Vm;

const SOCKET_DENIED: &str = "docker socket mount denied for container with image";

/// The admin settings of the ECI suite: §9's example plus the test registry's
/// image (by digest), and the user's engine settings to reach that registry.
pub fn eci_admin_settings(registry: &str) -> String {
    serde_json::json!({
        "configurationFileVersion": 2,
        "enhancedContainerIsolation": {
            "locked": true,
            "value": true,
            "dockerSocketMount": {
                "imageList": {
                    "images": [
                        "docker.io/localstack/localstack:*",
                        "docker.io/testcontainers/ryuk:*",
                        "docker:cli",
                        format!("{registry}/hull/socket-ok:*"),
                    ],
                    "allowDerivedImages": true
                },
                "commandList": {"type": "deny", "commands": ["push", "build"]}
            }
        }
    })
    .to_string()
}

/// §8 setup: an allowed image with a real repository digest, and a
/// disallowed image of different content.
pub fn push_allowed_image(vm: &Vm) -> Result<()> {
    let reg = vm.var("registry")?;
    let ok = format!("{reg}/hull/socket-ok:1");
    vm.docker(&["tag", "busybox", &ok])?.success()?;
    vm.docker(&["push", &ok])?
        .success()
        .context("push to the test registry")?;
    // A different image, not built from the allowed one (a derived image
    // rightly passes with allowDerivedImages: a commit would not do).
    let dir = super::boot::tempdir()?;
    let root = dir.join("evil-root");
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy("/bin/busybox", root.join("bin/sh"))?;
    std::fs::copy(super::images::probe_bin()?, root.join("bin/hull-probe"))?;
    std::fs::write(root.join("evil"), "not the allowed image\n")?;
    let tar = dir.join("evil.tar");
    super::images::tar_dir(&root, &tar)?;
    let r = vm.docker(&["import", &tar.display().to_string(), "evil:1"]);
    let _ = std::fs::remove_dir_all(&dir);
    r?.success()?;
    // Derived images of the allowed one do pass (allowDerivedImages).
    vm.docker(&[
        "run",
        "--name",
        "derived-src",
        "busybox",
        "touch",
        "/derived",
    ])?
    .success()?;
    vm.docker(&["commit", "derived-src", "derived:1"])?
        .success()?;
    vm.docker(&["rm", "derived-src"])?.success()?;
    Ok(())
}

/// §3: sharing the VM's namespaces is refused with ECI's messages;
/// `--userns=host` is silently ignored.
pub fn s3_namespaces(vm: &Vm) -> Result<()> {
    vm.docker(&["run", "--rm", "--pid=host", "busybox", "true"])?
        .failure_with("can't share namespaces [pid] with the host (because they use the linux user-namespace for isolation)")?;
    vm.docker(&["run", "--rm", "--network=host", "busybox", "true"])?
        .failure_with("can't share a network namespace with the host")?;
    for f in ["--ipc=host", "--uts=host", "--cgroupns=host"] {
        vm.docker(&["run", "--rm", f, "busybox", "true"])?
            .failure_with("with the host")?;
    }
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "--userns=host",
            "busybox",
            "cat",
            "/proc/self/uid_map",
        ])?
        .success()?;
    // One line `0 <start> 65536`: the container's root is the first id of a
    // range of its own, above the VM's ids (never the VM's 0, never a map
    // that reaches below the first range).
    let map: Vec<u64> = r
        .out()
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("uid_map is not numbers ({e}): {r}"))?;
    ensure!(
        map.len() == 3 && map[0] == 0 && map[1] >= 100_000 && map[2] == 65_536,
        "--userns=host: the container's uid_map is not one range of its own above the VM's ids: {r}"
    );
    Ok(())
}

/// §2: `--privileged` works over the container's own resources.
pub fn s2_privileged_own_resources(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    // The overlay's layers live on the tmpfs: an overlay cannot have
    // another overlay (the container's root) as its upper layer.
    let script =
        "mkdir -p /t /p && mount -t tmpfs t /t && echo tmpfs-ok; mkdir /t/l /t/u /t/w /t/m; \
        mount -t overlay o -o lowerdir=/t/l,upperdir=/t/u,workdir=/t/w /t/m && echo overlay-ok; \
        mount -t proc proc /p && echo proc-ok; hull-probe bpf-map-list >/dev/null; echo bpf=$?";
    let r = vm
        .docker(&["run", "--rm", "--privileged", "busybox", "sh", "-c", script])?
        .success()?;
    for want in ["tmpfs-ok", "overlay-ok", "proc-ok", "bpf=0"] {
        ensure!(
            r.stdout.contains(want),
            "privileged container could not {want}: {r}"
        );
    }
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "busybox",
            "sh",
            "-c",
            "mount -t tmpfs t /mnt && echo ok",
        ])?
        .success()?;
    ensure!(r.out() == "ok", "{r}");
    unchanged(vm, &b)
}

/// §4: mounts the container made itself can be remounted; initial read-only
/// mounts stay read-only (also through a bind and after chroot).
pub fn s4_mount_vetting(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&["volume", "create", "s4"])?.success()?;
    // Remounts through the probe: exact syscalls (BusyBox's mount passes
    // the tmpfs's uid= option back, which a user namespace cannot map).
    // The container's own tmpfs: remounted read-only, then read-write, then
    // written. The initial read-only volume: the guard's EPERM, directly,
    // through a bind and after chroot (the kernel's MNT_LOCK_READONLY
    // behind it for the bind remount).
    let script = "mount -t tmpfs own /mnt && echo own_mounted=1; \
        hull-probe mount - /mnt - remount-ro; touch /mnt/x 2>/dev/null || echo own_ro=1; \
        hull-probe mount - /mnt - remount-rw; touch /mnt/x && echo own_rw=1; \
        hull-probe mount - /data - remount-rw; \
        mkdir /b && mount --bind /data /b && echo bound=1; hull-probe mount - /b - bind-remount-rw; \
        chroot / hull-probe mount - /data - remount-rw | sed 's/^/chroot: /'; echo done";
    let r = super::escapes::sh_in(vm, &["--cap-add", "SYS_ADMIN", "-v", "s4:/data:ro"], script)?;
    super::escapes::has_lines(
        r.out(),
        &[
            "own_mounted=1",
            "ALLOWED mount(-, /mnt, -) (ret 0)",
            "own_ro=1",
            "own_rw=1",
            "DENIED EPERM mount(-, /data, -)",
            "bound=1",
            "DENIED EPERM mount(-, /b, -)",
            "chroot: DENIED EPERM mount(-, /data, -)",
            "done",
        ],
        "remounts",
    )?;
    ensure!(
        r.out().matches("ALLOWED mount(-, /mnt, -)").count() == 2,
        "own tmpfs could not be remounted both ways: {r}"
    );
    unchanged(vm, &b)
}

/// §5: hidden or read-only system paths.
pub fn s5_masked_paths(vm: &Vm) -> Result<()> {
    // Hidden: masked by /dev/null or an empty read-only tmpfs (nothing to
    // read; writes land nowhere; the escape suite checks the VM after).
    // Read-only: listable, but nothing can be written.
    let script = "for p in /proc/keys /proc/timer_list /proc/sched_debug /proc/kcore /proc/acpi /proc/scsi /dev/kmsg /sys/firmware; do \
        if [ -e $p ]; then (cat $p 2>/dev/null | head -c 1 | grep -q . && echo READABLE-$p); ([ -d $p ] && ls -A $p 2>/dev/null | grep -q . && echo LISTS-$p); fi; done; \
        echo done";
    for (mode, r) in sh_both(vm, script)? {
        ensure!(r.out() == "done", "system paths exposed with {mode}: {r}");
    }
    // Read-only: an existing file is opened for writing (created if missing
    // and truncated, as `>` does): EROFS from the read-only mount, which
    // comes before the file's own permissions. (procfs refuses creating
    // files there anyway, so a `touch` proves nothing.) Mounting over each
    // directory is the guard's EPERM (nothing is mounted into /proc).
    let ro = "for f in /proc/irq/default_smp_affinity $(find /proc/fs -type f 2>/dev/null | head -n 1) \
        $(find /proc/bus -type f 2>/dev/null | head -n 1); do echo file=$f; hull-probe write $f 1; done; \
        for d in /proc/bus /proc/fs /proc/irq; do hull-probe mount none $d tmpfs; done";
    for (mode, r) in sh_both(vm, ro)? {
        let out = r.out();
        let files: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("file="))
            .collect();
        ensure!(
            files.len() >= 2
                && files[0] == "/proc/irq/default_smp_affinity"
                && files[1].starts_with("/proc/fs/"),
            "no file found in /proc/irq and /proc/fs to write ({mode}): {r}"
        );
        for f in files {
            super::escapes::has_lines(
                out,
                &[
                    &format!("SETUP exists {f} (file)"),
                    &format!("DENIED EROFS open({f}, O_WRONLY|O_CREAT|O_TRUNC)"),
                ],
                mode,
            )?;
        }
        for d in ["/proc/bus", "/proc/fs", "/proc/irq"] {
            super::escapes::has_lines(
                out,
                &[
                    &format!("SETUP exists {d} (dir)"),
                    &format!("DENIED EPERM mount(none, {d}, tmpfs)"),
                ],
                mode,
            )?;
        }
    }
    Ok(())
}

/// §6: the runtime cannot be chosen; `docker build --network=host` is
/// refused, by the classic builder and by BuildKit.
pub fn s6_runtime_and_build(vm: &Vm) -> Result<()> {
    let id = vm
        .docker(&["create", "--runtime=runc", "busybox", "true"])?
        .success()?
        .out()
        .to_string();
    let rt = vm
        .docker(&["inspect", "--format", "{{.HostConfig.Runtime}}", &id])?
        .success()?;
    vm.docker(&["rm", &id])?.success()?;
    ensure!(rt.out() == "hull", "--runtime=runc was honoured: {rt}");
    super::desktop::require_plugin(vm, "buildx")?;
    let dir = super::boot::tempdir()?;
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN true\n")?;
    let ctx = dir.display().to_string();
    // The classic builder's `POST /build` is refused by the gate; BuildKit
    // (`docker build` once buildx is installed) gets the entitlement
    // inside gRPC, which the engine refuses (init's daemon.json).
    let classic = vm.sh(&format!(
        "DOCKER_BUILDKIT=0 docker build --network=host {ctx}"
    ));
    let buildkit = vm.docker(&["buildx", "build", "--network=host", &ctx]);
    let _ = std::fs::remove_dir_all(&dir);
    classic?.failure_with("hull: docker build --network=host is not allowed")?;
    buildkit?.failure_with(
        "granting entitlement network.host is not allowed by build daemon configuration",
    )?;
    Ok(())
}

/// §7: VM paths outside the shares are restricted; shared host paths mount.
pub fn s7_restricted_host_mounts(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    vm.docker(&[
        "run",
        "--rm",
        "-v",
        "/etc/docker/daemon.json:/mnt/daemon.json",
        "busybox",
        "true",
    ])?
    .failure_with("because it's configured as a restricted host mount")?;
    for src in [
        "/",
        "/etc",
        "/var/lib/docker",
        "/run/hull",
        "/run/hull/settings.json",
        "/var/lib/../lib/docker",
        "/proc",
    ] {
        let r = vm.docker(&["run", "--rm", "-v", &format!("{src}:/x"), "busybox", "true"])?;
        ensure!(
            !r.ok() && r.stderr.contains("restricted host mount"),
            "-v {src} was not refused: {r}"
        );
    }
    let r = vm.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=bind,src=/etc,dst=/x",
        "busybox",
        "true",
    ])?;
    r.failure_with("restricted host mount")
        .context("--mount type=bind,src=/etc")?;
    let r = vm.docker(&[
        "volume",
        "create",
        "-d",
        "local",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        "device=/etc",
        "sneaky",
    ])?;
    r.failure_with("restricted host mount")
        .context("a local volume binding /etc")?;
    // A shared host directory mounts normally, read and write.
    let share = vm.var("share")?;
    std::fs::write(format!("{share}/from-host"), "host-data\n")?;
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{share}:/data"),
            "busybox",
            "sh",
            "-c",
            "cat /data/from-host && echo vm-data > /data/from-vm",
        ])?
        .success()?;
    ensure!(r.out() == "host-data", "{r}");
    let back = std::fs::read_to_string(format!("{share}/from-vm"))?;
    ensure!(back == "vm-data\n", "{back}");
    unchanged(vm, &b)
}

/// §8 (default settings): socket mounts are refused, by path and by alias.
pub fn s8_socket_denied_by_default(vm: &Vm) -> Result<()> {
    for src in [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/hull/docker.sock",
    ] {
        let r = vm.docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{src}:/var/run/docker.sock"),
            "busybox",
            "true",
        ])?;
        r.failure_with(SOCKET_DENIED)
            .with_context(|| format!("-v {src}:/var/run/docker.sock"))?;
    }
    vm.docker(&[
        "run",
        "--rm",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "busybox",
        "true",
    ])?
    .failure_with(SOCKET_DENIED)?
    .failure_with("image is not in the allowed list")?;
    Ok(())
}

fn with_socket(vm: &Vm, image: &str, probe: &[&str]) -> Result<super::vm::Run> {
    let mut args = vec![
        "run",
        "--rm",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        image,
        "hull-probe",
        "http",
        "/var/run/docker.sock",
    ];
    args.extend_from_slice(probe);
    vm.docker(&args)
}

/// §8: an allowed image gets a socket (filtered by the command list); a
/// re-tagged disallowed image does not.
pub fn s8_socket_allow_list(vm: &Vm) -> Result<()> {
    let reg = vm.var("registry")?;
    let ok = format!("{reg}/hull/socket-ok:1");
    let r = with_socket(vm, &ok, &["GET", "/v1.43/containers/json"])?;
    ensure!(
        r.stdout.starts_with("ALLOWED"),
        "allowed image got no working socket: {r}"
    );
    // Re-tag attack: different content under the allowed name.
    let evil = format!("{reg}/hull/socket-ok:evil");
    vm.docker(&["tag", "evil:1", &evil])?.success()?;
    with_socket(vm, &evil, &["GET", "/_ping"])?.failure_with(SOCKET_DENIED)?;
    // A disallowed image by its own name.
    with_socket(vm, "evil:1", &["GET", "/_ping"])?.failure_with(SOCKET_DENIED)?;
    // allowDerivedImages: an image built from the allowed one passes.
    let r = with_socket(vm, "derived:1", &["GET", "/_ping"])?;
    ensure!(
        r.stdout.starts_with("ALLOWED"),
        "a derived image was refused: {r}"
    );
    Ok(())
}

const COMMAND_BLOCKED: &str = "enhanced container isolation: docker command";

/// The answer of `hull-probe http` is the gate's 403 with `message` (one of
/// them) in its body.
fn gate_refused(r: &super::vm::Run, messages: &[&str], what: &str) -> Result<()> {
    gate_refused_as(r, &["403"], messages, what)
}

/// The answer of `hull-probe http` has one of `statuses` and one of
/// `messages` in its body.
fn gate_refused_as(
    r: &super::vm::Run,
    statuses: &[&str],
    messages: &[&str],
    what: &str,
) -> Result<()> {
    let status = r.stdout.lines().next().unwrap_or("");
    ensure!(
        r.code == Some(0)
            && statuses
                .iter()
                .any(|s| status.starts_with(&format!("DENIED HTTP/1.1 {s} ")))
            && messages.iter().any(|m| r.stdout.contains(m)),
        "{what}: not the gate's {statuses:?} with {messages:?}: {r}"
    );
    Ok(())
}

/// §8: the command list is enforced at the API level, whatever the spelling.
/// The requests are ones dockerd would carry out (a push of an image the
/// test registry holds, a build with a real context), so only the gate's
/// command list stops them; the same push on the host channel goes through.
pub fn s8_command_list(vm: &Vm) -> Result<()> {
    let reg = vm.var("registry")?;
    let ok = format!("{reg}/hull/socket-ok:1");
    let push = format!("/v1.43/images/{reg}/hull/socket-ok/push?tag=1");
    for target in [
        push.clone(),
        format!("/images/{reg}/hull/socket-ok/push?tag=1"),
        format!("/v1.45/images/{reg}/hull/socket-ok/push?tag=1"),
    ] {
        let r = with_socket(vm, &ok, &["POST", &target])?;
        gate_refused(&r, &[COMMAND_BLOCKED], &format!("POST {target}"))?;
    }
    // Other spellings dockerd would route differently or not at all: the
    // gate must refuse them itself, by the command list or as a path it
    // does not take (dockerd's own 404 or 301 would carry neither message).
    for target in [
        "/v1.43/images/busybox%2Fpush",
        "/v1.43//images/busybox/push",
        "/v1.43/images/../images/busybox/push",
        "/V1.43/images/busybox/push",
    ] {
        let r = with_socket(vm, &ok, &["POST", target])?;
        gate_refused_as(
            &r,
            &["400", "403", "404"],
            &[COMMAND_BLOCKED, "{\"message\":\"hull: "],
            &format!("POST {target}"),
        )?;
    }
    // A build with a real context (a Dockerfile dockerd would build).
    for target in ["/v1.43/build?t=s8-build", "/build?networkmode=host"] {
        let r = vm.docker(&[
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            &ok,
            "sh",
            "-c",
            &format!(
                "mkdir /ctx && echo 'FROM busybox' > /ctx/Dockerfile && tar -cf /ctx.tar -C /ctx Dockerfile && \
                 hull-probe http /var/run/docker.sock POST '{target}' @/ctx.tar"
            ),
        ])?;
        gate_refused(
            &r,
            &[
                COMMAND_BLOCKED,
                "hull: docker build --network=host is not allowed",
            ],
            &format!("POST {target}"),
        )?;
    }
    // The control: dockerd does carry out the push (host channel, where the
    // container command list does not apply).
    let r = vm
        .sh(&format!(
            "curl -s -w '\\n%{{http_code}}' -H 'X-Registry-Auth: e30=' -X POST --unix-socket $HULL_HOME/docker.sock 'http://x{push}'"
        ))?
        .success()?;
    ensure!(
        r.out().ends_with("\n200") && r.out().contains("digest: sha256:"),
        "the same push on the host channel did not go through: {r}"
    );
    // Settings are not served on a container's socket.
    let r = with_socket(vm, &ok, &["GET", "/hull/v1/settings"])?;
    gate_refused(
        &r,
        &["hull: the hull API (settings included) is not available from containers"],
        "GET /hull/v1/settings",
    )?;
    Ok(())
}

/// §8: containers created through a mounted socket are hardened the same way.
pub fn s8_nested_create_hardened(vm: &Vm) -> Result<()> {
    let reg = vm.var("registry")?;
    let ok = format!("{reg}/hull/socket-ok:1");
    let evil_body = r#"{"Image":"busybox","HostConfig":{"Privileged":true,"Binds":["/:/host"],"PidMode":"host"}}"#;
    let r = with_socket(vm, &ok, &["POST", "/v1.43/containers/create", evil_body])?;
    gate_refused(
        &r,
        &[
            "hull: ",
            "hull containers can't share namespaces",
            "restricted host mount",
        ],
        "a nested create with VM binds",
    )?;
    let body = r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Runtime":"runc"}}"#;
    let r = with_socket(
        vm,
        &ok,
        &["POST", "/v1.43/containers/create?name=nested", body],
    )?;
    ensure!(
        r.stdout.starts_with("ALLOWED"),
        "a plain nested create failed: {r}"
    );
    let rt = vm
        .docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "nested"])?
        .success()?;
    vm.docker(&["rm", "-f", "nested"])?.success()?;
    ensure!(rt.out() == "hull", "nested container runtime: {rt}");
    Ok(())
}

/// §9: settings are locked: unreadable and unchangeable from containers.
pub fn s9_settings_locked(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let script = "ls /run/hull 2>/dev/null && echo SEES-RUN-HULL; cat /run/hull/settings.json 2>/dev/null && echo READ; \
        find / -name 'settings.json' -path '*hull*' 2>/dev/null | head -1; echo done";
    for (mode, r) in sh_both(vm, script)? {
        ensure!(r.out() == "done", "settings reachable with {mode}: {r}");
    }
    // The host's user sees them (read-only) through hull, with locks marked.
    let s = vm.hull_cmd(&["settings"])?.success()?;
    ensure!(s.stdout.contains("admin, locked"), "{s}");
    // No Docker API call changes them.
    for (m, t) in [("POST", "/hull/v1/settings"), ("PUT", "/hull/v1/settings")] {
        // The gate's 405 and message; a failed connection (curl's 000)
        // is a failure of the test, not a refusal.
        let r = vm
            .sh(&format!("curl -s -w '\n%{{http_code}}' -X {m} --unix-socket $HULL_HOME/docker.sock http://x{t}"))?
            .success()?;
        ensure!(
            r.out().ends_with("\n405")
                && r.out().contains("hull: this endpoint is read-only (GET)"),
            "{m} {t}: not the gate's 405: {r}"
        );
    }
    unchanged(vm, &b)
}

/// `GET /hull/v1/settings` on the host channel shows what the VM enforces.
pub fn settings_endpoint_on_host(vm: &Vm) -> Result<()> {
    let r = vm
        .sh("curl -s --unix-socket $HULL_HOME/docker.sock http://x/hull/v1/settings")?
        .success()?;
    let v: serde_json::Value = serde_json::from_str(r.out()).with_context(|| r.to_string())?;
    if v.get("enhancedContainerIsolation").is_none() {
        bail!("unexpected settings answer: {v}");
    }
    Ok(())
}

/// §5: the container's own /proc/uptime and emulated /proc/sys knobs.
pub fn s5_procfs_emulation(vm: &Vm) -> Result<()> {
    let b = baseline(vm)?;
    let vm_uptime: f64 = std::fs::read_to_string(vm.home.join("console.log"))
        .ok()
        .and_then(|c| {
            c.lines().rev().find_map(|l| {
                l.trim_start()
                    .strip_prefix('[')?
                    .split(']')
                    .next()?
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0.0);
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "busybox",
            "cut",
            "-d.",
            "-f1",
            "/proc/uptime",
        ])?
        .success()?;
    let own: f64 = r.out().parse().unwrap_or(f64::MAX);
    ensure!(
        own + 5.0 < vm_uptime,
        "container uptime {own}s is not its own (VM up {vm_uptime}s)"
    );
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "panic-a",
        "--privileged",
        "busybox",
        "sleep",
        "300",
    ])?
    .success()?;
    let set = vm.docker(&[
        "exec",
        "panic-a",
        "sh",
        "-c",
        "echo 7 > /proc/sys/kernel/panic && cat /proc/sys/kernel/panic",
    ]);
    let other = vm.docker(&["run", "--rm", "busybox", "cat", "/proc/sys/kernel/panic"]);
    vm.docker(&["rm", "-f", "panic-a"])?.success()?;
    let set = set?.success()?;
    ensure!(
        set.out() == "7",
        "kernel.panic is not writable in its own container: {set}"
    );
    let other = other?.success()?;
    ensure!(
        other.out() != "7",
        "another container sees the first one's kernel.panic: {other}"
    );
    unchanged(vm, &b)
}
