//! Boot figures of `cargo xtask bench`: init's own cost (CPU by boot stage,
//! user and kernel, its children's apart, RSS) and `hull up` -> engine
//! ready against the floor, dockerd alone started by hand in the same VM
//! (`--boot-only` runs just these, in one boot).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{metric, phase_metrics, Metric};
use crate::vmtest::vm::Vm;

/// `--boot-only`: one boot of the bench image.
pub fn run(hull: &Path, image: &Path) -> Result<Vec<Metric>> {
    let (vm, cold) = super::boot_timed(hull, image)?;
    let mut m = vec![cold];
    let st = vm.status()?;
    m.extend(init_metrics(&st));
    m.extend(phase_metrics(&st));
    m.extend(floor_metrics(&vm, &st)?);
    // A user's every boot but the first: the data disk already carries its
    // filesystem (e2fsck and a mount, no mkfs).
    let mut vm = vm;
    vm.down()?.success()?;
    let t = Instant::now();
    vm.up()?;
    let warm = t.elapsed().as_secs_f64();
    m.push(metric(
        "hull up to engine ready (second boot, same home)",
        "s",
        warm,
        None,
        "the data disk is formatted already",
    ));
    let st = vm.status()?;
    for x in init_metrics(&st) {
        if !x.name.starts_with("init's CPU by") {
            m.push(Metric {
                name: format!("second boot: {}", x.name),
                ..x
            });
        }
    }
    Ok(m)
}

/// The first time `event` is on init's timeline: (seconds since the kernel
/// started, init's CPU so far in ms, the kernel's part of it).
fn mark(st: &Value, event: &str) -> Option<(f64, f64, f64)> {
    st["guest"]["timeline"]
        .as_array()?
        .iter()
        .find(|x| x["event"] == event)
        .map(|x| {
            let f = |k: &str| x[k].as_f64().unwrap_or(f64::NAN);
            (f("t"), f("cpu_ms"), f("sys_ms"))
        })
}

/// init's own CPU (user + kernel on its behalf), per boot stage, and what
/// its reaped children used, so that nothing moved out of init is hidden.
pub fn init_metrics(st: &Value) -> Vec<Metric> {
    let init = &st["guest"]["init"];
    let f = |k: &str| init[k].as_f64().unwrap_or(f64::NAN);
    let mut m = vec![metric(
        "init's own CPU time",
        "ms",
        f("init_cpu_ms"),
        None,
        "goal < 50 ms; utime + stime of PID 1's threads (getrusage RUSAGE_SELF), less the kernel's boot work before init's main()",
    )];
    // The split shows where it goes: init's code, or the kernel working on
    // its behalf (ext4 mount, API filesystems, spawning), which TCG slows most.
    for (key, what) in [
        ("init_user_ms", "in user space (init's code)"),
        ("init_sys_ms", "in the kernel on init's behalf"),
    ] {
        m.push(metric(
            &format!("init's own CPU time {what}"),
            "ms",
            f(key),
            None,
            "",
        ));
    }
    m.push(metric(
        "CPU of init's reaped children (setup helpers: mkfs.ext4, e2fsck, ...)",
        "ms",
        f("children_user_ms") + f("children_sys_ms"),
        None,
        &format!(
            "user {:.0} ms, kernel {:.0} ms; not in init's own figure (RUSAGE_CHILDREN)",
            f("children_user_ms"),
            f("children_sys_ms")
        ),
    ));
    m.push(metric(
        "init's RSS",
        "KiB",
        f("rss_kib"),
        None,
        "goal < 4096 KiB",
    ));
    // Per stage: the CPU between one timeline mark and the next, up to the
    // engine being ready; the rest is what init used after (status, logs).
    let events = st["guest"]["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (mut prev, mut prev_sys) = (f("start_user_ms") + f("start_sys_ms"), f("start_sys_ms"));
    for e in &events {
        let ev = e["event"].as_str().unwrap_or("?");
        let cpu = e["cpu_ms"].as_f64().unwrap_or(f64::NAN);
        let sys = e["sys_ms"].as_f64().unwrap_or(f64::NAN);
        let took = cpu - prev;
        let took_sys = sys - prev_sys;
        m.push(metric(
            &format!("init's own CPU, stage ending \"{ev}\""),
            "ms",
            took,
            None,
            &format!(
                "kernel part {took_sys:.0} ms; at {:.2} s",
                e["t"].as_f64().unwrap_or(f64::NAN)
            ),
        ));
        prev = cpu;
        prev_sys = sys;
        if ev == "all services ready" {
            break;
        }
    }
    m.push(metric(
        "init's own CPU after every service was ready (until the status answer)",
        "ms",
        f("cpu_ms") - prev,
        None,
        "",
    ));
    for t in init["threads"].as_array().into_iter().flatten() {
        if let (Some(name), Some(ms)) = (t[0].as_str(), t[1].as_f64()) {
            m.push(metric(
                &format!("init's CPU by thread: {name}"),
                "ms",
                ms,
                None,
                "live threads only; main's figure includes the kernel's boot work",
            ));
        }
    }
    for t in init["ended_threads"].as_array().into_iter().flatten() {
        if let (Some(name), Some(ms)) = (t[0].as_str(), t[1].as_f64()) {
            m.push(metric(
                &format!("init's CPU by ended thread: {name}"),
                "ms",
                ms,
                None,
                "summed over the threads of that name",
            ));
        }
    }
    for t in st["guest"]["data_disk"]["cpu_steps"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(step), Some(ms)) = (t[0].as_str(), t[1].as_f64()) {
            m.push(metric(
                &format!("init's own CPU in the data disk's step: {step}"),
                "ms",
                ms,
                None,
                "",
            ));
        }
    }
    m
}

