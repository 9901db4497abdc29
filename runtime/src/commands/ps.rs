//! `ps`: the container's processes (from its cgroup).

use crate::config::RuntimeConfig;
use crate::error::{Error, Result};
use crate::state::State;

pub fn ps(cfg: &RuntimeConfig, id: &str, format: &str) -> Result<String> {
    let st = State::load(&cfg.root, id)?;
    let mut pids = match &st.cgroup {
        Some(cg) => cg.pids(),
        None if st.alive() => vec![st.pid],
        None => vec![],
    };
    pids.sort_unstable();
    pids.dedup();
    match format {
        "json" => Ok(serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into())),
        "table" => {
            let mut out = String::from("PID\tCMD\n");
            for p in pids {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| {
                        String::from_utf8_lossy(&c)
                            .replace('\0', " ")
                            .trim()
                            .to_string()
                    })
                    .unwrap_or_default();
                out.push_str(&format!("{p}\t{cmd}\n"));
            }
            Ok(out)
        }
        f => Err(Error::Other(format!(
            "unknown ps format {f:?} (table or json)"
        ))),
    }
}
