//! OCI hooks. Docker wires container networking through them (libnetwork's
//! setkey hook reads the state on stdin and joins /proc/<pid>/ns/net).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

pub fn run(kind: &str, hooks: &[Hook], state_json: &str) -> Result<()> {
    for h in hooks {
        let mut cmd = Command::new(h.path());
        if let Some(args) = h.args() {
            if let Some(a0) = args.first() {
                use std::os::unix::process::CommandExt;
                cmd.arg0(a0);
            }
            cmd.args(args.iter().skip(1));
        }
        cmd.env_clear();
        for e in h.env().clone().unwrap_or_default() {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Other(format!("{kind} hook {}: {e}", h.path().display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(state_json.as_bytes());
        }
        let deadline = h
            .timeout()
            .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
        let status = if deadline.is_none() {
            child
                .wait()
                .map_err(|e| Error::Other(format!("{kind} hook {}: {e}", h.path().display())))?
        } else {
            loop {
                match child.try_wait() {
                    Ok(Some(s)) => break s,
                    Ok(None) => {}
                    Err(e) => {
                        return Err(Error::Other(format!(
                            "{kind} hook {}: {e}",
                            h.path().display()
                        )))
                    }
                }
                if deadline.is_some_and(|d| Instant::now() > d) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Other(format!(
                        "{kind} hook {} timed out",
                        h.path().display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return Err(Error::Other(format!(
                "{kind} hook {} failed ({status}): {}",
                h.path().display(),
                err.trim()
            )));
        }
    }
    Ok(())
}