/// The floor: containerd and dockerd started by hand in this VM (init's
/// `bench-engine-floor`), exec to `/_ping`, against hull's own boot.
pub fn floor_metrics(vm: &Vm, st: &Value) -> Result<Vec<Metric>> {
    let v = hull_qemu::control::request(
        &vm.home.join("vsock.sock"),
        &json!({"op": "bench-engine-floor"}),
    )?;
    if let Some(e) = v.get("error") {
        bail!("bench-engine-floor: {e}");
    }
    // The services were handed back: what follows in the bench needs them.
    let until = Instant::now() + Duration::from_secs(240);
    loop {
        let s = vm.status()?;
        let svcs = s["guest"]["services"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !svcs.is_empty() && svcs.iter().all(|x| x["ready"] == true) {
            break;
        }
        if Instant::now() > until {
            bail!("the engine's services were not ready again 240 s after the floor: {s}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let floor_s = v["dockerd_ping_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    let containerd_s = v["containerd_socket_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    let how = format!(
        "floor: containerd+dockerd exec'd together by hand in the same VM, state cleared, page cache {}; containerd's socket at {containerd_s:.2} s",
        if v["cold_cache"] == true { "dropped" } else { "NOT dropped" }
    );
    let mut m = Vec::new();
    let (Some(init), Some(first), Some(ready)) = (
        mark(st, "init started"),
        mark(st, "containerd started"),
        mark(st, "hull-gate ready"),
    ) else {
        bail!("init's timeline lacks init started / containerd started / hull-gate ready");
    };
    m.push(metric(
        "init start to engine ready (gate ready) vs dockerd alone",
        "s",
        ready.0 - init.0,
        Some(("dockerd alone, exec to /_ping", floor_s)),
        &format!(
            "{:+.0}% over the floor (goal ≤ +10%); {how}",
            ((ready.0 - init.0) / floor_s - 1.0) * 100.0
        ),
    ));
    m.push(metric(
        "first service started to engine ready (hull's services) vs dockerd alone",
        "s",
        ready.0 - first.0,
        Some(("dockerd alone, exec to /_ping", floor_s)),
        &format!(
            "{:+.0}% over the floor; init's setup before the first service: {:.2} s",
            ((ready.0 - first.0) / floor_s - 1.0) * 100.0,
            first.0 - init.0
        ),
    ));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_cpu_is_split_by_stage_from_where_init_began() {
        let st = json!({"guest": {
            "init": {"cpu_ms": 700.0, "init_cpu_ms": 200.0, "init_user_ms": 50.0,
                     "init_sys_ms": 150.0, "start_user_ms": 100.0, "start_sys_ms": 400.0,
                     "children_user_ms": 30.0, "children_sys_ms": 70.0, "rss_kib": 3000.0,
                     "threads": [["hull-init", 600.0]], "ended_threads": [["ready-dockerd", 20.0]]},
            "timeline": [
                {"t": 1.0, "event": "init started", "cpu_ms": 510.0, "sys_ms": 405.0},
                {"t": 2.0, "event": "data disk ready", "cpu_ms": 600.0, "sys_ms": 480.0},
                {"t": 9.0, "event": "all services ready", "cpu_ms": 650.0, "sys_ms": 500.0},
                {"t": 20.0, "event": "dockerd ready", "cpu_ms": 690.0, "sys_ms": 530.0},
            ],
            "data_disk": {"cpu_steps": [["mount", 80.0]]},
        }});
        let m = init_metrics(&st);
        let get = |name: &str| {
            m.iter()
                .find(|x| x.name == name)
                .unwrap_or_else(|| panic!("no metric {name}"))
        };
        assert_eq!(get("init's own CPU time").hull, 200.0);
        let children = get("CPU of init's reaped children (setup helpers: mkfs.ext4, e2fsck, ...)");
        assert_eq!(children.hull, 100.0);
        let first = get("init's own CPU, stage ending \"init started\"");
        assert_eq!(first.hull, 10.0);
        assert!(first.note.starts_with("kernel part 5 ms"), "{}", first.note);
        let disk = get("init's own CPU, stage ending \"data disk ready\"");
        assert_eq!(disk.hull, 90.0);
        assert!(disk.note.starts_with("kernel part 75 ms"), "{}", disk.note);
        // Stages end at "all services ready"; the rest is counted after.
        assert!(!m.iter().any(|x| x.name.contains("\"dockerd ready\"")));
        assert_eq!(
            get("init's own CPU after every service was ready (until the status answer)").hull,
            50.0
        );
        assert_eq!(get("init's CPU by ended thread: ready-dockerd").hull, 20.0);
        assert_eq!(
            get("init's own CPU in the data disk's step: mount").hull,
            80.0
        );
    }
}
