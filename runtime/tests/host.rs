//! Host-tier integration tests: hull-runtime driven through its CLI, as root,
//! on this machine (no VM). cgroup v2 resource limits are VM-tier.

mod common;

use common::*;
use serde_json::json;

#[test]
fn lifecycle_create_start_exec_pause_update_kill_delete() {
    host_tier("lifecycle");
    let env = Env::new();
    let b = env.bundle("b", &config(&["sleep", "1000"]));
    let pidfile = env.dir.path().join("c.pid");
    env.ok(&[
        "create",
        "-b",
        b.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        "life",
    ]);
    let st = env.state("life");
    assert_eq!(st["status"], "created");
    let pid: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(st["pid"], pid);
    env.ok(&["start", "life"]);
    assert_eq!(env.state("life")["status"], "running");
    let out = env.ok(&["exec", "life", "sh", "-c", "echo hi; hostname"]);
    assert_eq!(out, "hi\nhulltest\n");
    // exec with a process.json, detached, with a pid file (as the shim does it)
    let pj = env.dir.path().join("p.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(
            &json!({"args": ["sleep", "100"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"], "terminal": false}),
        )
        .unwrap(),
    )
    .unwrap();
    let epid = env.dir.path().join("e.pid");
    env.ok(&[
        "exec",
        "--process",
        pj.to_str().unwrap(),
        "--detach",
        "--pid-file",
        epid.to_str().unwrap(),
        "life",
    ]);
    let e: i32 = std::fs::read_to_string(&epid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{e}")).exists());
    let ps: Vec<i32> = serde_json::from_str(&env.ok(&["ps", "--format", "json", "life"])).unwrap();
    assert!(
        ps.contains(&(pid as i32)) && ps.contains(&e),
        "ps {ps:?} lacks {pid} or {e}"
    );
    env.ok(&["pause", "life"]);
    assert_eq!(env.state("life")["status"], "paused");
    env.ok(&["resume", "life"]);
    assert_eq!(env.state("life")["status"], "running");
    let res = env.dir.path().join("r.json");
    std::fs::write(
        &res,
        r#"{"pids": {"limit": 100}, "memory": {"limit": 67108864}}"#,
    )
    .unwrap();
    env.ok(&["update", "--resources", res.to_str().unwrap(), "life"]);
    let o = env.run(&["delete", "life"]);
    assert!(
        !o.status.success(),
        "delete of a running container must fail"
    );
    env.ok(&["kill", "life", "KILL"]);
    for _ in 0..200 {
        if env.state("life")["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(env.state("life")["status"], "stopped");
    let o = env.run(&["kill", "life", "TERM"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("container not running"));
    env.ok(&["delete", "life"]);
    assert!(!env.run(&["state", "life"]).status.success());
    let table = std::fs::read_to_string(env.ids.join("ranges.json")).unwrap();
    assert!(!table.contains("life"), "range not freed: {table}");
    env.ok(&["delete", "--force", "life"]);
}

#[test]
fn concurrent_containers_get_distinct_exclusive_ranges() {
    host_tier("distinct ranges");
    let env = Env::new();
    let b = env.bundle("b", &config(&["sleep", "1000"]));
    let bs = b.to_str().unwrap();
    env.ok(&["create", "-b", bs, "r1"]);
    env.ok(&["create", "-b", bs, "r2"]);
    env.ok(&["start", "r1"]);
    env.ok(&["start", "r2"]);
    let m1 = env.ok(&[
        "exec",
        "r1",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]);
    let m2 = env.ok(&[
        "exec",
        "r2",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]);
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(norm(&m1), "0 100000 65536 0 100000 65536");
    assert_eq!(norm(&m2), "0 165536 65536 0 165536 65536");
    // Nothing in a container runs as a VM id below the ranges.
    let st = env.state("r1");
    let status = std::fs::read_to_string(format!("/proc/{}/status", st["pid"])).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "100000"),
        "{uid_line}"
    );
    // Exhaustion is a clear error.
    let mut full = Env::new();
    full.max_ranges = Some(1);
    let fb = full.bundle("b", &config(&["sleep", "1000"]));
    full.ok(&["create", "-b", fb.to_str().unwrap(), "x1"]);
    let o = full.run(&["create", "-b", fb.to_str().unwrap(), "x2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ranges exhausted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    full.ok(&["delete", "-f", "x1"]);
    // The failed create left nothing behind, and x2 fits now.
    full.ok(&["create", "-b", fb.to_str().unwrap(), "x2"]);
    full.ok(&["delete", "-f", "x2"]);
    env.ok(&["delete", "-f", "r1"]);
    env.ok(&["delete", "-f", "r2"]);
}

#[test]
fn files_are_root_owned_inside_and_stay_unshifted_on_disk() {
    host_tier("id shifting");
    let env = Env::new();
    let vol = env.dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("hostfile"), "x").unwrap();
    let mut c = config(&[
        "sh",
        "-c",
        "echo owner=$(stat -c %u:%g /bin/busybox); echo vol=$(stat -c %u /data/hostfile); \
         touch /data/made-inside /made-in-root; echo done=$?",
    ]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": vol, "options": ["rbind", "rw"]
    }));
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "own", &b);
    assert!(ok, "{err}");
    let kv = kv(&out);
    assert_eq!(kv["owner"], "0:0", "{out}");
    assert_eq!(kv["vol"], "0", "{out}");
    assert_eq!(kv["done"], "0", "{out}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(vol.join("made-inside")).unwrap().uid(),
        0,
        "volume file shifted back to 0 on disk"
    );
    assert_eq!(
        std::fs::metadata(b.join("rootfs/made-in-root"))
            .unwrap()
            .uid(),
        0
    );
}

#[test]
fn overlay_rootfs_is_rebuilt_on_idmapped_layers() {
    host_tier("overlay rootfs");
    let env = Env::new();
    let d = env.dir.path();
    for s in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(d.join(s)).unwrap();
    }
    make_rootfs(&d.join("lower"));
    std::fs::write(d.join("lower/etc/f"), "lower\n").unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        d.join("lower").display(),
        d.join("upper").display(),
        d.join("work").display()
    );
    nix::mount::mount(
        Some("overlay"),
        &d.join("merged"),
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .expect("mount overlay");
    let mut c = config(&["sh", "-c", "echo more >> /etc/f && touch /new && echo uid=$(stat -c %u /new) && grep ' / ' /proc/self/mountinfo"]);
    c["root"]["path"] = json!(d.join("merged"));
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "ovl", &b);
    let _ = nix::mount::umount2(&d.join("merged"), nix::mount::MntFlags::MNT_DETACH);
    assert!(ok, "{err}");
    assert!(out.contains("uid=0"), "{out}");
    assert!(out.contains("overlay"), "root is an overlay: {out}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::read_to_string(d.join("upper/etc/f")).unwrap(),
        "lower\nmore\n"
    );
    assert_eq!(std::fs::metadata(d.join("upper/new")).unwrap().uid(), 0);
    assert_eq!(
        std::fs::read_to_string(d.join("lower/etc/f")).unwrap(),
        "lower\n",
        "lower untouched"
    );
}

