//! The guard's cost, trapped vs untrapped, same run, interleaved: 10,000
//! tmpfs mount+umount pairs in a container, and two loops of calls the guard
//! never sees (getpid; openat+close of one file), whose speed must not
//! change. Trapped = the default (`--guard required`, a real hull-guard vets
//! and performs every mount call); untrapped = `--guard none` (the kernel's
//! locks only). Each round runs every workload on both sides back to back,
//! the side going first alternating, so load from other work on the machine
//! hits both alike; figures are medians over the rounds, with the spread
//! (max-min over median) of each side's rounds. A non-mount loop is "within
//! noise" when its trapped/untrapped ratio differs from 1 by no more than
//! the untrapped rounds' own spread. Run as root:
//! `cargo bench -p hull-guard --bench guard` (HULL_BENCH_PAIRS,
//! HULL_BENCH_GETPIDS, HULL_BENCH_OPENS, HULL_BENCH_ROUNDS; HULL_BENCH_ONLY=
//! required|none runs one side, for profiling it, and writes no report).
//! Prints figures and writes target/bench/guard.json; asserts nothing
//! (machines are noisy).

#[path = "../tests/common/mod.rs"]
mod common;

use serde_json::json;

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// (max - min) / median of a side's rounds.
fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    (hi - lo) / median(v)
}

/// One workload's figures, per call (ns): medians, ratio, every round and
/// the spreads.
fn figure(t: &[f64], u: &[f64]) -> serde_json::Value {
    let (mt, mu) = (median(t), median(u));
    let ratio = mt / mu;
    let noise = spread(u);
    // Rounds are paired (the two sides ran back to back): the median of the
    // per-round ratios is the least moved by load that drifts between rounds.
    let paired: Vec<f64> = t.iter().zip(u).map(|(a, b)| a / b).collect();
    json!({
        "trapped": mt, "untrapped": mu, "ratio": ratio, "paired_ratio": median(&paired),
        "trapped_rounds": t, "untrapped_rounds": u,
        "trapped_spread": spread(t), "untrapped_spread": noise,
        "within_noise": (ratio - 1.0).abs() <= noise,
    })
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
    let opens = var("HULL_BENCH_OPENS", 500_000);
    let rounds = var("HULL_BENCH_ROUNDS", 5).max(1);
    let only = std::env::var("HULL_BENCH_ONLY").ok();
    if let Some(o) = only
        .as_deref()
        .filter(|o| !matches!(*o, "required" | "none"))
    {
        panic!("HULL_BENCH_ONLY={o:?}: expected `required` or `none` (the side to run)");
    }
    let mut env = common::Env::new();
    let helper = common::c_helper("loop", env.dir.path());
    std::fs::copy(&helper, env.rootfs().join("bin/loop")).unwrap();
    let g = common::Guard::start(&env);
    env.guard_socket = Some(g.sock.clone());
    env.guard_procfs = Some(g.procfs());
    let loads: [(&str, u64); 3] = [("mount", pairs), ("getpid", getpids), ("open", opens)];
    // [workload] -> (trapped rounds, untrapped rounds), ns per call.
    let mut got: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); loads.len()];
    for r in 0..rounds {
        for (w, (what, n)) in loads.iter().enumerate() {
            // Alternate which side goes first so drift hits both alike.
            let order: [&'static str; 2] = if (r as usize + w).is_multiple_of(2) {
                ["none", "required"]
            } else {
                ["required", "none"]
            };
            for guard in order {
                if only.as_deref().is_some_and(|o| o != guard) {
                    continue;
                }
                let v = measure(&env, &format!("{what}{r}{guard}"), guard, what, *n) / *n as f64;
                let (t, u) = &mut got[w];
                if guard == "required" {
                    t.push(v)
                } else {
                    u.push(v)
                }
                println!("round {r} {what:6} guard={guard:8} {v:10.1} ns/call");
            }
        }
    }
    if only.is_some() {
        return;
    }
    let f: Vec<serde_json::Value> = got.iter().map(|(t, u)| figure(t, u)).collect();
    let pct = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN) * 100.0;
    println!(
        "\nmount+umount pair: trapped {:.1} µs (spread {:.0}%), untrapped {:.1} µs (spread {:.0}%), ratio {:.2}x, per-round paired {:.2}x (goal <= 1.3x)",
        f[0]["trapped"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        pct(&f[0]["trapped_spread"]),
        f[0]["untrapped"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        pct(&f[0]["untrapped_spread"]),
        f[0]["ratio"].as_f64().unwrap_or(f64::NAN),
        f[0]["paired_ratio"].as_f64().unwrap_or(f64::NAN),
    );
    for (i, name) in [(1, "getpid"), (2, "openat+close")] {
        println!(
            "{name}: trapped {:.1} ns (spread {:.0}%), untrapped {:.1} ns (spread {:.0}%), ratio {:.3}x: {}",
            f[i]["trapped"].as_f64().unwrap_or(f64::NAN),
            pct(&f[i]["trapped_spread"]),
            f[i]["untrapped"].as_f64().unwrap_or(f64::NAN),
            pct(&f[i]["untrapped_spread"]),
            f[i]["ratio"].as_f64().unwrap_or(f64::NAN),
            if f[i]["within_noise"] == true { "within noise" } else { "NOT within noise" },
        );
    }
    let report = json!({
        "pairs": pairs, "getpids": getpids, "opens": opens, "rounds": rounds,
        "trapped": "hull-runtime --guard required: a hull-guard daemon vets and performs each mount call (seccomp user notification)",
        "untrapped": "the same container by hull-runtime --guard none: the mount family is not trapped, the kernel's locks only",
        "container": "busybox + tests/helpers/loop.c, every capability, Docker-like seccomp profile allowing the mount family, user namespace",
        "noise": "spread = (max - min) / median of a side's rounds; within_noise = |ratio - 1| <= the untrapped spread; paired_ratio = median of the per-round trapped/untrapped ratios",
        "mount_pair_ns": f[0], "getpid_ns": f[1], "openclose_ns": f[2],
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
