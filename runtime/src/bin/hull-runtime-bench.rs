//! In-VM benchmark: create+start+wait+delete of one tiny container with
//! hull-runtime and the reference runtimes (Debian's runc and crun), same
//! bundle, same boot, interleaved so noise hits all alike. Like with like:
//! the bundle asks every runtime for a user namespace with an exclusive
//! range (hull-runtime makes one for every container anyway, with ranges
//! of its own) and a seccomp filter of the same size (hull's deny list as
//! errno rules; the reference runtimes' copy also has rules for the mount
//! family and `socket(AF_VSOCK)`, which hull-runtime adds by itself). Each
//! runtime's version is read from its binary (`--version`), never written
//! here. Only in the bench image (`cargo xtask image --variant bench`),
//! started by its init's control port for `cargo xtask bench`; prints one
//! JSON object. Measures only; decides nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

struct Rt {
    name: String,
    bin: PathBuf,
    args: Vec<String>,
}

fn parse_args() -> Result<(usize, PathBuf, Vec<Rt>)> {
    let mut n = 20;
    let mut payload = PathBuf::from("/sbin/hull-init");
    let mut rts = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--iterations" => n = it.next().context("--iterations N")?.parse()?,
            "--payload" => payload = it.next().context("--payload FILE")?.into(),
            // --runtime name=/path[,arg,arg...]
            "--runtime" => {
                let spec = it.next().context("--runtime name=/path[,args]")?;
                let (name, rest) = spec.split_once('=').context("--runtime name=/path")?;
                let mut parts = rest.split(',');
                let bin = PathBuf::from(parts.next().unwrap_or_default());
                rts.push(Rt {
                    name: name.to_string(),
                    bin,
                    args: parts.map(String::from).collect(),
                });
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    if rts.is_empty() {
        bail!("give at least one --runtime");
    }
    Ok((n.clamp(1, 500), payload, rts))
}

/// A bundle whose container runs a static binary once and exits. No
/// idmapped mount for runc and crun: Debian's runc 1.1 has none (1.2 added
/// them) and neither idmaps `root.path`; crun idmaps binds only, and a bind
/// source hull-runtime accepts lies under /var/lib/docker (0710), where the
/// reference runtimes' unprivileged container root cannot reach. So
/// hull-runtime's idmapped rootfs is a cost only hull pays here.
fn bundle(dir: &Path, payload: &Path, reference: bool) -> Result<()> {
    let root = dir.join("rootfs");
    for d in ["proc", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(payload, root.join("bench")).with_context(|| payload.display().to_string())?;
    let caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bench", "--version"],
            "env": ["PATH=/"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ],
        "linux": {
            "namespaces": [{"type": "user"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}, {"type": "cgroup"}],
            // For runc and crun; hull-runtime allocates its own ranges.
            "uidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
            "seccomp": seccomp_profile(reference)
        }
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    std::fs::write(dir.join("stdin"), b"")?;
    Ok(())
}

/// hull's seccomp shape: allow by default, its deny list as errno rules.
/// hull-runtime lays over it what it always adds (the mount family to
/// hull-guard, `socket(AF_VSOCK)` refused); the reference runtimes'
/// profile (`reference`) carries rules for the same calls, so each
/// runtime installs a filter of the same size: the mount family as
/// SCMP_ACT_LOG (runc and crun would need a seccomp agent to notify), the
/// vsock rule as it is.
fn seccomp_profile(reference: bool) -> serde_json::Value {
    use hull_runtime::seccomp::{DENY_ENOSYS, DENY_LIST, MOUNT_FAMILY};
    let mut syscalls = vec![
        json!({"names": DENY_LIST, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}),
        json!({"names": DENY_ENOSYS, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
    ];
    if reference {
        syscalls.push(json!({"names": MOUNT_FAMILY, "action": "SCMP_ACT_LOG"}));
        syscalls.push(json!({
            "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM,
            "args": [{"index": 0, "value": libc::AF_VSOCK, "op": "SCMP_CMP_EQ"}]
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls
    })
}

/// Whether `rt` is one of the reference runtimes (the bench's names for
/// hull-runtime all start with `hull`).
fn is_reference(rt: &Rt) -> bool {
    !rt.name.starts_with("hull")
}

/// The first line of `<bin> --version`, or why it could not be read.
fn version(bin: &Path) -> String {
    match Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        Ok(o) => format!(
            "unknown ({} --version: {})",
            bin.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("unknown ({}: {e})", bin.display()),
    }
}

/// Runs one runtime command; its stderr (the log of a `--debug` runtime)
/// between the times it was spawned and reaped, so the trace also shows
/// what exec and process exit cost.
fn step(rt: &Rt, state: &Path, args: &[&str], bundle: &Path) -> Result<String> {
    let spawned = hull_runtime::logging::rfc3339_now();
    let st = Command::new(&rt.bin)
        .args(&rt.args)
        .arg("--root")
        .arg(state)
        .args(args)
        .current_dir(bundle)
        // Files of the bench, never /dev/null: crun in a user namespace
        // fchowns its stdio to the container's root.
        .stdin(std::fs::File::open(bundle.join("stdin")).context("bench stdin")?)
        .stdout(std::fs::File::create(bundle.join("stdout")).context("bench stdout")?)
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting {}", rt.bin.display()))?;
    if !st.status.success() {
        bail!(
            "{} {args:?}: {}",
            rt.name,
            String::from_utf8_lossy(&st.stderr).trim()
        );
    }
    let log = String::from_utf8_lossy(&st.stderr);
    if log.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "{spawned} bench: spawn {args:?}\n{log}{} bench: reaped\n",
        hull_runtime::logging::rfc3339_now()
    ))
}

/// The stage marks of one round's `--debug` log (`<time> debug: <who>
/// stage=<name>`), as (label, ms since the round's first line). A label
/// seen again (the second command's `process started`) gets `#2`.
fn stage_offsets(log: &str) -> Vec<(String, f64)> {
    // Seconds of the day from RFC 3339 with nanoseconds; a round lasts
    // well under a day, so a wrap past midnight is one day added.
    let secs = |line: &str| -> Option<f64> {
        let t = line.split_whitespace().next()?.split_once('T')?.1;
        let t = t.trim_end_matches('Z');
        let mut it = t.split(':');
        let h: f64 = it.next()?.parse().ok()?;
        let m: f64 = it.next()?.parse().ok()?;
        let s: f64 = it.next()?.parse().ok()?;
        Some(h * 3600.0 + m * 60.0 + s)
    };
    let mut start = None;
    let mut out: Vec<(String, f64)> = Vec::new();
    for line in log.lines() {
        let Some(t) = secs(line) else { continue };
        let t0 = *start.get_or_insert(t);
        let Some((_, stage)) = line.split_once(" stage=") else {
            continue;
        };
        let mut label = stage.trim().to_string();
        let seen = out
            .iter()
            .filter(|(l, _)| l.split('#').next() == Some(&label))
            .count();
        if seen > 0 {
            label = format!("{label}#{}", seen + 1);
        }
        let d = if t < t0 { t + 86400.0 - t0 } else { t - t0 };
        out.push((label, d * 1000.0));
    }
    out
}

/// Per stage over all measured rounds: the median time since the round
/// began and the median time since the stage logged before it, ordered by
/// the first. One round's trace is one sample; a neighbour's build on the
/// same host can double any one of them.
fn stage_medians(rounds: &[String]) -> Vec<serde_json::Value> {
    let per_round: Vec<Vec<(String, f64)>> = rounds.iter().map(|l| stage_offsets(l)).collect();
    let mut labels: Vec<String> = Vec::new();
    for r in &per_round {
        for (l, _) in r {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let mut rows: Vec<(String, f64, f64, usize)> = labels
        .into_iter()
        .map(|l| {
            let mut at = Vec::new();
            let mut step = Vec::new();
            for r in &per_round {
                if let Some(i) = r.iter().position(|(x, _)| *x == l) {
                    at.push(r[i].1);
                    step.push(if i == 0 { r[i].1 } else { r[i].1 - r[i - 1].1 });
                }
            }
            let n = at.len();
            (l, median(at), median(step), n)
        })
        .collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    rows.into_iter()
        .map(|(l, at, step, n)| json!({"stage": l, "at_ms": at, "step_ms": step, "rounds": n}))
        .collect()
}

fn main() -> Result<()> {
    let (n, payload, rts) = parse_args()?;
    // Not under /run/hull (0700): runc's and crun's container root is an
    // unprivileged id of the user namespace and must be able to reach the
    // rootfs (hull-runtime shifts ids itself).
    let work = PathBuf::from("/run/hull-bench-runtime");
    let _ = std::fs::remove_dir_all(&work);
    // One bundle for hull-runtime, one for the reference runtimes: the
    // same but for the seccomp rules hull-runtime adds by itself.
    let b = work.join("bundle");
    let b_ref = work.join("bundle-reference");
    for d in [&work, &b, &b_ref] {
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    bundle(&b, &payload, false)?;
    bundle(&b_ref, &payload, true)?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); rts.len()];
    let mut last_log: Vec<String> = vec![String::new(); rts.len()];
    let mut logs: Vec<Vec<String>> = vec![Vec::new(); rts.len()];
    // Two warm-up rounds, then n measured ones, interleaved.
    for round in 0..n + 2 {
        for (i, rt) in rts.iter().enumerate() {
            let state = work.join(format!("state-{}", rt.name));
            let id = format!("bench-{}-{round}", rt.name);
            let b = if is_reference(rt) { &b_ref } else { &b };
            let t = Instant::now();
            let run = step(
                rt,
                &state,
                &["run", "--bundle", &b.display().to_string(), &id],
                b,
            )?;
            let delete = step(rt, &state, &["delete", "--force", &id], b)?;
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            last_log[i] = run + &delete;
            if round >= 2 {
                samples[i].push(elapsed);
                if !last_log[i].is_empty() {
                    logs[i].push(last_log[i].clone());
                }
            }
        }
    }
    let mut out = serde_json::Map::new();
    for (((rt, mut s), log), all) in rts.iter().zip(samples).zip(last_log).zip(logs) {
        s.sort_by(|a, b| a.total_cmp(b));
        let median = s[s.len() / 2];
        let mut v = json!({
            "median_ms": median,
            "samples_ms": s,
            "version": version(&rt.bin),
            "args": rt.args,
            "bundle": "user namespace (exclusive 65536-id range), a seccomp filter of hull's size (allow + deny list + mount family + vsock), read-only rootfs, /proc and /dev",
        });
        if !log.is_empty() {
            // What a --debug runtime logged in the last round (stage timestamps).
            v["last_log"] = json!(log.chars().take(16 * 1024).collect::<String>());
            v["stage_medians"] = json!(stage_medians(&all));
        }
        out.insert(rt.name.clone(), v);
    }
    println!("{}", serde_json::Value::Object(out));
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_medians_are_per_stage_over_rounds() {
        let round = |a: &str, b: &str| {
            format!(
                "2026-12-04T23:59:59.{a}Z bench: spawn [\"run\"]\n\
                 2026-12-04T23:59:59.{b}Z debug: create stage=m: forked\n\
                 2026-12-05T00:00:00.000000000Z debug: hull-runtime stage=process started\n\
                 2026-12-05T00:00:00.001000000Z debug: hull-runtime stage=process started\n"
            )
        };
        let rounds = [
            round("900000000", "910000000"),
            round("900000000", "930000000"),
            round("900000000", "920000000"),
        ];
        let rows = stage_medians(&rounds);
        let get = |l: &str| {
            rows.iter()
                .find(|r| r["stage"] == l)
                .unwrap_or_else(|| panic!("no {l} in {rows:?}"))
        };
        // Median of 10, 30, 20 ms after the spawn line.
        let m = get("m: forked");
        assert!((m["at_ms"].as_f64().unwrap() - 20.0).abs() < 1e-6, "{m}");
        // Past midnight, and a label seen again is counted apart.
        let p = get("process started");
        assert!((p["at_ms"].as_f64().unwrap() - 100.0).abs() < 1e-6, "{p}");
        let p2 = get("process started#2");
        assert!((p2["step_ms"].as_f64().unwrap() - 1.0).abs() < 1e-6, "{p2}");
        assert_eq!(rows.len(), 3);
    }
}
