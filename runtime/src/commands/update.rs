//! `update`: new cgroup resources for a running container.

use std::io::Read;

use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources};

use crate::cli::UpdateArgs;
use crate::config::RuntimeConfig;
use crate::error::{Context, Error, Result};
use crate::state::State;

pub fn update(cfg: &RuntimeConfig, a: &UpdateArgs) -> Result<()> {
    let st = State::load(&cfg.root, &a.id)?;
    let mut res: LinuxResources = match &a.resources {
        Some(p) => {
            let mut data = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut data)
                    .ctx(|| "read resources from stdin")?;
            } else {
                data = std::fs::read_to_string(p).ctx(|| format!("read {}", p.display()))?;
            }
            serde_json::from_str(&data).map_err(|e| Error::Bundle(format!("resources: {e}")))?
        }
        None => LinuxResources::default(),
    };
    let be = |e: oci_spec::OciSpecError| Error::Other(e.to_string());
    if let Some(m) = a.memory {
        res.set_memory(Some(
            LinuxMemoryBuilder::default().limit(m).build().map_err(be)?,
        ));
    }
    if let Some(p) = a.pids_limit {
        res.set_pids(Some(
            LinuxPidsBuilder::default().limit(p).build().map_err(be)?,
        ));
    }
    if a.cpu_quota.is_some() || a.cpu_period.is_some() || a.cpu_shares.is_some() {
        let mut b = LinuxCpuBuilder::default();
        if let Some(q) = a.cpu_quota {
            b = b.quota(q);
        }
        if let Some(p) = a.cpu_period {
            b = b.period(p);
        }
        if let Some(s) = a.cpu_shares {
            b = b.shares(s);
        }
        res.set_cpu(Some(b.build().map_err(be)?));
    }
    let cg = st.cgroup.as_ref().ok_or_else(|| {
        Error::Other(format!(
            "container {} has no cgroup v2: cannot update",
            a.id
        ))
    })?;
    cg.apply(&res)
}