/// The kernel's lock: with mount calls let through seccomp (--guard=none) and
/// CAP_SYS_ADMIN in the container, initial mounts still cannot be changed.
#[test]
fn initial_mounts_are_locked_even_with_cap_sys_admin() {
    host_tier("locked mounts");
    let env = Env::new();
    let vol = env.dir.path().join("rovol");
    std::fs::create_dir(&vol).unwrap();
    let script = "\
        grep -q '^CapEff:.*[1-9a-f]' /proc/self/status; \
        mount -o remount,rw /ro 2>/dev/null; echo remount_ro_volume=$?; \
        mount --bind /ro /mnt && mount -o remount,bind,rw /mnt 2>/dev/null; echo remount_bind_of_ro=$?; \
        touch /ro/x 2>/dev/null; echo write_ro_volume=$?; \
        mount -o remount,rw / 2>/dev/null; echo remount_root=$?; \
        umount /proc/keys 2>/dev/null; echo umount_masked=$?; \
        umount -l /proc 2>/dev/null; echo umount_proc=$?; \
        umount -l /sys 2>/dev/null; echo umount_sys=$?; \
        umount -l / 2>/dev/null; echo umount_root=$?; \
        mount -o remount,rw /proc/sys 2>/dev/null; echo remount_procsys=$?; \
        mount -o remount,rw /sys 2>/dev/null; echo remount_sys=$?; \
        unshare -m sh -c 'mount -o remount,rw /ro 2>/dev/null; echo unshare_remount=$?'; \
        mkdir -p /tmp/own && mount -t tmpfs none /tmp/own && touch /tmp/own/x && umount /tmp/own; echo own_tmpfs_remount=$?";
    let mut c = config(&["sh", "-c", script]);
    let caps = all_caps();
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    c["linux"]["seccomp"] = docker_like_seccomp(true);
    c["root"]["readonly"] = json!(true);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/ro", "type": "bind", "source": vol, "options": ["rbind", "ro"]
    }));
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]
    }));
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "lock", &b);
    assert!(ok, "{err}");
    let r = kv(&out);
    for k in [
        "remount_ro_volume",
        "remount_bind_of_ro",
        "write_ro_volume",
        "remount_root",
        "umount_masked",
        "umount_proc",
        "umount_sys",
        "umount_root",
        "remount_procsys",
        "remount_sys",
        "unshare_remount",
    ] {
        assert_ne!(
            r.get(k).map(String::as_str),
            Some("0"),
            "{k} succeeded inside the container:\n{out}"
        );
        assert!(r.contains_key(k), "{k} missing:\n{out}\n{err}");
    }
    assert_eq!(
        r["own_tmpfs_remount"], "0",
        "the container's own mounts stay its own:\n{out}\n{err}"
    );
}

