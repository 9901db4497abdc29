//! The guard's cost, trapped vs untrapped, same run, interleaved rounds:
//! 10,000 tmpfs mount+umount pairs in a container, and a getpid loop (a
//! syscall the guard never sees, whose throughput must not change). Trapped =
//! the default (`--guard required`, a real hull-guard vets and performs every
//! call); untrapped = `--guard none` (the kernel's locks only). Run as root:
//! `cargo bench -p hull-guard --bench guard` (HULL_BENCH_PAIRS,
//! HULL_BENCH_GETPIDS, HULL_BENCH_ROUNDS). Prints figures and writes
//! target/bench/guard.json; asserts nothing (machines are noisy).

#[path = "../tests/common/mod.rs"]
mod common;

use serde_json::json;

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Run `loop <what> <n>` in a fresh container; the elapsed ns it printed.
fn measure(env: &common::Env, id: &str, guard: &'static str, what: &str, n: u64) -> f64 {
    let mut c = common::config(&["loop", what, &n.to_string()]);
    let caps = common::all_caps();
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    c["linux"]["seccomp"] = common::docker_like_seccomp(true);
    c["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["rw"]}),
    );
    let b = env.bundle(id, &c);
    let mut cmd = env.cmd(&["run", "-b", b.to_str().unwrap(), id]);
    cmd.env("HULL_GUARD", guard);
    let o = common::run_cmd(cmd, env.dir.path());
    assert!(
        o.status.success(),
        "{id}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{id}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn main() {
    common::host_tier("guard bench");
    let pairs = var("HULL_BENCH_PAIRS", 10_000);
    let getpids = var("HULL_BENCH_GETPIDS", 5_000_000);
    let rounds = var("HULL_BENCH_ROUNDS", 3);
    let mut env = common::Env::new();
    let helper = common::c_helper("loop", env.dir.path());
    std::fs::copy(&helper, env.rootfs().join("bin/loop")).unwrap();
    let g = common::Guard::start(&env);
    env.guard_socket = Some(g.sock.clone());
    env.guard_procfs = Some(g.procfs());
    let (mut mt, mut mu, mut gt, mut gu) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        // Alternate the order each round so drift hits both alike.
        let order: [&'static str; 2] = if r % 2 == 0 {
            ["none", "required"]
        } else {
            ["required", "none"]
        };
        for guard in order {
            let m = measure(&env, &format!("m{r}{guard}"), guard, "mount", pairs);
            let p = measure(&env, &format!("p{r}{guard}"), guard, "getpid", getpids);
            let (mv, pv) = (m / pairs as f64, p / getpids as f64);
            if guard == "required" {
                mt.push(mv);
                gt.push(pv);
            } else {
                mu.push(mv);
                gu.push(pv);
            }
            println!(
                "round {r} guard={guard:8} mount+umount pair {:8.1} µs   getpid {:6.1} ns",
                mv / 1000.0,
                pv
            );
        }
    }
    let (mt, mu, gt, gu) = (median(mt), median(mu), median(gt), median(gu));
    println!(
        "\nmount+umount pair: trapped {:.1} µs, untrapped {:.1} µs, ratio {:.2}x (goal <= 1.3x)",
        mt / 1000.0,
        mu / 1000.0,
        mt / mu
    );
    println!(
        "getpid: trapped {:.1} ns, untrapped {:.1} ns, ratio {:.3}x (must be ~1.0)",
        gt,
        gu,
        gt / gu
    );
    let report = json!({
        "pairs": pairs, "getpids": getpids, "rounds": rounds,
        "trapped": "hull-runtime --guard required: a hull-guard daemon vets and performs each mount call (seccomp user notification)",
        "untrapped": "the same container by hull-runtime --guard none: the mount family is not trapped, the kernel's locks only",
        "container": "busybox + tests/helpers/loop.c, every capability, Docker-like seccomp profile allowing the mount family, user namespace",
        "mount_pair_ns": {"trapped": mt, "untrapped": mu, "ratio": mt / mu},
        "getpid_ns": {"trapped": gt, "untrapped": gu, "ratio": gt / gu},
    });
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(
            out.join("guard.json"),
            serde_json::to_vec_pretty(&report).unwrap_or_default(),
        );
    }
    drop(g);
}
