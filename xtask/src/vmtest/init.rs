//! hull-init as a user sees it through `hull status`, `hull down` and `up`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::vm::Vm;

fn service<'a>(st: &'a Value, name: &str) -> Result<&'a Value> {
    st["guest"]["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .with_context(|| format!("no service {name} in status: {st}"))
}

/// The boot timeline has every service ready; the lockdown held.
pub fn status_timeline(vm: &Vm) -> Result<()> {
    let st = vm.status()?;
    ensure!(st["state"] == "running", "{st}");
    ensure!(
        st["guest"].get("weakened") == Some(&Value::Null),
        "this image is a weakened build (wall removed: {}); a normal image reports `weakened: null`",
        st["guest"]["weakened"]
    );
    // The gate answered the list of containers hull did not create (none).
    ensure!(
        st["unprotected_containers"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "unprotected containers: {}",
        st["unprotected_containers"]
    );
    for name in ["containerd", "hull-guard", "dockerd", "hull-gate"] {
        let s = service(&st, name)?;
        ensure!(s["ready"] == true, "{name} not ready: {s}");
    }
    let tl = st["guest"]["timeline"].as_array().context("no timeline")?;
    ensure!(
        tl.iter().any(|m| m["event"] == "all services ready"),
        "timeline lacks `all services ready`: {tl:?}"
    );
    let refused: Vec<&Value> = st["guest"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["result"]
                .as_str()
                .is_some_and(|r| r.starts_with("refused"))
        })
        .collect();
    ensure!(refused.is_empty(), "sysctls refused: {refused:?}");
    ensure!(
        st["guest"]["data_disk"]["mounted"] == true,
        "{}",
        st["guest"]["data_disk"]
    );
    ensure!(
        st["guest"]["settings"]["source"] == "fw_cfg",
        "{}",
        st["guest"]["settings"]
    );
    Ok(())
}

fn wait_ready(vm: &Vm, name: &str, within: Duration) -> Result<Value> {
    let start = Instant::now();
    loop {
        let st = vm.status()?;
        let s = service(&st, name)?.clone();
        if s["ready"] == true {
            return Ok(s);
        }
        if start.elapsed() > within {
            bail!("{name} not ready again after {within:?}: {s}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Killing dockerd makes init restart it and report exactly one restart.
pub fn restart_dockerd(vm: &Vm) -> Result<()> {
    let before = service(&vm.status()?, "dockerd")?["restarts"]
        .as_u64()
        .unwrap_or(0);
    vm.hull_cmd(&["signal", "dockerd", "SIGKILL"])?.success()?;
    std::thread::sleep(Duration::from_secs(1));
    let s = wait_ready(vm, "dockerd", Duration::from_secs(120))?;
    ensure!(
        s["restarts"].as_u64() == Some(before + 1),
        "expected {} restarts, status says {s}",
        before + 1
    );
    super::engine::version(vm)
}

/// A file in a volume, a stopped container and an image survive `down`/`up`;
/// `down` powers off promptly with QEMU exiting 0.
pub fn persistence(vm: &mut Vm) -> Result<()> {
    vm.docker(&["volume", "create", "keep"])?.success()?;
    vm.docker(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])?
    .success()?;
    vm.docker(&["create", "--name", "kept-container", "busybox", "true"])?
        .success()?;
    // dockerd restarts this one by itself at the next boot, while hull-guard
    // and the gate start beside it (no serial wait): it must come back,
    // created by hull-runtime (its own user namespace), which waits for the
    // guard rather than refusing it.
    vm.docker(&[
        "run",
        "-d",
        "--name",
        "always-up",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "3600",
    ])?
    .success()?;
    let start = Instant::now();
    vm.down()?.success()?;
    let took = start.elapsed();
    let log = std::fs::read_to_string(vm.home.join("hull.log")).unwrap_or_default();
    ensure!(
        log.lines()
            .rev()
            .take(5)
            .any(|l| l.contains("qemu exited with status 0")),
        "QEMU did not exit 0 on shutdown: {log}"
    );
    // A figure, not a check (timing belongs to `cargo xtask bench`): the
    // clean exit above is what proves the shutdown was graceful.
    eprintln!("[vm-test] init/persistence: hull down took {took:.1?}");
    vm.up()?;
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            "keep:/data",
            "busybox",
            "cat",
            "/data/f",
        ])?
        .success()?;
    ensure!(r.out() == "kept", "{r}");
    vm.docker(&["inspect", "kept-container"])?.success()?;
    vm.docker(&["image", "inspect", "busybox"])?.success()?;
    let start = Instant::now();
    loop {
        let st = vm
            .docker(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.RestartCount}}",
                "always-up",
            ])?
            .success()?;
        if st.out().starts_with("running") {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(60),
            "a --restart always container did not come back after the reboot: {st}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let map = vm
        .docker(&["exec", "always-up", "cat", "/proc/self/uid_map"])?
        .success()?;
    let first: Vec<&str> = map.out().split_whitespace().take(3).collect();
    ensure!(
        first.len() == 3 && first[0] == "0" && first[1] != "0",
        "the restarted container is not in a user namespace of its own: {map}"
    );
    vm.docker(&["rm", "-f", "always-up"])?.success()?;
    Ok(())
}