#[test]
fn privileged_is_confined_to_the_container() {
    host_tier("privileged confinement");
    let env = Env::new();
    let script = "\
        echo uidmap=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'); \
        ls /dev/vda /dev/kmsg /dev/mem 2>/dev/null; echo hostdevs=$?; \
        mknod /tmp/blk b 254 0 2>/dev/null; echo mknod=$?; \
        echo 1 > /proc/sys/kernel/sysrq 2>/dev/null; echo sysctl_global=$?; \
        echo x > /proc/sysrq-trigger 2>/dev/null; echo sysrq=$?; \
        echo keys=$(cat /proc/keys | wc -l); \
        echo firmware=$(ls /sys/firmware | wc -l); \
        echo 1 > /sys/kernel/profiling 2>/dev/null; echo sysfs_write=$?; \
        hostname inner && echo hostname=$(hostname); \
        grep -q CAP_SYS_ADMIN /dev/null; echo capeff=$(grep CapEff /proc/self/status | cut -f2)";
    let b = env.bundle("b", &privileged_config(&["sh", "-c", script]));
    let (ok, out, err) = run_to_end(&env, "priv", &b);
    assert!(ok, "{err}");
    let r = kv(&out);
    assert_eq!(r["uidmap"], "0 100000 65536", "{out}");
    assert_ne!(r["hostdevs"], "0", "no host devices: {out}");
    assert_ne!(r["mknod"], "0", "{out}");
    assert_ne!(r["sysctl_global"], "0", "{out}");
    assert_ne!(r["sysrq"], "0", "{out}");
    assert_eq!(r["keys"], "0", "{out}");
    assert_eq!(r["firmware"], "0", "{out}");
    assert_ne!(r["sysfs_write"], "0", "{out}");
    assert_eq!(r["hostname"], "inner");
    assert_ne!(
        r["capeff"], "0000000000000000",
        "all caps inside its own userns: {out}"
    );
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(host.to_string_lossy(), "inner");
}

