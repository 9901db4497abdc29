//! Issue 16, the parts a Docker Desktop user meets without configuring
//! anything: Docker Desktop's default shares (`$HOME`, `/tmp`), its answer
//! for a path that is not shared, `host.docker.internal`, a client's
//! top-level `Runtime`, and Docker Engine's own defaults. These run in the
//! eci suite, whose user has no settings file of their own (so the
//! defaults are in force).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

use super::vm::Vm;

/// `-v /tmp/...:/x` works with no settings: /tmp is shared by default, and
/// the container's files are root's inside and the host user's outside.
pub fn tmp_shared(vm: &Vm) -> Result<()> {
    let dir = PathBuf::from(format!("/tmp/hull-desktop-tmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{}:/x", dir.display()),
            "busybox",
            "sh",
            "-c",
            "echo from-container > /x/f && ls -ln /x/f",
        ])?
        .success()?;
    let fields: Vec<&str> = r.out().split_whitespace().collect();
    ensure!(
        fields.get(2..4) == Some(&["0", "0"][..]),
        "/x/f is not root's inside: {r}"
    );
    let m = std::fs::metadata(dir.join("f")).context("the file never reached the host")?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    ensure!(m.uid() == me, "owned by {} on the host, not {me}", m.uid());
    let _ = std::fs::remove_dir_all(&dir);
    let st = vm.hull_cmd(&["status"])?.success()?;
    ensure!(
        st.stdout.contains("/tmp -> /mnt/host/tmp (virtiofs"),
        "/tmp is not among the shares: {st}"
    );
    Ok(())
}

/// A host path in no share gets Docker Desktop's answer, with the setting
/// to change; a VM path keeps ECI's.
pub fn not_shared_message(vm: &Vm) -> Result<()> {
    let p = format!("/srv/hull-not-shared-{}", std::process::id());
    vm.docker(&["run", "--rm", "-v", &format!("{p}:/x"), "busybox", "true"])?
        .failure_with(&format!(
            "mounts denied: the path {p} is not shared from the host and is not known to Docker; share it by adding it (or a directory above it) to filesharingDirectories"
        ))?;
    vm.docker(&[
        "run",
        "--rm",
        "-v",
        "/etc/docker/daemon.json:/x",
        "busybox",
        "true",
    ])?
    .failure_with(
        "can't mount /etc/docker/daemon.json because it's configured as a restricted host mount",
    )?;
    Ok(())
}

/// A container reaches a server on the host's 127.0.0.1 as
/// `host.docker.internal`.
pub fn host_docker_internal(vm: &Vm) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let token = format!("hull-host-{}", std::process::id());
    let body = token.clone();
    let server = std::thread::spawn(move || -> Result<usize> {
        listener.set_nonblocking(false)?;
        let (mut c, _) = listener.accept()?;
        let mut req = [0u8; 2048];
        let n = c.read(&mut req)?;
        let resp = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        c.write_all(resp.as_bytes())?;
        Ok(n)
    });
    let r = vm.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        // The test image's busybox is static glibc, whose resolver cannot
        // load NSS modules (its wget dies with SIGSEGV): the address is read
        // from /etc/hosts the way every dynamic resolver reads it.
        &format!(
            "grep host.docker.internal /etc/hosts; \
             ip=$(awk '$2 == \"host.docker.internal\" {{print $1}}' /etc/hosts); \
             hull-probe tcp-get $ip:{port} /"
        ),
    ])?;
    // Unblock the server if the container never came (the test then fails).
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    let _ = server.join();
    let r = r.success()?;
    ensure!(
        r.out().contains("10.0.2.2") && r.out().contains("host.docker.internal"),
        "/etc/hosts has no host.docker.internal -> 10.0.2.2: {r}"
    );
    ensure!(
        r.out().lines().last() == Some(token.as_str()),
        "the host's server did not answer: {r}"
    );
    Ok(())
}

/// A client that sends a top-level `Runtime` (dockerd ignores it) gets its
/// container, run by hull-runtime all the same.
pub fn top_level_runtime(vm: &Vm) -> Result<()> {
    let name = format!("hull-toplevel-runtime-{}", std::process::id());
    let body = r#"{"Image":"busybox","Cmd":["true"],"Runtime":"runc"}"#;
    let r = vm
        .sh(&format!(
            "curl -s -w '\\n%{{http_code}}' --unix-socket {sock} -H 'Content-Type: application/json' -d '{body}' 'http://docker/v1.43/containers/create?name={name}'",
            sock = vm.home.join("docker.sock").display()
        ))?
        .success()?;
    ensure!(
        r.out().ends_with("201"),
        "create with a top-level Runtime: {r}"
    );
    let rt = vm
        .docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", &name])?
        .success()?;
    let _ = vm.docker(&["rm", "-f", &name]);
    ensure!(rt.out() == "hull", "runtime {rt}");
    Ok(())
}

