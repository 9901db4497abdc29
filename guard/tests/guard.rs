//! Host-tier tests of hull-guard with hull-runtime: a real guard daemon per
//! test, busybox containers with CAP_SYS_ADMIN and a Docker-like seccomp
//! profile (the mount family trapped), and static C helpers for what busybox
//! cannot do (the new mount API, the TOCTOU race, the benchmark loop).
//! Every deny is checked twice: the call fails inside the container, and the
//! guard's audit log names it with a reason.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn guarded(test: &str) -> (Env, Guard) {
    host_tier(test);
    let mut env = Env::new();
    env.guard = "required";
    let g = Guard::start(&env);
    env.guard_socket = Some(g.sock.clone());
    env.guard_procfs = Some(g.procfs());
    (env, g)
}

/// A container with every capability, a Docker-like profile that allows the
/// mount family (so it goes to the guard), a read-only volume at /ro and a
/// tmpfs /tmp.
fn sys_admin(env: &Env, script: &str) -> Value {
    let mut c = config(&["sh", "-c", script]);
    let caps = all_caps();
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    let mut sc = docker_like_seccomp(true);
    // Docker's profile allows these with CAP_SYS_CHROOT / CAP_SYS_ADMIN.
    for n in ["chroot", "pivot_root"] {
        sc["syscalls"][0]["names"]
            .as_array_mut()
            .unwrap()
            .push(json!(n));
    }
    c["linux"]["seccomp"] = sc;
    let vol = env.dir.path().join("rovol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("f"), "ro\n").unwrap();
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/ro", "type": "bind", "source": vol, "options": ["rbind", "ro"]}),
    );
    mounts.push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]}),
    );
    c
}

/// Copy a compiled helper into this env's rootfs (fails the test without a C compiler).
fn with_helper(env: &Env, name: &str) {
    let p = c_helper(name, env.dir.path());
    std::fs::copy(&p, env.rootfs().join("bin").join(name)).unwrap();
}

fn run(env: &Env, id: &str, c: &Value) -> HashMap<String, String> {
    let b = env.bundle(id, c);
    let (ok, out, err) = run_to_end(env, id, &b);
    assert!(ok, "container {id} failed: {err}\n{out}");
    kv(&out)
}

fn denies(g: &Guard, id: &str) -> Vec<Value> {
    g.audit(id)
        .into_iter()
        .filter(|e| e["verdict"] == "deny")
        .collect()
}

fn assert_denied(r: &HashMap<String, String>, keys: &[&str], out: &str) {
    for k in keys {
        let v = r.get(*k).unwrap_or_else(|| panic!("{k} missing:\n{out}"));
        assert_ne!(v, "0", "{k} succeeded inside the container:\n{out}");
    }
}

fn assert_allowed(r: &HashMap<String, String>, keys: &[&str], out: &str) {
    for k in keys {
        assert_eq!(
            r.get(*k).map(String::as_str),
            Some("0"),
            "{k} should be allowed:\n{out}"
        );
    }
}