fn refused(env: &Env, id: &str, c: &serde_json::Value, needle: &str) {
    let b = env.bundle(id, c);
    let o = env.run(&["create", "-b", b.to_str().unwrap(), id]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{id}: hostile bundle was accepted");
    assert!(err.contains(needle), "{id}: error {err:?} lacks {needle:?}");
    assert!(!env.root().join(id).exists(), "{id}: state left behind");
}

/// `start` and `delete` read only the hooks of the config `create` saved:
/// poststart and poststop still run, once each, with the container's state
/// on stdin (the OCI contract), and the bundle may be gone by then.
#[test]
fn poststart_and_poststop_hooks_run_from_the_saved_config() {
    host_tier("hooks");
    let env = Env::new();
    let out = env.dir.path().join("hooks");
    std::fs::create_dir(&out).unwrap();
    let hook = |name: &str| {
        json!({"path": "/bin/sh",
               "args": ["sh", "-c", format!("cat >> {}/{name}", out.display())]})
    };
    let mut c = config(&["sleep", "1000"]);
    c["hooks"] = json!({"poststart": [hook("poststart")], "poststop": [hook("poststop")]});
    let b = env.bundle("hooked", &c);
    env.ok(&["create", "-b", b.to_str().unwrap(), "hooked"]);
    assert!(!out.join("poststart").exists(), "poststart ran at create");
    // Only the saved copy is left to read from.
    std::fs::remove_file(b.join("config.json")).unwrap();
    env.ok(&["start", "hooked"]);
    let post = std::fs::read_to_string(out.join("poststart")).expect("poststart ran");
    let st: serde_json::Value = serde_json::from_str(&post).expect("state JSON on stdin");
    assert_eq!(st["id"], "hooked");
    assert_eq!(st["status"], "running");
    env.ok(&["delete", "--force", "hooked"]);
    let stop = std::fs::read_to_string(out.join("poststop")).expect("poststop ran");
    let st: serde_json::Value = serde_json::from_str(&stop).expect("state JSON on stdin");
    assert_eq!(st["id"], "hooked");
    assert_eq!(st["status"], "stopped");
}

/// The init compiles its seccomp filter early, while the mount builder
/// works: a filter that does not compile must still fail the create with
/// its own reason (here libseccomp's refusal of an argument index past the
/// sixth), not with what an init gone too early breaks (the mount builder
/// losing the container's namespaces).
#[test]
fn a_seccomp_profile_the_init_cannot_compile_fails_create_with_its_reason() {
    host_tier("early init failure");
    let env = Env::new();
    env.rootfs();
    let mut c = config(&["true"]);
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 7, "value": 0, "op": "SCMP_CMP_EQ"}]}]
    });
    refused(&env, "badseccomp", &c, "rule for chmod");
    // The runtime's own error line says it too (the init also prints its
    // reason to stderr, so the needle alone would not show what P reported).
    let b = env.bundle("badseccomp2", &c);
    let o = env.run(&["create", "-b", b.to_str().unwrap(), "badseccomp2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.contains(" error: ") && l.contains("rule for chmod")),
        "the runtime did not report the init's reason: {err:?}"
    );
}