/// Containers get Docker Engine's log configuration (json-file, no
/// options) when nobody asked for another.
pub fn engine_log_defaults(vm: &Vm) -> Result<()> {
    let name = format!("hull-logdefaults-{}", std::process::id());
    vm.docker(&["create", "--name", &name, "busybox", "true"])?
        .success()?;
    let r = vm.docker(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", &name]);
    let _ = vm.docker(&["rm", "-f", &name]);
    let r = r?.success()?;
    ensure!(
        r.out() == r#"{"Type":"json-file","Config":{}}"#,
        "log configuration differs from Docker Engine's: {r}"
    );
    Ok(())
}

/// The VM's own home lies in a default share here (`/tmp`): a container
/// that binds the share, recursively or not, privileged or not, finds an
/// empty read-only directory in its place, never the VM's disk or sockets.
pub fn vm_home_covered(vm: &Vm) -> Result<()> {
    let home = vm.home.canonicalize()?;
    ensure!(
        home.join("data.qcow2").exists() && home.join("state.json").exists(),
        "the VM's disk and state are not where the test looks: {}",
        home.display()
    );
    let rel = home
        .strip_prefix("/tmp")
        .context("the test VM's home is not under /tmp")?
        .display()
        .to_string();
    let script = format!(
        "ls -A /t/{rel} | wc -l; cat /t/{rel}/state.json; touch /t/{rel}/x; \
         umount /t/{rel} || umount -l /t/{rel}; ls -A /t/{rel} | wc -l"
    );
    for how in [
        vec!["-v", "/tmp:/t"],
        vec![
            "--mount",
            "type=bind,src=/tmp,dst=/t,bind-recursive=disabled",
        ],
    ] {
        let mut args = vec!["run", "--rm", "--privileged"];
        args.extend(how.iter().copied());
        args.extend(["busybox", "sh", "-c", &script]);
        let r = vm.docker(&args)?;
        let counts: Vec<&str> = r.stdout.split_whitespace().collect();
        ensure!(
            counts == ["0", "0"],
            "the VM's home is not empty inside: {r}"
        );
        for want in [
            format!("cat: can't open '/t/{rel}/state.json': No such file or directory"),
            format!("touch: /t/{rel}/x: Read-only file system"),
            "umount: can't unmount".to_string(),
        ] {
            ensure!(r.stderr.contains(&want), "expected {want:?}: {r}");
        }
    }
    Ok(())
}

pub const SCENARIOS: &[(&str, super::Par)] = &[
    ("desktop/vm-home-covered", vm_home_covered),
    ("desktop/tmp-shared", tmp_shared),
    ("desktop/not-shared-message", not_shared_message),
    ("desktop/host-docker-internal", host_docker_internal),
    ("desktop/top-level-runtime", top_level_runtime),
    ("desktop/engine-log-defaults", engine_log_defaults),
    ("desktop/registry-login-push-pull", registry_login_push_pull),
    ("desktop/core-dump-in-cwd", core_dump_in_cwd),
    ("desktop/registry-mirror", registry_mirror),
    ("desktop/dns-through-host", dns_through_host),
];

/// A registry on the host's 127.0.0.1 that wants a login, reached as Docker
/// Desktop users reach it, at `host.docker.internal:<port>` (an insecure
/// registry in the user's engine settings): refused before `docker login`,
/// which stores the credentials on the host as the CLI does; push lands
/// in the host's registry store; pull gets the pushed digest back; after
/// `docker logout` the registry refuses again.
pub fn registry_login_push_pull(vm: &Vm) -> Result<()> {
    let reg = vm.var("login_registry")?;
    let store = std::path::PathBuf::from(vm.var("login_store")?);
    let image = format!("{reg}/hull/login-test:1");
    vm.docker(&["tag", "busybox", &image])?.success()?;
    // The wall before login: the registry's own 401, relayed by the engine.
    vm.docker(&["push", &image])?
        .failure_with("no basic auth credentials")?;
    let login = vm
        .docker_stdin(
            &["login", reg, "--username", "hull", "--password-stdin"],
            b"hull-secret\n",
        )?
        .success()
        .context("docker login to the host's registry")?;
    ensure!(
        login.out().contains("Login Succeeded"),
        "docker login: {login}"
    );
    let cfg_path = vm.home.join("docker-config").join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?,
    )?;
    ensure!(
        cfg["auths"][reg].is_object(),
        "docker login left no credentials for {reg} in the host's {}: {cfg}",
        cfg_path.display()
    );
    let digest = push(vm, &image)?;
    let repo = store.join("docker/registry/v2/repositories/hull/login-test");
    ensure!(
        repo.is_dir(),
        "the push did not land in the host's registry store ({} is missing)",
        repo.display()
    );
    vm.docker(&["rmi", &image])?.success()?;
    vm.docker(&["pull", &image])?.success()?;
    let digests = vm
        .docker(&["image", "inspect", "-f", "{{json .RepoDigests}}", &image])?
        .success()?;
    ensure!(
        digests
            .out()
            .contains(&format!("{reg}/hull/login-test@{digest}")),
        "the pulled image does not carry the pushed digest {digest}: {digests}"
    );
    vm.docker(&["logout", reg])?.success()?;
    vm.docker(&["rmi", &image])?.success()?;
    vm.docker(&["pull", &image])?
        .failure_with("no basic auth credentials")?;
    Ok(())
}