#[test]
fn guard_denies_eci_escapes_and_allows_the_containers_own_mounts() {
    let (env, g) = guarded("guard deny/allow");
    let blk = env.dir.path().join("blk");
    let st = std::process::Command::new("mknod")
        .arg(&blk)
        .args(["b", "7", "0"])
        .status()
        .unwrap();
    assert!(st.success());
    let script = r#"
        mkdir -p /tmp/own /tmp/b /tmp/cr/bin /tmp/cr/ro /tmp/cr/proc /tmp/pr
        mount -t tmpfs -o size=1m own /tmp/own; echo tmpfs_mount=$?
        mount -o remount,bind,ro /tmp/own; echo own_remount_ro=$?
        touch /tmp/own/x 2>/dev/null; echo own_write_when_ro=$?
        mount -o remount,bind,rw /tmp/own; echo own_remount_rw=$?
        mount -o remount,ro /tmp/own; echo own_sb_remount_ro=$?
        mount -o remount,rw /tmp/own; echo own_sb_remount_rw=$?
        touch /tmp/own/x; echo own_write=$?
        mount --bind /tmp/own /tmp/b; echo bind_own=$?
        umount /tmp/b; echo umount_bind=$?
        umount /tmp/own; echo tmpfs_umount=$?
        mount -t cgroup2 none /tmp/b; echo cgroup2=$?; umount /tmp/b
        mount -t mqueue none /tmp/b; echo mqueue=$?; umount /tmp/b
        mount -t devpts -o newinstance,ptmxmode=0666 none /tmp/b; echo devpts=$?; umount /tmp/b
        mkdir -p /tmp/o/l /tmp/o/u /tmp/o/w /tmp/o/m; echo lower > /tmp/o/l/f
        mount -t overlay -o lowerdir=/tmp/o/l,upperdir=/tmp/o/u,workdir=/tmp/o/w none /tmp/o/m; echo overlay=$?
        echo up >> /tmp/o/m/f; cat /tmp/o/l/f | sed 's/^/lower_untouched=/'; umount /tmp/o/m
        mount -t overlay -o lowerdir=/proc,upperdir=/tmp/o/u,workdir=/tmp/o/w none /tmp/o/m 2>/dev/null; echo overlay_on_proc=$?
        mount -o remount,rw /ro 2>/dev/null; echo remount_ro_volume=$?
        mount -o remount,bind,rw /ro 2>/dev/null; echo bindremount_ro_volume=$?
        mount --bind /ro /tmp/b; mount -o remount,bind,rw /tmp/b 2>/dev/null; echo remount_bind_of_ro=$?; umount /tmp/b
        unshare -m sh -c 'mount -o remount,bind,rw /ro 2>/dev/null; echo unshare_remount=$?'
        mount --bind /bin /tmp/cr/bin; mount --rbind /ro /tmp/cr/ro; mount --rbind /proc /tmp/cr/proc
        chroot /tmp/cr /bin/sh -c 'mount -o remount,bind,rw /ro; echo chroot_remount=$?'
        unshare -m sh -c 'mount -t tmpfs pr /tmp/pr && mkdir /tmp/pr/bin /tmp/pr/ro /tmp/pr/proc /tmp/pr/old && mount --bind /bin /tmp/pr/bin && mount --rbind /ro /tmp/pr/ro && mount --rbind /proc /tmp/pr/proc && cd /tmp/pr && pivot_root . old && /bin/sh -c "mount -o remount,bind,rw /ro; echo pivot_remount=\$?"'
        umount /proc/keys 2>/dev/null; echo umount_mask=$?
        umount /proc/sys 2>/dev/null; echo umount_readonly_path=$?
        umount -l /proc 2>/dev/null; echo umount_proc=$?
        umount -l /sys 2>/dev/null; echo umount_sys=$?
        umount -l / 2>/dev/null; echo umount_root=$?
        mount -t tmpfs none /proc/keys 2>/dev/null; echo mount_over_mask=$?
        mount -t tmpfs none /proc/sys/kernel 2>/dev/null; echo mount_into_proc=$?
        mount -t cgroup -o memory none /tmp/b 2>/dev/null; echo cgroup_v1=$?
        mount -t ext4 /blk /tmp/b 2>/dev/null; echo block_device=$?
        mount -t securityfs none /tmp/b 2>/dev/null; echo securityfs=$?
        touch /ro/x 2>/dev/null; echo ro_write=$?
        cat /proc/keys | wc -c | sed 's/^/keys_bytes=/'
        cat /proc/[0-9]*/comm | grep -c hull | sed 's/^/guard_visible=/'
    "#;
    let mut c = sys_admin(&env, script);
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/blk", "type": "bind", "source": blk, "options": ["bind"]}));
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "eci", &b);
    assert!(ok, "{err}\n{out}");
    let r = kv(&out);
    assert_allowed(
        &r,
        &[
            "tmpfs_mount",
            "own_remount_ro",
            "own_remount_rw",
            "own_sb_remount_ro",
            "own_sb_remount_rw",
            "own_write",
            "bind_own",
            "umount_bind",
            "tmpfs_umount",
            "cgroup2",
            "mqueue",
            "devpts",
            "overlay",
        ],
        &out,
    );
    assert_ne!(r["own_write_when_ro"], "0", "{out}");
    assert_denied(
        &r,
        &[
            "remount_ro_volume",
            "bindremount_ro_volume",
            "remount_bind_of_ro",
            "unshare_remount",
            "chroot_remount",
            "pivot_remount",
            "umount_mask",
            "umount_readonly_path",
            "umount_proc",
            "umount_sys",
            "umount_root",
            "mount_over_mask",
            "mount_into_proc",
            "cgroup_v1",
            "block_device",
            "securityfs",
            "ro_write",
            "overlay_on_proc",
        ],
        &out,
    );
    assert_eq!(r["keys_bytes"], "0", "/proc/keys stays masked:\n{out}");
    assert_eq!(r["lower_untouched"], "lower", "{out}");
    assert_eq!(
        r["guard_visible"], "0",
        "the worker is outside the container's pid namespace"
    );
    // The guard (not only the kernel) said no, with a reason, for each kind.
    let d = denies(&g, "eci");
    let reason = |needle: &str| {
        d.iter()
            .any(|e| e["reason"].as_str().unwrap_or_default().contains(needle))
    };
    for needle in [
        "initial mount /ro",
        "did not create",
        "umount of /proc/keys",
        "umount of the container's root",
        "mounting over",
        "CVE-2022-0492",
        "block devices",
        "allow-list",
        "overlay layer on /proc",
    ] {
        assert!(reason(needle), "no deny saying {needle:?} in {d:#?}");
    }
    // Denied inside unshare -m, chroot and pivot_root: three more /ro denies.
    let ro = d
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("initial mount /ro")
        })
        .count();
    assert!(
        ro >= 5,
        "remounts of /ro through every path are the guard's denies:\n{out}\n{err}\n{d:#?}"
    );
    // Allowed calls are audited too, and performed by the guard.
    assert!(g.audit("eci").iter().any(|e| e["verdict"] == "allow"
        && e["syscall"] == "mount"
        && e["args"]["fstype"] == "tmpfs"));
}