#[test]
fn hostile_bundles_are_refused_with_clear_errors() {
    host_tier("hostile bundles");
    let env = Env::new();
    env.rootfs();
    // Symlinked rootfs (here: to the VM's root).
    let mut c = config(&["true"]);
    c["root"]["path"] = json!("rootlink");
    let b = env.bundle("symroot", &c);
    std::os::unix::fs::symlink("/", b.join("rootlink")).unwrap();
    let o = env.run(&["create", "-b", b.to_str().unwrap(), "symroot"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("symlink"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // `..` in a destination.
    let mut c = config(&["true"]);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/mnt/../../../etc", "type": "tmpfs", "source": "x"}));
    refused(&env, "dotdot", &c, "contains '..'");
    // A relative symlink climbing out of the rootfs on the way to a target.
    let c = {
        let mut c = config(&["true"]);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/esc/x", "type": "tmpfs", "source": "x"}));
        c
    };
    let b = env.bundle("escape", &c);
    std::os::unix::fs::symlink("../../../../../../tmp", b.join("rootfs/esc")).unwrap();
    let o = env.run(&["create", "-b", b.to_str().unwrap(), "escape"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("escapes the rootfs"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // /proc/self/fd as a bind source.
    let mut c = config(&["true"]);
    c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/x", "type": "bind", "source": "/proc/self/fd/3", "options": ["bind"]}));
    refused(
        &env,
        "magicsrc",
        &c,
        "refusing bind source /proc/self/fd/3 for /x: it is outside the mount roots",
    );
    // CVE-2024-21626: a cwd through a leaked fd.
    let mut c = config(&["true"]);
    c["process"]["cwd"] = json!("/proc/self/fd/7");
    refused(&env, "fdcwd", &c, "cwd /proc/self/fd/7");
    // Host namespaces (ECI §3), missing or by path to the VM's own.
    let mut c = config(&["true"]);
    c["linux"]["namespaces"] = json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]);
    refused(&env, "pidhost", &c, "can't share namespaces [pid] with the host (because they use the linux user-namespace for isolation)");
    let mut c = config(&["true"]);
    c["linux"]["namespaces"][1] =
        json!({"type": "network", "path": format!("/proc/{}/ns/net", std::process::id())});
    refused(
        &env,
        "nethost",
        &c,
        "can't share a network namespace with the host",
    );
    let mut c = config(&["true"]);
    c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "network"}, {"type": "mount"}]);
    refused(&env, "ipcuts", &c, "[ipc uts cgroup]");
    // Non-namespaced sysctls and filesystems the container may not have.
    let mut c = config(&["true"]);
    c["linux"]["sysctl"] = json!({"kernel.panic": "1"});
    refused(&env, "sysctl", &c, "kernel.panic is not namespaced");
    let mut c = config(&["true"]);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/d", "type": "devtmpfs", "source": "devtmpfs"}));
    refused(&env, "devtmpfs", &c, "\"devtmpfs\" at /d is not allowed");
    // A systemd cgroup path.
    let mut c = config(&["true"]);
    c["linux"]["cgroupsPath"] = json!("system.slice:docker:abc");
    refused(&env, "systemd", &c, "systemd-style cgroupsPath");
    let o = env.run(&["--systemd-cgroup", "state", "x"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--systemd-cgroup is not supported"));
    // A missing program fails create, as with runc.
    let c = config(&["no-such-program"]);
    refused(&env, "noprog", &c, "executable file not found in $PATH");
}

#[test]
fn absolute_symlinks_in_targets_stay_inside_the_rootfs() {
    host_tier("symlink confinement");
    let env = Env::new();
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut c = config(&["sh", "-c", "ls -d /var/run/x"]);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/var/run/x", "type": "tmpfs", "source": "x"}));
    let b = env.bundle("b", &c);
    std::fs::create_dir_all(b.join("rootfs/var")).unwrap();
    // In the VM's view this points outside; inside it means the rootfs's own dir.
    std::os::unix::fs::symlink(&outside, b.join("rootfs/var/run")).unwrap();
    let (ok, _out, err) = run_to_end(&env, "abs", &b);
    assert!(ok, "{err}");
    assert!(
        !outside.join("x").exists(),
        "a mount target escaped the rootfs"
    );
    assert!(b
        .join("rootfs")
        .join(outside.strip_prefix("/").unwrap())
        .join("x")
        .exists());
}

#[test]
fn no_fds_leak_into_the_container() {
    host_tier("fd leaks");
    let env = Env::new();
    let b = env.bundle(
        "b",
        &config(&["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]),
    );
    let (ok, out, err) = run_to_end(&env, "fds", &b);
    assert!(ok, "{err}");
    // 0 1 2 and the fd ls itself uses to read the directory.
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert!(fds.len() <= 4, "leaked fds: {out}");
}

#[test]
fn guard_is_required_by_default_and_fails_closed() {
    host_tier("guard fail-closed");
    let mut env = Env::new();
    env.guard = "required";
    let b = env.bundle("b", &config(&["true"]));
    let o = env
        .cmd(&["create", "-b", b.to_str().unwrap(), "g1"])
        .env("HULL_GUARD_SOCKET", env.dir.path().join("no-guard.sock"))
        .output()
        .unwrap();
    let _ = run_cmd;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("fail closed") && err.contains("no-guard.sock"),
        "{err}"
    );
    assert!(!env.root().join("g1").exists());
}

/// A stand-in guard: takes the listener with the container's identity,
/// acknowledges, and (like a crashed guard) closes it. The container's mount
/// calls then fail with ENOSYS instead of running unvetted.
#[test]
fn listener_goes_to_the_guard_and_trapped_calls_fail_when_it_is_gone() {
    host_tier("guard handoff");
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let mut env = Env::new();
    env.guard = "required";
    let sock = env.dir.path().join("guard.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // The runtime opens its register connection early (to fail closed) and
    // asks for its id range on another: serve each connection on its own.
    let (tx, rx) = std::sync::mpsc::channel::<(String, usize)>();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                let Ok(msg) = nix::sys::socket::recvmsg::<()>(
                    conn.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    nix::sys::socket::MsgFlags::empty(),
                ) else {
                    return;
                };
                let mut fds = vec![];
                for c in msg.cmsgs().unwrap() {
                    if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
                        fds.extend(f);
                    }
                }
                let n = msg.bytes;
                let line = String::from_utf8_lossy(&buf[..n]).to_string();
                let mut w = &conn;
                if line.contains("\"allocate_range\"") {
                    let _ =
                        w.write_all(b"{\"ok\":true,\"range\":{\"start\":100000,\"len\":65536}}\n");
                    return;
                }
                let _ = w.write_all(b"{\"ok\":true}\n");
                for f in &fds {
                    nix::unistd::close(*f).unwrap();
                }
                if line.contains("\"register\"") {
                    let _ = tx.send((line, fds.len()));
                }
                let _ = std::io::BufReader::new(&conn).lines().next();
            });
        }
    });
    let mut c = config(&[
        "sh",
        "-c",
        "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>&1; echo rc=$?",
    ]);
    let caps = all_caps();
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    c["linux"]["seccomp"] = docker_like_seccomp(true);
    let b = env.bundle("b", &c);
    let mut cmd = env.cmd(&["run", "-b", b.to_str().unwrap(), "gh"]);
    cmd.env("HULL_GUARD_SOCKET", &sock);
    let o = run_cmd(cmd, env.dir.path());
    let (line, nfds) = rx.recv().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(nfds, 1, "exactly one listener fd");
    let req: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(req["op"], "register");
    assert_eq!(req["container"]["id"], "gh");
    assert_eq!(req["container"]["kind"], "init");
    assert_eq!(req["container"]["uid_range"]["start"], 100000);
    assert!(req["container"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/proc/keys"));
    assert!(
        out.contains("not implemented") || out.contains("Function not implemented"),
        "mount must fail with ENOSYS: {out}"
    );
    assert!(!out.contains("rc=0"), "{out}");
}

#[test]
fn features_and_state_have_runc_shape() {
    host_tier("features");
    let env = Env::new();
    let f: serde_json::Value = serde_json::from_str(&env.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["cgroup"]["v2"], true);
    assert!(f["linux"]["seccomp"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "SCMP_ACT_NOTIFY"));
    let b = env.bundle("b", &config(&["sleep", "100"]));
    env.ok(&["create", "-b", b.to_str().unwrap(), "shape"]);
    let st = env.state("shape");
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
    ] {
        assert!(st.get(k).is_some(), "state lacks {k}: {st}");
    }
    env.ok(&["delete", "shape"]);
    // Errors reach the shim as runc-style JSON lines in --log.
    let log = env.dir.path().join("log.json");
    let o = env.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container nope does not exist");
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
}