/// A process that crashes leaves `core` in its cwd, a volume here, as under
/// Docker Engine (core_pattern "core", LimitCORE=infinity inherited unless
/// `--ulimit core=` says otherwise): with `--ulimit core=-1`, and with no
/// ulimit at all; `--ulimit core=0` leaves none, which shows the dump is the
/// crash's own and the limit is honoured.
pub fn core_dump_in_cwd(vm: &Vm) -> Result<()> {
    let vol = format!("hull-core-{}", std::process::id());
    let crash = "sleep 60 & kill -SEGV $!; wait $!; echo status=$?; \
                 cat /proc/sys/kernel/core_pattern; \
                 if [ -f core ]; then echo size=$(wc -c < core); \
                 od -A n -t x1 -N 18 core | tr -s ' \\n' ' '; echo; \
                 ls -ln core; rm core; else echo no-core; fi";
    let run = |ulimit: Option<&str>| -> Result<String> {
        let mut args = vec!["run", "--rm", "-v"];
        let bind = format!("{vol}:/w");
        args.push(&bind);
        args.extend(["-w", "/w"]);
        if let Some(u) = ulimit {
            args.extend(["--ulimit", u]);
        }
        args.extend(["busybox", "sh", "-c", crash]);
        Ok(vm.docker(&args)?.success()?.out().to_string())
    };
    let result = (|| -> Result<()> {
        for ulimit in [Some("core=-1"), None] {
            let out = run(ulimit)?;
            let what = ulimit.unwrap_or("no --ulimit");
            // 128 + SIGSEGV (11): the crash really happened.
            ensure!(
                out.contains("status=139") && out.lines().any(|l| l == "core"),
                "{what}: no SIGSEGV, or core_pattern is not \"core\": {out}"
            );
            // An ELF core (magic, then e_type ET_CORE = 4 at byte 16),
            // owned by the container's root and not empty.
            let hex: Vec<&str> = out
                .lines()
                .find(|l| l.trim_start().starts_with("7f 45 4c 46"))
                .with_context(|| format!("{what}: no ELF core in the cwd: {out}"))?
                .split_whitespace()
                .collect();
            ensure!(
                hex.get(16) == Some(&"04") && hex.get(17) == Some(&"00"),
                "{what}: the core is not an ELF core file (e_type {:?}): {out}",
                hex.get(16..18)
            );
            ensure!(
                out.lines().any(|l| l.starts_with("-rw-------")
                    && l.contains(" 0 ")
                    && l.ends_with(" core")),
                "{what}: the core is not a 0600 file of the container's root: {out}"
            );
        }
        let out = run(Some("core=0"))?;
        ensure!(
            out.contains("status=139") && out.contains("no-core"),
            "--ulimit core=0: a core was written, or no crash: {out}"
        );
        Ok(())
    })();
    let _ = vm.docker(&["volume", "rm", "-f", &vol]);
    result
}

