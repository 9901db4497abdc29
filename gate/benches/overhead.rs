//! Gate overhead per request vs dockerd's socket directly, same run:
//! `cargo bench -p hull-gate --bench overhead` (iterations from
//! `HULL_BENCH_ITERATIONS`, default 1000).
//!
//! Two engines: the real dockerd (host tier: root and docker.io; without
//! them the dockerd half is recorded as skipped, naming why, and `cargo
//! xtask bench` fails), where a create costs tens of milliseconds with
//! several of jitter, and a fake engine answering at once, which isolates the gate's
//! own cost (policy parse, re-serialisation, proxying). Prints one JSON
//! object per figure on stdout and writes them all to
//! `target/bench/gate-overhead.json`.

#[path = "../tests/common/mod.rs"]
mod common;

// Measurement code lives beside the benchmark, out of the shipped library.
#[path = "support/measure.rs"]
mod measure;

use measure::{measure, standard_probes, Figures};

fn run(
    rt: &tokio::runtime::Runtime,
    engine: &std::path::Path,
    gate: &std::path::Path,
    label: &str,
    n: usize,
    all: &mut Vec<(String, Figures)>,
) {
    for fresh in [false, true] {
        for probe in standard_probes() {
            let f = rt
                .block_on(measure(engine, gate, &probe, n, fresh))
                .expect("measurement");
            eprintln!(
            "[bench] {label:<8} {:<26} fresh={fresh} direct p50 {:.3} ms p90 {:.3} ms p99 {:.3} ms | gate p50 {:.3} ms p90 {:.3} ms p99 {:.3} ms | added p50 {:+.3} ms p90 {:+.3} ms p99 {:+.3} ms (n={})",
            f.name, f.direct_p50_ms, f.direct_p90_ms, f.direct_p99_ms, f.gate_p50_ms, f.gate_p90_ms, f.gate_p99_ms, f.added_p50_ms, f.added_p90_ms, f.added_p99_ms, f.iterations
        );
            let mut v = serde_json::to_value(&f).expect("json");
            v["engine"] = serde_json::Value::from(label);
            println!("{v}");
            all.push((label.to_string(), f));
        }
    }
}

fn main() {
    let n: usize = std::env::var("HULL_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut all = Vec::new();

    let dir = tempfile::Builder::new()
        .prefix("hgt-bench-fake-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let fake_sock = dir.path().join("engine.sock");
    let _log = common::fake::spawn(&fake_sock);
    let fake_gate = common::GateProc::start(
        dir.path(),
        1,
        &fake_sock,
        &hull_policy::Effective::default(),
    );
    run(&rt, &fake_sock, &fake_gate.sock, "fake", n, &mut all);
    drop(fake_gate);

    // What each side ran, for the report's lines.
    let mut sides = serde_json::json!({
        "fake": "hull-gate in front of a fake engine that answers at once (the gate's own cost)",
    });
    match common::missing_prerequisite(false) {
        Some(why) => {
            eprintln!("[bench] dockerd half NOT RUN: {why}");
            sides["dockerd"] = serde_json::json!({"skipped": why});
        }
        None => {
            let mut env = common::Env::start("bench", false);
            let settings = env.settings();
            let gate = env.gate(&settings);
            run(&rt, &env.engine_sock, &gate.sock, "dockerd", n, &mut all);
            let version = std::process::Command::new("dockerd")
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_else(|e| format!("unknown (dockerd --version: {e})"));
            sides["dockerd"] = serde_json::json!(format!(
                "{version}, runc as its runtime, default settings; direct = its own socket, gate = hull-gate in front of it"
            ));
        }
    }

    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    if std::fs::create_dir_all(&out).is_ok() {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|(label, f)| {
                let mut v = serde_json::to_value(f).expect("json");
                v["engine"] = serde_json::Value::from(label.as_str());
                v
            })
            .collect();
        let report = serde_json::json!({"figures": v, "sides": sides});
        let _ = std::fs::write(
            out.join("gate-overhead.json"),
            serde_json::to_string_pretty(&report).expect("json"),
        );
    }
}