/// ECI §3: `--userns=host` (a user namespace path, identity mappings) is
/// ignored: the container still gets its own namespace and range.
#[test]
fn host_user_namespace_requests_are_ignored() {
    host_tier("userns=host ignored");
    let env = Env::new();
    let mut c = config(&["sh", "-c", "echo map=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'); echo id=$(id -u):$(id -g):$(id -G)"]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": format!("/proc/{}/ns/user", std::process::id())}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 4294967295u64}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 4294967295u64}]);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 1000]});
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "uh", &b);
    assert!(ok, "{err}");
    let r = kv(&out);
    assert_eq!(r["map"], "0 100000 65536", "{out}");
    assert_eq!(r["id"], "1000:1000:1000 5", "{out}");
}

/// An environment with an empty directory to mount over a container's /dev
/// (a shared volume's stand-in) and a file outside it that must stay
/// "untouched".
fn dev_volume_env() -> (Env, std::path::PathBuf, std::path::PathBuf) {
    let env = Env::new();
    let vol = env.dir.path().join("devvol");
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(&outside, "untouched").unwrap();
    (env, vol, outside)
}

fn mount_over_dev(c: &mut serde_json::Value, vol: &std::path::Path) {
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev", "type": "bind", "source": vol, "options": ["rbind", "rw"]
    }));
}

