//! The same bundle under crun and hull-runtime: what the process sees must be
//! the same, except where hull is deliberately stricter (listed here and in
//! the README).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use common::*;

const SCRIPT: &str = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\\t' | sed 's/:/=/'; \
    echo ns=$(ls /proc/self/ns | tr '\\n' ' '); echo host=$(hostname); \
    echo uidmap=$(cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'); \
    echo devs=$(ls /dev | tr '\\n' ' '); \
    awk '{print \"mnt=\" $5}' /proc/self/mountinfo";

/// Mounts hull adds on purpose (forced masks, read-only paths).
const HULL_EXTRA_MOUNTS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

struct Seen {
    kv: HashMap<String, String>,
    mounts: BTreeSet<String>,
}

fn parse(out: &str) -> Seen {
    let mut kv = HashMap::new();
    let mut mounts = BTreeSet::new();
    for l in out.lines() {
        if let Some(m) = l.strip_prefix("mnt=") {
            mounts.insert(m.to_string());
        } else if let Some((k, v)) = l.split_once('=') {
            kv.insert(k.to_string(), v.trim().to_string());
        }
    }
    Seen { kv, mounts }
}

#[test]
fn hull_and_crun_show_the_process_the_same_world() {
    host_tier("differential vs crun");
    require_file("differential vs crun", "/usr/bin/crun", "crun");
    let env = Env::new();
    let mut c = config(&["sh", "-c", SCRIPT]);
    // crun on a hybrid host runs with its cgroup manager disabled; keep the
    // bundle free of cgroup resources so both runtimes get the same.
    c["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]);
    let b = env.bundle("b", &c);
    let (ok, hull_out, err) = run_to_end(&env, "diff", &b);
    assert!(ok, "hull: {err}");
    // crun 1.8 refuses hybrid cgroup hosts: give it a pure v2 view.
    let croot = env.dir.path().join("crun-root");
    let shell = format!(
        "(mountpoint -q /sys/fs/cgroup/unified && umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup); \
         exec crun --cgroup-manager=disabled --root {} run --bundle {} diffc",
        croot.display(),
        b.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "slave", "sh", "-c", &shell]);
    let o = run_cmd(cmd, env.dir.path());
    let crun_out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "crun: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (h, r) = (parse(&hull_out), parse(&crun_out));

    for k in [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "host",
        "ns",
    ] {
        assert_eq!(
            h.kv.get(k),
            r.kv.get(k),
            "{k} differs\nhull:\n{hull_out}\ncrun:\n{crun_out}"
        );
    }
    // Deliberate: hull always adds a user namespace with an exclusive range.
    assert_eq!(r.kv["uidmap"], "0 0 4294967295");
    assert_eq!(h.kv["uidmap"], "0 100000 65536");
    // Deliberate: hull's /dev holds only the safe set (crun may add console/core).
    let hdev: BTreeSet<&str> = h.kv["devs"].split_whitespace().collect();
    let rdev: BTreeSet<&str> = r.kv["devs"].split_whitespace().collect();
    assert!(
        hdev.is_subset(&rdev)
            || hdev
                .difference(&rdev)
                .all(|d| ["fd", "stdin", "stdout", "stderr"].contains(d)),
        "hull /dev {hdev:?} vs crun {rdev:?}"
    );
    // Mounts: everything crun makes, plus only hull's forced masks/read-only paths.
    let missing: Vec<&String> = r.mounts.difference(&h.mounts).collect();
    assert!(
        missing.is_empty(),
        "hull lacks mounts crun makes: {missing:?}"
    );
    let extra: Vec<&String> = h
        .mounts
        .difference(&r.mounts)
        .filter(|m| !HULL_EXTRA_MOUNTS.contains(&m.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "hull makes undeclared extra mounts: {extra:?}"
    );
}