#[test]
fn fresh_proc_and_sysfs_get_the_containers_masks() {
    let (env, g) = guarded("fresh procfs");
    let script = r#"
        mkdir -p /tmp/p /tmp/q /tmp/s
        mount -t proc proc /tmp/p; echo fresh_proc=$?
        wc -c < /tmp/p/keys | sed 's/^/fresh_keys_bytes=/'
        wc -c < /tmp/p/timer_list | sed 's/^/fresh_timer_list_bytes=/'
        echo 1 > /tmp/p/sysrq-trigger 2>/dev/null; echo fresh_sysrq_write=$?
        grep -c ' /tmp/p/' /proc/self/mountinfo | sed 's/^/fresh_submounts=/'
        mount --bind /dev/null /tmp/p/keys; echo inner_remask=$?
        mount --bind /tmp/p/bus /tmp/p/bus && mount -o remount,bind,ro,nosuid,nodev,noexec /tmp/p/bus; echo inner_readonly=$?
        mount -o remount,bind,rw /tmp/p/sys 2>/dev/null; echo fresh_readonly_rw=$?
        mount --bind /dev/null /proc/keys 2>/dev/null; echo remask_initial=$?
        umount /tmp/p/keys; umount /tmp/p/keys 2>/dev/null; echo umount_fresh_mask=$?
        umount -l /tmp/p/sys 2>/dev/null; echo umount_fresh_readonly=$?
        mount --bind /tmp/p /tmp/q 2>/dev/null; echo nonrecursive_bind_of_fresh=$?
        mount -t sysfs sysfs /tmp/s; echo fresh_sysfs=$?
        ls /tmp/s/firmware | wc -l | sed 's/^/fresh_firmware_entries=/'
        touch /tmp/s/x 2>/dev/null; echo fresh_sysfs_write=$?
        umount -l /tmp/p; echo umount_whole_fresh_proc=$?
        unshare -pmf sh -c 'mount -t proc proc /proc; echo inner_proc=$?; wc -c < /proc/keys | sed "s/^/inner_keys_bytes=/"; ls /proc | grep -c "^[0-9]" | sed "s/^/inner_pids=/"'
    "#;
    let c = sys_admin(&env, script);
    let b = env.bundle("b", &c);
    let (ok, out, err) = run_to_end(&env, "fresh", &b);
    assert!(ok, "{err}\n{out}");
    let r = kv(&out);
    assert_allowed(
        &r,
        &[
            "fresh_proc",
            "fresh_sysfs",
            "umount_whole_fresh_proc",
            "inner_proc",
        ],
        &out,
    );
    assert_eq!(r["fresh_keys_bytes"], "0", "{out}");
    assert_eq!(r["fresh_timer_list_bytes"], "0", "{out}");
    assert_eq!(r["inner_keys_bytes"], "0", "{out}");
    assert_eq!(r["fresh_firmware_entries"], "0", "{out}");
    assert!(
        r["fresh_submounts"].parse::<u32>().unwrap_or(0) >= 10,
        "masks and read-only paths on the fresh proc:\n{out}"
    );
    assert!(
        r["inner_pids"].parse::<u32>().unwrap_or(99) <= 5,
        "the inner proc shows the inner pid namespace:\n{out}"
    );
    assert_denied(
        &r,
        &[
            "fresh_sysrq_write",
            "fresh_readonly_rw",
            "remask_initial",
            "umount_fresh_mask",
            "umount_fresh_readonly",
            "nonrecursive_bind_of_fresh",
            "fresh_sysfs_write",
        ],
        &out,
    );
    assert!(denies(&g, "fresh")
        .iter()
        .any(|e| e["args"]["target"] == "/tmp/p/keys"));
}

#[test]
fn new_mount_api_cannot_bypass_the_vetting() {
    let (env, g) = guarded("new mount API");
    with_helper(&env, "mountapi");
    let c = sys_admin(
        &env,
        "mountapi; wc -c < /tmp/q/keys | sed 's/^/clone_keys_bytes=/'",
    );
    let r = run(&env, "api", &c);
    let out = format!("{r:#?}");
    assert_allowed(
        &r,
        &[
            "fsopen_tmpfs",
            "fsconfig_size",
            "fsconfig_create",
            "fsmount_tmpfs",
            "move_mount_tmpfs",
            "write_new_tmpfs",
            "fspick_own",
            "setattr_own_ro",
            "open_tree_clone_ro",
            "move_mount_clone",
            "open_tree_proc_recursive",
            "move_mount_proc_clone",
        ],
        &out,
    );
    assert_denied(
        &r,
        &[
            "fsopen_cgroup_v1",
            "fsopen_proc",
            "fsopen_ext4",
            "fspick_ro_volume",
            "fspick_root",
            "setattr_ro_volume_rw",
            "setattr_clone_rw",
            "write_through_clone",
            "setattr_recursive_from_root",
            "move_mount_mask",
            "open_tree_proc_nonrecursive",
            "move_mount_over_proc_sys",
        ],
        &out,
    );
    assert_eq!(
        r["clone_keys_bytes"], "0",
        "a recursive clone of /proc keeps its masks"
    );
    let d = denies(&g, "api");
    for sc in ["fsopen", "fspick", "mount_setattr", "move_mount"] {
        assert!(d.iter().any(|e| e["syscall"] == sc), "no {sc} deny: {d:#?}");
    }
}