#[test]
fn a_volume_over_dev_gets_the_vms_own_nodes_and_its_content_is_kept() {
    host_tier("volume over /dev");
    let (env, vol, outside) = dev_volume_env();
    // What a hostile earlier container could leave in a shared volume
    // (CVE-2025-31133's shape): device names as symlinks and plain files.
    std::os::unix::fs::symlink(&outside, vol.join("null")).unwrap();
    std::fs::write(vol.join("zero"), "keep").unwrap();
    let mut c = config(&[
        "sh",
        "-c",
        "echo overwrite > /dev/null; echo null=$(stat -L -c %F,%t,%T /dev/null); \
         echo zero=$(head -c 3 /dev/zero | od -An -tx1 | tr -d ' '); echo done",
    ]);
    mount_over_dev(&mut c, &vol);
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "devvol", &b);
    assert!(ok, "{err}");
    let kv = kv(&out);
    assert_eq!(kv["null"], "character special file,1,3", "{out}");
    assert_eq!(kv["zero"], "000000", "{out}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    assert_eq!(std::fs::read_to_string(vol.join("zero")).unwrap(), "keep");
    use std::os::unix::fs::MetadataExt;
    let null = std::fs::metadata("/dev/null").unwrap();
    assert_eq!(
        (null.uid(), null.gid()),
        (0, 0),
        "the VM's /dev/null changed owner"
    );
}

#[test]
fn a_dev_volume_rewritten_while_containers_start_never_redirects_a_device() {
    host_tier("racing /dev volume");
    let (env, vol, outside) = dev_volume_env();
    // Another container sharing the volume, flipping device names between a
    // link out, a plain file and nothing, as fast as it can.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (vol, outside, stop) = (vol.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for name in ["random", "urandom", "tty"] {
                    let p = vol.join(name);
                    let _ = std::os::unix::fs::symlink(&outside, &p);
                    let _ = std::fs::remove_file(&p);
                    let _ = std::fs::write(&p, "");
                    let _ = std::fs::remove_file(&p);
                }
                flips += 1;
            }
            flips
        })
    };
    // What the container sees after its start is the volume's business (the
    // flipper may swap a name under it); what the runtime must never do is
    // follow a link there, which would create the link's target in the rootfs.
    let mut c = config(&["sh", "-c", "echo x > /dev/null"]);
    mount_over_dev(&mut c, &vol);
    let b = env.bundle("b", &c);
    let followed = b.join("rootfs").join(outside.strip_prefix("/").unwrap());
    let mut ran = 0;
    for i in 0..6 {
        let (ok, _, err) = run_to_end(&env, &format!("race{i}"), &b);
        if ok {
            ran += 1;
        } else {
            assert!(err.contains("kept changing"), "unexpected failure: {err}");
        }
        assert!(
            !followed.exists(),
            "the runtime followed a link in the /dev volume"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 0, "the flipper never ran");
    assert!(ran > 0, "no start succeeded while the volume changed");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
}

