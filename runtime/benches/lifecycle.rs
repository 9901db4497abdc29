//! create → start → delete, hull-runtime vs runc vs crun, same bundle, same
//! run, interleaved so machine noise hits all three alike. Like with like:
//! the bundle asks every runtime for a user namespace (hull-runtime makes
//! its own ranges; runc and crun take the bundle's mappings) and carries the
//! tests' Docker-like seccomp profile for all three. Versions are read from
//! the binaries. A missing runtime fails the benchmark, naming it. Run as root:
//! `cargo bench -p hull-runtime --bench lifecycle` (HULL_BENCH_N=iterations).
//! Prints figures; asserts nothing (machines are noisy).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;

use std::time::Instant;

/// The first line of `<bin> --version`.
fn version(bin: &str) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| panic!("`{bin} --version` gave no version"))
}

fn step(bin: &str, root: &std::path::Path, extra_env: &[(&str, String)], args: &[&str]) {
    let mut c = Command::new(bin);
    c.arg("--root").arg(root);
    if bin.ends_with("crun") {
        // crun refuses hybrid cgroup hosts; the VM (pure v2) needs no such flag.
        c.arg("--cgroup-manager=disabled");
    }
    c.args(args);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    // stdio to files: the container's init inherits it, a pipe would block.
    let o = common::run_cmd(c, root.parent().unwrap_or(root));
    assert!(
        o.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// (name, binary, extra environment)
type Runtime = (&'static str, String, Vec<(&'static str, String)>);

fn main() {
    common::host_tier("lifecycle bench");
    if !common::pure_v2_view() {
        eprintln!("could not set up a pure cgroup v2 view; crun may refuse to run");
    }
    let n: usize = std::env::var("HULL_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let env = common::Env::new();
    let mut config = common::config(&["true"]);
    config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .insert(0, serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    config["linux"]["uidMappings"] = map.clone();
    config["linux"]["gidMappings"] = map;
    let b = env.bundle("b", &config);
    let bs = b.to_str().unwrap().to_string();
    let ids = env.dir.path().join("ids").display().to_string();
    let mut runtimes: Vec<Runtime> = vec![(
        "hull-runtime",
        common::BIN.to_string(),
        vec![("HULL_GUARD", "none".into()), ("HULL_IDRANGES_DIR", ids)],
    )];
    for r in ["runc", "crun"] {
        let p = common::require_on_path("lifecycle bench", r, r);
        runtimes.push((r, p.display().to_string(), vec![]));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); runtimes.len()];
    for i in 0..n + 2 {
        for (k, (name, bin, envs)) in runtimes.iter().enumerate() {
            let root = env.dir.path().join(format!("root-{name}"));
            let id = format!("bench{i}");
            let t = Instant::now();
            step(bin, &root, envs, &["create", "--bundle", &bs, &id]);
            step(bin, &root, envs, &["start", &id]);
            step(bin, &root, envs, &["delete", "--force", &id]);
            // The first two rounds warm caches and are not counted.
            if i >= 2 {
                times[k].push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let meds: Vec<f64> = times.iter_mut().map(median).collect();
    println!(
        "create→start→delete, {n} rounds, median ms (machine: {} cores)",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(0)
    );
    let mut report = serde_json::Map::new();
    for ((name, bin, _), m) in runtimes.iter().zip(&meds) {
        let v = version(bin);
        println!(
            "  {name:14} {m:8.2} ms   hull/{name} = {:.2}   ({v})",
            meds[0] / m
        );
        report.insert(
            name.to_string(),
            serde_json::json!({
                "median_ms": m,
                "version": v,
                "bundle": "busybox `true`, user namespace, Docker-like seccomp profile",
            }),
        );
    }
    // For `cargo xtask bench`, which gathers every benchmark's figures.
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(
            out.join("runtime-lifecycle.json"),
            serde_json::to_vec_pretty(&serde_json::Value::Object(report)).unwrap_or_default(),
        );
    }
}