#[test]
fn toctou_rewriting_the_path_during_the_check_changes_nothing() {
    let (env, g) = guarded("TOCTOU");
    with_helper(&env, "toctou");
    let script = "\
        mkdir -p /tmp/own && mount -t tmpfs own /tmp/own; \
        toctou remount 2000 | sed 's/^ok/remount_ok/'; \
        touch /ro/x 2>/dev/null; echo ro_write=$?; \
        grep ' /ro ' /proc/self/mountinfo | grep -c ' ro,' | sed 's/^/ro_still_ro=/'; \
        toctou umount 2000 | sed 's/^ok/umount_ok/'; \
        wc -c < /proc/keys | sed 's/^/keys_bytes=/'; \
        grep -c ' /proc/keys ' /proc/self/mountinfo | sed 's/^/keys_mounts=/'";
    let r = run(&env, "race", &sys_admin(&env, script));
    let out = format!("{r:#?}");
    assert_ne!(r["ro_write"], "0", "{out}");
    assert_eq!(r["ro_still_ro"], "1", "{out}");
    assert_eq!(r["keys_bytes"], "0", "{out}");
    assert_eq!(r["keys_mounts"], "1", "{out}");
    // The race ran: the guard saw both paths, allowed one, denied the other.
    let a = g.audit("race");
    let seen = |target: &str, verdict: &str| {
        a.iter()
            .filter(|e| e["args"]["target"] == target && e["verdict"] == verdict)
            .count()
    };
    assert!(
        seen("/ro", "deny") > 0,
        "the rewritten path reached the guard"
    );
    assert!(
        seen("/proc/keys", "deny") > 0,
        "the rewritten path reached the guard"
    );
    assert!(seen("/tmp/own", "allow") > 0);
    assert!(r["remount_ok"].parse::<u32>().unwrap_or(0) > 0, "{out}");
}

fn wait_for(p: &Path, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Wait until a file the container writes has content (the shell creates it
/// before the command writes into it).
fn wait_filled(p: &Path, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn shared_dir(env: &Env, name: &str) -> PathBuf {
    let d = env.dir.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn with_shared(mut c: Value, dir: &Path) -> Value {
    c["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/shared", "type": "bind", "source": dir, "options": ["rbind", "rw"]}),
    );
    c
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn sysctl_writes_stay_in_their_container() {
    let (env, _g) = guarded("sysctl emulation");
    let vm_panic = read(Path::new("/proc/sys/kernel/panic"));
    let vm_sysrq = read(Path::new("/proc/sys/kernel/sysrq"));
    let sh = shared_dir(&env, "shared");
    let a_script = "\
        echo 7 > /proc/sys/kernel/panic; echo $? > /shared/a_write; \
        echo 0 > /proc/sys/kernel/sysrq; \
        cat /proc/sys/kernel/panic > /shared/a_panic; \
        cut -d' ' -f1 /proc/uptime > /shared/a_uptime; \
        cat /proc/swaps | wc -l > /shared/a_swaps; \
        grep -c ^processor /proc/cpuinfo > /shared/a_cpus; \
        grep ^MemTotal /proc/meminfo > /shared/a_mem; \
        echo '|/bin/sh' > /proc/sys/kernel/panic 2>/dev/null; echo $? > /shared/a_bad; \
        touch /shared/a_ready; \
        while [ ! -e /shared/go ]; do sleep 0.05; done; \
        cat /proc/sys/kernel/panic > /shared/a_panic2";
    let a = with_shared(privileged_config(&["sh", "-c", a_script]), &sh);
    let ab = env.bundle("a", &a);
    env.ok(&["create", "-b", ab.to_str().unwrap(), "sysa"]);
    env.ok(&["start", "sysa"]);
    assert!(
        wait_for(&sh.join("a_ready"), 20),
        "container a did not get ready"
    );
    // Another container, concurrently: it sees the VM's values, and its own
    // write stays its own.
    let b_script = "\
        cat /proc/sys/kernel/panic > /shared/b_panic; \
        echo 3 > /proc/sys/kernel/panic; cat /proc/sys/kernel/panic > /shared/b_panic2";
    let b = with_shared(privileged_config(&["sh", "-c", b_script]), &sh);
    let bb = env.bundle("b", &b);
    let (ok, _, err) = run_to_end(&env, "sysb", &bb);
    assert!(ok, "{err}");
    std::fs::write(sh.join("go"), "").unwrap();
    assert!(wait_filled(&sh.join("a_panic2"), 20));
    std::thread::sleep(Duration::from_millis(100));
    env.run(&["delete", "--force", "sysa"]);
    assert_eq!(
        read(&sh.join("a_write")),
        "0",
        "the write succeeds in the container"
    );
    assert_eq!(read(&sh.join("a_panic")), "7");
    assert_eq!(
        read(&sh.join("a_panic2")),
        "7",
        "and stays after another container wrote 3"
    );
    assert_eq!(
        read(&sh.join("b_panic")),
        vm_panic,
        "b sees the VM's value, not a's"
    );
    assert_eq!(read(&sh.join("b_panic2")), "3");
    assert_ne!(read(&sh.join("a_bad")), "0", "only integers are accepted");
    assert_eq!(
        read(Path::new("/proc/sys/kernel/panic")),
        vm_panic,
        "the VM's kernel is untouched"
    );
    assert_eq!(read(Path::new("/proc/sys/kernel/sysrq")), vm_sysrq);
    let up: f64 = read(&sh.join("a_uptime")).parse().unwrap();
    assert!(up < 30.0, "/proc/uptime is the container's own: {up}");
    let vm_cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(
        read(&sh.join("a_cpus")),
        vm_cpus.to_string(),
        "no CPU limit: the VM's processors"
    );
    assert!(read(&sh.join("a_mem")).starts_with("MemTotal:"));
    assert_eq!(
        read(&sh.join("a_swaps")),
        "1",
        "no swap device of the VM is shown: {}",
        read(&sh.join("a_swaps"))
    );
}

#[test]
fn guard_crash_fails_trapped_calls_and_a_restarted_guard_vets_new_containers() {
    let (mut env, mut g) = guarded("guard crash");
    let sh = shared_dir(&env, "shared");
    let a_script = "\
        mkdir -p /tmp/m; touch /shared/a_ready; \
        while [ ! -e /shared/go ]; do sleep 0.05; done; \
        mount -t tmpfs none /tmp/m 2>/shared/a_err; echo $? > /shared/a_rc; \
        while [ ! -e /shared/go2 ]; do sleep 0.05; done; \
        mount -t tmpfs none /tmp/m 2>/shared/a_err2; echo $? > /shared/a_rc2; \
        cut -d' ' -f1 /proc/uptime > /shared/a_uptime";
    let a = with_shared(sys_admin(&env, a_script), &sh);
    let ab = env.bundle("a", &a);
    env.ok(&["create", "-b", ab.to_str().unwrap(), "crash-a"]);
    env.ok(&["start", "crash-a"]);
    assert!(wait_for(&sh.join("a_ready"), 20));
    g.kill();
    // The worker notices its guard is gone and closes the listeners.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(sh.join("go"), "").unwrap();
    assert!(wait_filled(&sh.join("a_rc"), 20));
    assert_ne!(
        read(&sh.join("a_rc")),
        "0",
        "a trapped call never succeeds unvetted"
    );
    assert!(
        read(&sh.join("a_err")).contains("not implemented"),
        "ENOSYS while the guard is gone: {}",
        read(&sh.join("a_err"))
    );
    // No guard: no new container (fail closed).
    let c = sys_admin(&env, "true");
    let cb = env.bundle("c", &c);
    let o = env.run(&["create", "-b", cb.to_str().unwrap(), "crash-c"]);
    assert!(!o.status.success(), "created without a guard");
    // It waited for a guard first (one restarting is back within that
    // wait), then refused by the socket's absence.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        (err.contains("no guard socket") || err.contains("cannot connect to"))
            && err.contains("fail closed")
            && err.contains("waited"),
        "refused without the guard, after the wait: {err}"
    );
    // init restarts the guard while a create waits for it (as at boot,
    // where dockerd starts beside the guard): the create goes on once the
    // guard is back, and its container is vetted.
    assert!(
        std::os::unix::net::UnixStream::connect(&g.sock).is_err(),
        "the guard is still gone when the create starts"
    );
    env.guard_socket = Some(g.sock.clone());
    let b_script = "\
        mkdir -p /tmp/m; mount -t tmpfs none /tmp/m; echo b_tmpfs=$?; \
        mount -o remount,bind,rw /ro 2>/dev/null; echo b_remount_ro=$?";
    let b = sys_admin(&env, b_script);
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            g.spawn();
        });
        run(&env, "crash-b", &b)
    });
    assert_eq!(r["b_tmpfs"], "0");
    assert_ne!(r["b_remount_ro"], "0");
    assert!(denies(&g, "crash-b")
        .iter()
        .any(|e| e["args"]["target"] == "/ro"));
    // The container from before the crash stays without mount calls (ENOSYS),
    // never unvetted.
    std::fs::write(sh.join("go2"), "").unwrap();
    assert!(wait_filled(&sh.join("a_rc2"), 20));
    assert_ne!(read(&sh.join("a_rc2")), "0");
    // Its emulated /proc files still answer: the procfs server outlived the guard.
    assert!(wait_filled(&sh.join("a_uptime"), 20));
    let up: f64 = read(&sh.join("a_uptime")).parse().unwrap_or(-1.0);
    assert!(
        (0.0..60.0).contains(&up),
        "/proc/uptime after a guard restart: {up}"
    );
    env.run(&["delete", "--force", "crash-a"]);
}