/// CVE-2019-19921: an image whose /proc (or /sys) is a symlink would get the
/// fresh proc mounted wherever the link points, leaving /proc an ordinary
/// directory of the image. Refused, naming the path. (Only the host tier can
/// show it: dockerd's init layer replaces /proc and /sys with directories.)
#[test]
fn symlinked_proc_or_sys_in_the_image_is_refused() {
    host_tier("symlinked /proc");
    let env = Env::new();
    for (id, dir) in [("symproc", "proc"), ("symsys", "sys")] {
        let b = env.bundle(id, &config(&["true"]));
        let root = b.join("rootfs");
        std::fs::remove_dir_all(root.join(dir)).unwrap();
        std::fs::create_dir_all(root.join("tmp/fake")).unwrap();
        std::os::unix::fs::symlink("/tmp/fake", root.join(dir)).unwrap();
        // The attempt is real: the image's path is the link.
        assert!(std::fs::symlink_metadata(root.join(dir))
            .unwrap()
            .file_type()
            .is_symlink());
        let o = env.run(&["create", "-b", b.to_str().unwrap(), id]);
        let err = String::from_utf8_lossy(&o.stderr);
        let fstype = if dir == "proc" { "proc" } else { "sysfs" };
        let want = format!(
            "refusing to mount {fstype} at /{dir}: /{dir} is a symlink in the image (CVE-2019-19921)"
        );
        assert!(!o.status.success(), "{id}: a symlinked /{dir} was accepted");
        assert!(err.contains(&want), "{id}: error {err:?} lacks {want:?}");
        assert!(!env.root().join(id).exists(), "{id}: state left behind");
    }
}

/// A bind source under the mount roots, one of whose components is a
/// symlink (swapped after the gate approved it), is refused at create,
/// naming the source and why; the same path without the link works.
#[test]
fn a_bind_source_reached_through_a_symlink_is_refused() {
    host_tier("bind source symlink");
    let env = Env::new();
    let vol = std::fs::canonicalize(env.dir.path()).unwrap().join("vol");
    std::fs::create_dir_all(vol.join("real")).unwrap();
    std::os::unix::fs::symlink("/etc", vol.join("swapped")).unwrap();
    let bind = |src: &std::path::Path| {
        let mut c = config(&["ls", "/h"]);
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/h", "type": "bind", "source": src, "options": ["rbind", "rw"]}),
        );
        c
    };
    let (ok, _, err) = run_to_end(
        &env,
        "plain",
        &env.bundle("plain", &bind(&vol.join("real"))),
    );
    assert!(ok, "a plain bind source was refused: {err}");
    let src = vol.join("swapped");
    refused(
        &env,
        "swapped",
        &bind(&src),
        &format!(
            "refusing bind source {} for /h: a component of it is a symlink",
            src.display()
        ),
    );
    // Outside the mount roots altogether.
    refused(
        &env,
        "outside",
        &bind(std::path::Path::new("/etc")),
        "refusing bind source /etc for /h: it is outside the mount roots",
    );
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{what}");
}

/// `kill --all` signals every process of the cgroup with it frozen, and
/// thaws it after; a container paused before stays paused (the signals land
/// when it resumes).
#[test]
fn kill_all_signals_every_process_and_keeps_the_freezer_state() {
    host_tier("kill --all");
    let env = Env::new();
    // The init (a sleep that inherits TERM ignored) outlives the signal;
    // the other sleep, forked before the trap, dies of it.
    let script = "sleep 1000 & trap '' TERM; exec sleep 1001";
    let count = |id: &str| {
        let ps: Vec<i32> = serde_json::from_str(&env.ok(&["ps", "--format", "json", id])).unwrap();
        ps.len()
    };
    for (id, pause) in [("running", false), ("paused", true)] {
        let b = env.bundle(id, &config(&["sh", "-c", script]));
        env.ok(&["create", "-b", b.to_str().unwrap(), id]);
        env.ok(&["start", id]);
        wait_until(&format!("{id}: two processes"), || count(id) == 2);
        if pause {
            env.ok(&["pause", id]);
        }
        env.ok(&["kill", "--all", id, "TERM"]);
        if pause {
            assert_eq!(
                env.state(id)["status"],
                "paused",
                "kill --all thawed a paused container"
            );
            env.ok(&["resume", id]);
        }
        wait_until(&format!("{id}: only the init left"), || count(id) == 1);
        assert_eq!(env.state(id)["status"], "running");
        env.ok(&["kill", id, "KILL"]);
        wait_until(&format!("{id}: stopped"), || {
            env.state(id)["status"] == "stopped"
        });
        env.ok(&["delete", id]);
    }
}