/// `docker push image`: the digest it printed.
fn push(vm: &Vm, image: &str) -> Result<String> {
    let pushed = vm.docker(&["push", image])?.success()?;
    Ok(pushed
        .out()
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .with_context(|| format!("push printed no digest: {pushed}"))?
        .to_string())
}

/// The user's engine settings name a Docker Hub mirror (the suite's host
/// registry): `docker info` lists it, and a docker.io image that exists only
/// in the mirror pulls with the mirror's digest. Nothing on this machine
/// resolves registry-1.docker.io, so that pull can only have come through
/// the mirror; a name the mirror lacks falls through to Docker Hub and fails
/// there, as under Docker Engine.
pub fn registry_mirror(vm: &Vm) -> Result<()> {
    let reg = vm.var("registry")?;
    let name = format!("hull-mirrored-{}", std::process::id());
    let in_mirror = format!("{reg}/library/{name}:1");
    let result = (|| -> Result<()> {
        let info = vm
            .docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"])?
            .success()?;
        ensure!(
            info.out().contains(&format!("http://{reg}/")),
            "docker info does not list the user's mirror http://{reg}/: {info}"
        );
        vm.docker(&["tag", "busybox", &in_mirror])?.success()?;
        let digest = push(vm, &in_mirror)?;
        vm.docker(&["rmi", &in_mirror])?.success()?;
        vm.docker(&["pull", &format!("{name}:1")])?
            .success()
            .context("a docker.io pull the mirror can serve")?;
        let digests = vm
            .docker(&[
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                &format!("{name}:1"),
            ])?
            .success()?;
        ensure!(
            digests.out().contains(&format!("{name}@{digest}")),
            "the pulled image does not carry the mirror's digest {digest}: {digests}"
        );
        vm.docker(&["pull", &format!("{name}-absent:1")])?
            .failure_with("registry-1.docker.io")?;
        Ok(())
    })();
    let _ = vm.docker(&["rmi", "-f", &in_mirror, &format!("{name}:1")]);
    result
}

/// Containers resolve names through the host's resolver, on the default
/// bridge (the VM's resolv.conf: QEMU's DNS at 10.0.2.3, which asks the
/// host's resolver) and on a user network (the engine's embedded DNS at
/// 127.0.0.11, forwarding to the same). The answers are the host's own.
pub fn dns_through_host(vm: &Vm) -> Result<()> {
    use std::net::ToSocketAddrs;
    let name = "deb.debian.org";
    let mut want: Vec<String> = (name, 0)
        .to_socket_addrs()
        .with_context(|| format!("the host itself cannot resolve {name}"))?
        .filter(|a| a.is_ipv4())
        .map(|a| a.ip().to_string())
        .collect();
    want.sort();
    want.dedup();
    ensure!(
        !want.is_empty(),
        "the host resolves {name} to no IPv4 address"
    );
    let absent = format!("hull-absent-{}.invalid", std::process::id());
    let net = format!("hull-dns-{}", std::process::id());
    vm.docker(&["network", "create", &net])?.success()?;
    let script = format!(
        "grep nameserver /etc/resolv.conf; nslookup -type=a {name}; \
         nslookup -type=a {absent}; echo absent-rc=$?"
    );
    let result = (|| -> Result<()> {
        for (network, server) in [("bridge", "10.0.2.3"), (net.as_str(), "127.0.0.11")] {
            let r = vm
                .docker(&[
                    "run",
                    "--rm",
                    "--network",
                    network,
                    "busybox",
                    "sh",
                    "-c",
                    &script,
                ])?
                .success()?;
            ensure!(
                r.out().lines().next() == Some(&format!("nameserver {server}")),
                "{network}: the container's resolver is not {server}: {r}"
            );
            // The server's own line carries a port ("Address: 10.0.2.3:53").
            let mut got: Vec<String> = r
                .out()
                .lines()
                .filter_map(|l| l.strip_prefix("Address:"))
                .map(str::trim)
                .filter(|a| !a.contains(':'))
                .map(str::to_string)
                .collect();
            got.sort();
            got.dedup();
            ensure!(
                got == want,
                "{network}: {name} resolved to {got:?} in the container, {want:?} on the host: {r}"
            );
            ensure!(
                r.out().contains("NXDOMAIN") && !r.out().contains("absent-rc=0"),
                "{network}: {absent} did not fail with NXDOMAIN: {r}"
            );
        }
        Ok(())
    })();
    let _ = vm.docker(&["network", "rm", &net]);
    result
}