/// QEMU killed mid-write: the next boot recovers the journal and the engine
/// and its data work.
pub fn hard_kill(vm: &mut Vm) -> Result<()> {
    vm.docker(&[
        "run",
        "-d",
        "-v",
        "churn:/data",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do dd if=/dev/zero of=/data/f$((i % 8)) bs=64k count=16 2>/dev/null; i=$((i+1)); done",
    ])?
    .success()?;
    std::thread::sleep(Duration::from_secs(3));
    vm.hull_cmd(&["down", "--force"])?.success()?;
    vm.up()?;
    let st = vm.status()?;
    let disk = &st["guest"]["data_disk"];
    ensure!(disk["mounted"] == true && disk["error"].is_null(), "{disk}");
    // The superblock on disk may be older than the journal's copy after a
    // hard stop: the format is read through the kernel's recovery, never
    // from the label alone.
    ensure!(
        disk["decided_by"] == "read-only mount (its journal needs recovery)",
        "a disk stopped mid-write was not decided after recovery: {disk}"
    );
    vm.docker(&["run", "--rm", "-v", "churn:/data", "busybox", "ls", "/data"])?
        .success()?;
    Ok(())
}

/// Malformed settings reach the VM: it boots with isolation on, the error
/// shows in `hull status`, the engine works.
pub fn malformed_settings(vm: &Vm) -> Result<()> {
    let st = vm.status()?;
    let s = &st["guest"]["settings"];
    ensure!(s["source"] == "strict-defaults", "{s}");
    ensure!(
        s["error"].as_str().is_some_and(|e| e.contains("not valid")),
        "{s}"
    );
    let human = vm.hull_cmd(&["status"])?.success()?;
    ensure!(
        human.stdout.contains("ERROR"),
        "hull status hides the error: {human}"
    );
    super::engine::version(vm)
}

/// The shipped image's control port has no benchmark operations: each is
/// refused by init's parser as an unknown request (and no listener opens
/// for `echo`), while `status` answers on the same port. The image says it
/// is the shipped one (image.json `variant`).
pub fn control_no_bench_ops(vm: &Vm) -> Result<()> {
    let img: Value = serde_json::from_str(
        &std::fs::read_to_string(vm.image.join("image.json")).context("image.json")?,
    )?;
    ensure!(
        img["variant"] == "shipped",
        "not the shipped image: variant {}",
        img["variant"]
    );
    let uds = vm.home.join("vsock.sock");
    let st = hull_qemu::control::request(&uds, &serde_json::json!({"op": "status"}))?;
    ensure!(st["version"].is_string(), "status did not answer: {st}");
    for (op, req) in [
        ("echo", serde_json::json!({"op": "echo", "port": 5100})),
        (
            "sink",
            serde_json::json!({"op": "sink", "port": 5101, "bytes": 1}),
        ),
        (
            "engine-ping",
            serde_json::json!({"op": "engine-ping", "count": 1}),
        ),
        (
            "bench-runtimes",
            serde_json::json!({"op": "bench-runtimes", "iterations": 1}),
        ),
        (
            "bench-engine-runtime",
            serde_json::json!({"op": "bench-engine-runtime", "runtime": "crun"}),
        ),
        (
            "bench-engine-floor",
            serde_json::json!({"op": "bench-engine-floor"}),
        ),
    ] {
        let v = hull_qemu::control::request(&uds, &req)?;
        let e = v["error"].as_str().unwrap_or_default();
        ensure!(
            e.starts_with(&format!("bad request: unknown variant `{op}`")),
            "{op} on the shipped init: {v}"
        );
    }
    // Nothing listens where `echo` would have listened.
    match hull_qemu::hvsock::connect_blocking(&uds, 5100) {
        Ok(_) => bail!("vsock port 5100 accepted a connection on the shipped image"),
        Err(e) => ensure!(
            e.kind() == std::io::ErrorKind::ConnectionRefused,
            "vsock port 5100: expected `nothing listens`, got {e}"
        ),
    }
    Ok(())
}

/// An idle engine gives its page cache back: a container writes 96 MiB
/// to a named volume (clean page cache once synced) and ends; with no
/// container running, init drops the clean cache within a few checks and
/// says so in `hull status` (`guest.idle_cache`), by at least the file's
/// size. Runs alone (serial): another scenario's container would keep
/// the engine busy.
pub fn idle_cache(vm: &Vm) -> Result<()> {
    let drops = |st: &Value| st["guest"]["idle_cache"]["drops"].as_u64();
    let st = vm.status()?;
    let before = drops(&st).with_context(|| {
        format!(
            "status has no guest.idle_cache.drops: {}",
            st["guest"]["idle_cache"]
        )
    })?;
    let vol = "hull-idle-cache";
    let r = vm
        .docker(&[
            "run",
            "--rm",
            "-v",
            &format!("{vol}:/v"),
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/v/f bs=1M count=96 2>/dev/null && sync",
        ])?
        .success();
    let waited = r.and_then(|_| {
        let start = Instant::now();
        loop {
            let st = vm.status()?;
            let c = &st["guest"]["idle_cache"];
            if drops(&st).is_some_and(|n| n > before) {
                let (b, a) = (
                    c["last_before_kib"].as_u64().unwrap_or(0),
                    c["last_after_kib"].as_u64().unwrap_or(u64::MAX),
                );
                ensure!(
                    b >= a + 64 * 1024,
                    "the drop freed too little to have held the 96 MiB file: {c}"
                );
                return Ok(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("no page-cache drop within 120 s of the engine going idle: {c}");
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    let _ = vm.docker(&["volume", "rm", "-f", vol]);
    let waited = waited?;
    eprintln!(
        "[init/idle-cache] dropped {:.0} s after the container ended",
        waited.as_secs_f64()
    );
    Ok(())
}
