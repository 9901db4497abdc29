//! `cargo xtask bench --save-restore`: issue 17's "beyond the floor"
//! experiment. Boot an engine-ready VM as `hull up` does (vhost-device-vsock
//! for the channel, virtiofsd for the default shares), then ask QEMU over
//! its QMP socket to save the whole machine to a file (`migrate` to
//! `exec:cat > file`, QEMU 7.2 has no `file:` URI). The figures are what
//! QEMU answers: whether outgoing migration is blocked and why (its own
//! words), and, only if the state was really written, its size and the time
//! it took. A restore (`-incoming`) is not attempted when the save is
//! refused: there would be nothing to restore from.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{metric, Metric};
use crate::vmtest::vm::Vm;

/// A QMP session on a running QEMU (one command at a time).
struct Qmp {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Qmp {
    fn connect(sock: &Path) -> Result<Qmp> {
        let s = UnixStream::connect(sock)
            .with_context(|| format!("connecting to QEMU's QMP socket {}", sock.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut q = Qmp {
            r: BufReader::new(s.try_clone()?),
            w: s,
        };
        let greeting = q.line()?;
        if greeting.get("QMP").is_none() {
            bail!("QMP greeting expected, got {greeting}");
        }
        q.call("qmp_capabilities", json!({}))?
            .map_err(|e| anyhow::anyhow!("qmp_capabilities: {e}"))?;
        Ok(q)
    }

    fn line(&mut self) -> Result<Value> {
        let mut l = String::new();
        if self.r.read_line(&mut l)? == 0 {
            bail!("QEMU closed its QMP socket");
        }
        serde_json::from_str(&l).with_context(|| format!("QMP sent {l:?}"))
    }

    /// `Ok(Ok(return))`, or `Ok(Err(QEMU's error description))`; events
    /// that arrive in between are skipped.
    fn call(&mut self, cmd: &str, args: Value) -> Result<std::result::Result<Value, String>> {
        let req = json!({ "execute": cmd, "arguments": args });
        self.w.write_all(format!("{req}\n").as_bytes())?;
        loop {
            let v = self.line()?;
            if let Some(r) = v.get("return") {
                return Ok(Ok(r.clone()));
            }
            if let Some(e) = v.get("error") {
                return Ok(Err(format!(
                    "{}: {}",
                    e["class"].as_str().unwrap_or("?"),
                    e["desc"].as_str().unwrap_or("?")
                )));
            }
        }
    }
}

pub fn run(hull: &Path, image: &Path) -> Result<Vec<Metric>> {
    let t = Instant::now();
    let vm = Vm::boot(hull, image, &["--memory", "2048"])?;
    let cold = t.elapsed().as_secs_f64();
    let mut q = Qmp::connect(&vm.home.join("qmp.sock"))?;
    let mut m = vec![metric(
        "save/restore: hull up to engine ready (cold boot, the VM to save)",
        "s",
        cold,
        None,
        "",
    )];
    let info = q
        .call("query-migrate", json!({}))?
        .map_err(|e| anyhow::anyhow!("query-migrate: {e}"))?;
    let reasons: Vec<String> = info["blocked-reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    eprintln!("[bench] save/restore: query-migrate blocked-reasons: {reasons:?}");
    // QEMU 7.2 caps a migration at 32 MiB/s by default: a save to a local
    // file has no link to spare.
    q.call(
        "migrate-set-parameters",
        json!({ "max-bandwidth": 1u64 << 40 }),
    )?
    .map_err(|e| anyhow::anyhow!("migrate-set-parameters: {e}"))?;
    let state = vm.home.join("vm-state.bin");
    let _ = std::fs::remove_file(&state);
    let t = Instant::now();
    let started = q.call(
        "migrate",
        json!({ "uri": format!("exec:cat > {}", state.display()) }),
    )?;
    let outcome = match started {
        Err(e) => Err(e),
        Ok(_) => loop {
            std::thread::sleep(Duration::from_millis(200));
            let i = q
                .call("query-migrate", json!({}))?
                .map_err(|e| anyhow::anyhow!("query-migrate: {e}"))?;
            match i["status"].as_str() {
                Some("completed") => break Ok(t.elapsed().as_secs_f64()),
                Some("failed") | Some("cancelled") => {
                    break Err(format!(
                        "migration {}: {}",
                        i["status"].as_str().unwrap_or("?"),
                        i["error-desc"].as_str().unwrap_or("(no error-desc)")
                    ))
                }
                _ if t.elapsed() > Duration::from_secs(600) => {
                    break Err("migration still running after 600 s".into())
                }
                _ => {}
            }
        },
    };
    match outcome {
        Err(e) => {
            eprintln!("[bench] save/restore: QEMU refused to save the VM: {e}");
            m.push(metric(
                "save/restore: QEMU saves an engine-ready VM",
                "ok",
                0.0,
                None,
                &format!(
                    "refused: {e}; blocked-reasons: {}",
                    if reasons.is_empty() {
                        "none listed".to_string()
                    } else {
                        reasons.join(" | ")
                    }
                ),
            ));
        }
        Ok(secs) => {
            let size = std::fs::metadata(&state).map(|s| s.len()).unwrap_or(0);
            eprintln!("[bench] save/restore: saved {size} bytes in {secs:.2} s");
            m.push(metric(
                "save/restore: QEMU saves an engine-ready VM",
                "ok",
                1.0,
                None,
                "state written; restoring it at hull up is not wired",
            ));
            m.push(metric(
                "save/restore: time to save the VM state",
                "s",
                secs,
                None,
                &format!("{:.0} MiB written", size as f64 / (1 << 20) as f64),
            ));
        }
    }
    let _ = std::fs::remove_file(&state);
    Ok(m)
}