#[test]
fn id_ranges_are_served_by_the_guard_and_reconciled_at_start() {
    let (env, mut g) = guarded("id ranges");
    // A stale entry (its container's state dir is gone) from before a restart.
    let table = env.ids.join("ranges.json");
    std::fs::create_dir_all(&env.ids).unwrap();
    std::fs::write(
        &table,
        r#"{"ranges":[{"start":100000,"owner":{"id":"ghost","state_dir":"/nonexistent/ghost"}}]}"#,
    )
    .unwrap();
    g.kill();
    g.spawn();
    assert!(
        !read(&table).contains("ghost"),
        "reconciled at start: {}",
        read(&table)
    );
    // The runtime's own table path is unusable: the range still comes, from the guard.
    let b = env.bundle("b", &sys_admin(&env, "cat /proc/self/uid_map"));
    let mut cmd = env.cmd(&["create", "-b", b.to_str().unwrap(), "ids1"]);
    cmd.env("HULL_IDRANGES_DIR", "/proc/hull-no-such-dir");
    let o = run_cmd(cmd, env.dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(read(&table).contains("ids1"), "{}", read(&table));
    env.ok(&["delete", "--force", "ids1"]);
    assert!(!read(&table).contains("ids1"), "released through the guard");
}

#[test]
fn exec_processes_are_vetted_too_also_by_a_restarted_guard() {
    let (env, mut g) = guarded("exec vetting");
    let sh = shared_dir(&env, "shared");
    let a = with_shared(
        sys_admin(
            &env,
            "touch /shared/ready; while [ ! -e /shared/done ]; do sleep 0.05; done",
        ),
        &sh,
    );
    let ab = env.bundle("a", &a);
    env.ok(&["create", "-b", ab.to_str().unwrap(), "ex"]);
    env.ok(&["start", "ex"]);
    assert!(wait_for(&sh.join("ready"), 20));
    let script = "mkdir -p /tmp/e; mount -t tmpfs none /tmp/e; echo tmpfs=$?; umount /tmp/e; \
                  mount -o remount,bind,rw /ro 2>/dev/null; echo ro=$?; \
                  umount /proc/keys 2>/dev/null; echo keys=$?";
    for round in 0..2 {
        if round == 1 {
            // After a crash and restart, an exec'd process is vetted by the
            // new guard, which still knows the container's masks.
            g.kill();
            g.spawn();
        }
        let r = kv(&env.ok(&["exec", "ex", "sh", "-c", script]));
        assert_eq!(r["tmpfs"], "0", "round {round}: {r:?}");
        assert_ne!(r["ro"], "0", "round {round}: {r:?}");
        assert_ne!(r["keys"], "0", "round {round}: {r:?}");
    }
    // Audit lines are batched (flushed after 50 ms of quiet).
    std::thread::sleep(Duration::from_millis(300));
    let d = denies(&g, "ex");
    assert!(
        d.iter().any(|e| e["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("umount of /proc/keys")),
        "the restarted guard named the mask: {d:#?}"
    );
    std::fs::write(sh.join("done"), "").unwrap();
    env.run(&["delete", "--force", "ex"]);
}

/// Docker-in-Docker under the guard (host tier: it needs this machine's
/// dockerd, containerd, runc and docker binaries, copied with their
/// libraries into a busybox rootfs; without them it fails naming them). The
/// inner dockerd mounts overlays, its runc builds a rootfs with binds, a
/// fresh proc and sysfs (masked by the guard), masks, read-only remounts and
/// pivot_root — all through the guard, none denied.
#[test]
fn docker_in_docker_runs_under_the_guard() {
    const TEST: &str = "docker-in-docker";
    let bins = [
        ("/usr/sbin/dockerd", "docker.io"),
        ("/usr/bin/containerd", "containerd"),
        ("/usr/bin/containerd-shim-runc-v2", "containerd"),
        ("/usr/sbin/runc", "runc"),
    ];
    for (b, package) in bins {
        require_file(TEST, b, package);
    }
    let cli = require_on_path(TEST, "docker", "docker.io");
    let bins = bins.map(|(b, _)| PathBuf::from(b));
    let (env, g) = guarded(TEST);
    let root = env.rootfs();
    let usr = root.join("usr/bin");
    std::fs::create_dir_all(&usr).unwrap();
    for b in bins.iter().chain(std::iter::once(&cli)) {
        let name = Path::new(b).file_name().unwrap();
        std::fs::copy(b, usr.join(name)).unwrap();
    }
    let ldd = std::process::Command::new("ldd")
        .args(["/usr/sbin/dockerd", "/usr/sbin/runc"])
        .output()
        .unwrap();
    let libdir = root.join("lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::create_dir_all(root.join("lib64")).unwrap();
    for l in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("/lib"))
    {
        let p = Path::new(l);
        let dest = if l.contains("ld-linux") {
            root.join("lib64").join(p.file_name().unwrap())
        } else {
            libdir.join(p.file_name().unwrap())
        };
        let _ = std::fs::copy(p, dest);
    }
    for d in ["run", "var/lib/docker", "share"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let sh = shared_dir(&env, "share");
    let img = env.dir.path().join("img");
    make_rootfs(&img);
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&img)
        .arg("-cf")
        .arg(sh.join("busybox.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let varlib = shared_dir(&env, "varlib");
    let script = r#"
        export PATH=/usr/bin:/bin
        dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 > /share/dockerd.log 2>&1 &
        i=0; while ! docker version >/dev/null 2>&1; do sleep 0.2; i=$((i+1)); [ $i -gt 150 ] && { echo dockerd_up=1; exit 0; }; done
        echo dockerd_up=0
        docker import /share/busybox.tar busybox:inner >/dev/null; echo imported=$?
        docker run --rm --network none busybox:inner sh -c 'echo inner_keys_bytes=$(wc -c < /proc/keys)'
        echo inner_run=$?
        docker info 2>/dev/null | grep -q 'Storage Driver: overlay2'; echo overlay2=$?
    "#;
    let mut c = privileged_config(&["sh", "-c", script]);
    c["linux"].as_object_mut().unwrap().remove("devices");
    let m = c["mounts"].as_array_mut().unwrap();
    m.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]}));
    m.push(json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]}));
    m.push(json!({"destination": "/var/lib/docker", "type": "bind", "source": varlib, "options": ["rbind", "rw"]}));
    m.push(
        json!({"destination": "/share", "type": "bind", "source": sh, "options": ["rbind", "rw"]}),
    );
    let r = run(&env, "dind", &c);
    let out = format!("{r:#?}\n{}", read(&sh.join("dockerd.log")));
    for k in ["dockerd_up", "imported", "inner_run", "overlay2"] {
        assert_eq!(r.get(k).map(String::as_str), Some("0"), "{k}:\n{out}");
    }
    assert_eq!(
        r["inner_keys_bytes"], "0",
        "the inner container's /proc/keys is masked"
    );
    let d = denies(&g, "dind");
    assert!(
        d.is_empty(),
        "Docker-in-Docker needed nothing the guard refuses: {d:#?}"
    );
    assert!(g.audit("dind").iter().any(|e| e["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("fresh proc")));
}

#[test]
fn nested_user_namespaces_mount_only_where_the_kernel_would_let_them() {
    let (env, g) = guarded("nested userns");
    let script = r#"
        mkdir -p /tmp/nu
        unshare -Urm sh -c 'mount -t tmpfs none /tmp/nu; echo nested_tmpfs=$?; umount /tmp/nu; echo nested_umount=$?; mount -o remount,bind,rw /ro 2>/dev/null; echo nested_ro=$?; umount /proc/keys 2>/dev/null; echo nested_keys=$?'
        unshare -Ur sh -c 'mount -t tmpfs none /tmp/nu 2>/dev/null; echo nested_without_mntns=$?'
    "#;
    let r = run(&env, "nested", &sys_admin(&env, script));
    let out = format!("{r:#?}");
    assert_allowed(&r, &["nested_tmpfs", "nested_umount"], &out);
    assert_denied(
        &r,
        &["nested_ro", "nested_keys", "nested_without_mntns"],
        &out,
    );
    assert!(denies(&g, "nested").iter().any(|e| e["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("not owned by its user namespace")));
}

#[test]
fn uptime_is_the_containers_own_even_when_no_mount_call_is_trapped() {
    let (env, g) = guarded("uptime without listener");
    // Docker's default shape: no CAP_SYS_ADMIN, the profile denies the mount
    // family outright, so no listener ever reaches the guard.
    let c = config(&["sh", "-c", "echo up=$(cut -d' ' -f1 /proc/uptime)"]);
    let r = run(&env, "plain", &c);
    let up: f64 = r["up"].parse().unwrap_or(-1.0);
    assert!(
        (0.0..30.0).contains(&up),
        "/proc/uptime is the container's: {r:?}"
    );
    assert!(g.audit("plain").iter().all(|e| e["syscall"].is_null()));
}

// ---- Fail-open paths of the red-team issue (each refused by the guard itself,
// with EPERM and a reason in the audit log). ----

/// errno 1, as the helpers print it.
const EPERM: &str = "1";

/// Like `guarded`, but a missing prerequisite fails the test, naming it.
fn guarded_strict(test: &str) -> (Env, Guard) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "{test}: needs root (namespaces, mounts, seccomp listeners)"
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "{test}: needs /bin/busybox (apt-get install busybox-static)"
    );
    guarded(test)
}

/// The guard's own EPERM denial for `syscall` on `target`, with its reason.
fn guard_eperm<'a>(d: &'a [Value], syscall: &str, target: &str) -> Option<&'a Value> {
    d.iter().find(|e| {
        e["syscall"] == syscall
            && e["result"] == "EPERM"
            && (e["args"]["target"] == target || e["args"]["path"] == target)
    })
}

#[test]
fn a_lost_or_corrupt_saved_identity_refuses_every_mount_of_its_container() {
    let (env, mut g) = guarded_strict("saved identity");
    with_helper(&env, "rawmount");
    let sh = shared_dir(&env, "shared");
    for id in ["lost", "corrupt"] {
        let script =
            format!("touch /shared/{id}_ready; while [ ! -e /shared/done ]; do sleep 0.05; done");
        let c = with_shared(sys_admin(&env, &script), &sh);
        let b = env.bundle(id, &c);
        env.ok(&["create", "-b", b.to_str().unwrap(), id]);
        env.ok(&["start", id]);
        assert!(
            wait_for(&sh.join(format!("{id}_ready")), 20),
            "{id} started"
        );
    }
    // The guard restarts; meanwhile its saved identities were lost or damaged.
    g.kill();
    let saved = g.state.join("containers");
    let lost = saved.join("lost.json");
    let corrupt = saved.join("corrupt.json");
    assert!(
        lost.exists() && corrupt.exists(),
        "the guard saved both identities"
    );
    std::fs::remove_file(&lost).unwrap();
    std::fs::write(&corrupt, b"{\"id\":\"corrupt\",\"mounts\":[{\"dest").unwrap();
    g.spawn();
    let script = "mkdir -p /tmp/e /tmp/p; \
        rawmount tmpfs mount none /tmp/e tmpfs; \
        rawmount proc mount proc /tmp/p proc; \
        grep -c ' /tmp/[ep] ' /proc/self/mountinfo | sed 's/^/mounted=/'";
    for id in ["lost", "corrupt"] {
        let r = kv(&env.ok(&["exec", id, "sh", "-c", script]));
        assert_eq!(
            r["tmpfs"], EPERM,
            "{id}: a tmpfs without an identity: {r:?}"
        );
        assert_eq!(
            r["proc"], EPERM,
            "{id}: a fresh proc without its masks: {r:?}"
        );
        assert_eq!(r["mounted"], "0", "{id}: {r:?}");
        let d = denies(&g, id);
        for (syscall, target) in [("mount", "/tmp/e"), ("mount", "/tmp/p")] {
            let e = guard_eperm(&d, syscall, target)
                .unwrap_or_else(|| panic!("{id}: no EPERM deny of {syscall} {target}: {d:#?}"));
            assert!(
                e["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("saved identity"),
                "{id}: the reason names the identity: {e}"
            );
        }
    }
    std::fs::write(sh.join("done"), "").unwrap();
    for id in ["lost", "corrupt"] {
        env.run(&["delete", "--force", id]);
    }
}

#[test]
fn protected_mounts_are_known_by_mount_id_even_where_the_callers_mountinfo_does_not_show_them() {
    let (env, g) = guarded_strict("protected by mount id");
    with_helper(&env, "rawmount");
    // fd 3 is the container's /proc, fd 4 its /proc/keys mask and fd 5 its
    // /sys/firmware mask, opened before a chroot whose mountinfo shows none
    // of them (mounts outside a root are not listed there); /proc inside the
    // chroot lets the kernel resolve /proc/self/fd/N for the caller too.
    let script = r#"
        mkdir -p /tmp/cr/bin /tmp/cr/proc
        mount --bind /bin /tmp/cr/bin; mount --rbind /proc /tmp/cr/proc
        chroot /tmp/cr /bin/sh -c '
            for f in 3 4 5; do
                id=$(sed -n "s/^mnt_id:[[:space:]]*//p" /proc/self/fdinfo/$f)
                echo "fd${f}_mnt=$id"
                echo "fd${f}_listed=$(grep -c "^$id " /proc/self/mountinfo)"
            done
            test -e /proc/self/fd/3/keys && echo fd3_is_proc=1
            rawmount over_proc mount none /proc/self/fd/3 tmpfs
            rawmount umount_mask umount /proc/self/fd/4
            rawmount over_mask mount none /proc/self/fd/5 tmpfs
        ' 3</proc 4</proc/keys 5</sys/firmware
        grep -c ' /proc tmpfs ' /proc/mounts | sed 's/^/proc_covered=/'
        wc -c < /proc/keys | sed 's/^/keys_bytes=/'
    "#;
    let r = run(&env, "byid", &sys_admin(&env, script));
    // The premise: the mounts behind the fds are not in the caller's
    // mountinfo (the chroot's copies of /proc are other mounts).
    for f in [3, 4, 5] {
        let id = r.get(&format!("fd{f}_mnt")).map(String::as_str);
        assert!(
            id.is_some_and(|i| !i.is_empty()),
            "fd {f}'s mount id: {r:?}"
        );
        let listed = r.get(&format!("fd{f}_listed")).map(String::as_str);
        assert_eq!(listed, Some("0"), "fd {f}: {r:?}");
    }
    assert_eq!(
        r.get("fd3_is_proc").map(String::as_str),
        Some("1"),
        "the attempt names the real /proc: {r:?}"
    );
    for k in ["over_proc", "umount_mask", "over_mask"] {
        assert_eq!(r[k], EPERM, "{k}: {r:?}");
    }
    assert_eq!(r["proc_covered"], "0", "{r:?}");
    assert_eq!(r["keys_bytes"], "0", "/proc/keys stays masked: {r:?}");
    let d = denies(&g, "byid");
    for (syscall, target, why) in [
        ("mount", "/proc/self/fd/3", "mounting over"),
        ("umount2", "/proc/self/fd/4", "umount of /proc/keys"),
        ("mount", "/proc/self/fd/5", "mounting over"),
    ] {
        let e = guard_eperm(&d, syscall, target)
            .unwrap_or_else(|| panic!("no EPERM deny of {syscall} {target}: {d:#?}"));
        assert!(
            e["reason"].as_str().unwrap_or_default().contains(why),
            "{syscall} {target}: {e}"
        );
    }
}

#[test]
fn a_fresh_sysfs_sharing_the_containers_superblock_opens_nothing_over_sys() {
    let (env, g) = guarded_strict("fresh sysfs superblock");
    with_helper(&env, "rawmount");
    // In the container's network namespace a new sysfs is the same
    // superblock as its /sys: the fresh tree must not make /sys fair game.
    let script = r#"
        mkdir -p /tmp/s /tmp/x
        mount -t sysfs sysfs /tmp/s; echo fresh_sysfs=$?
        stat -c '%d' /sys /tmp/s | uniq | wc -l | sed 's/^/superblocks=/'
        grep -cE ' /sys(/[^ ]*)? ' /proc/self/mountinfo | sed 's/^/sys_mounts_before=/'
        rawmount over_sys_dir mount none /sys/kernel tmpfs
        rawmount over_sys_mask mount none /sys/firmware tmpfs
        rawmount over_sys mount /tmp/x /sys none bind
        mount -t tmpfs none /tmp/s/kernel; echo inner_mask_on_fresh=$?
        grep -cE ' /sys(/[^ ]*)? ' /proc/self/mountinfo | sed 's/^/sys_mounts_after=/'
    "#;
    let r = run(&env, "sysfs", &sys_admin(&env, script));
    assert_allowed(
        &r,
        &["fresh_sysfs", "inner_mask_on_fresh"],
        &format!("{r:?}"),
    );
    assert_eq!(
        r["superblocks"], "1",
        "the premise: one sysfs superblock: {r:?}"
    );
    for k in ["over_sys_dir", "over_sys_mask", "over_sys"] {
        assert_eq!(r[k], EPERM, "{k}: {r:?}");
    }
    assert_eq!(
        r["sys_mounts_after"], r["sys_mounts_before"],
        "nothing new on or under /sys: {r:?}"
    );
    let d = denies(&g, "sysfs");
    for target in ["/sys/kernel", "/sys/firmware", "/sys"] {
        let e = guard_eperm(&d, "mount", target)
            .unwrap_or_else(|| panic!("no EPERM deny of mount {target}: {d:#?}"));
        assert!(
            e["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("mounting over"),
            "{target}: {e}"
        );
    }
}
