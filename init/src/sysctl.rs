//! Lockdown sysctls, written before any service starts and read back: a
//! hardening value the kernel silently refused must show up in the log and
//! in `hull status`. The values come from the image manifest's `[vm]
//! sysctls`, carried into the root as vm.json ([`crate::vmconf`]); the
//! reasons for each value are in docs/security.md.

use crate::vmconf::Sysctl;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub key: String,
    pub wanted: String,
    /// "ok", "absent" (the kernel has no such knob: the feature is compiled
    /// out, which is stronger), or "refused: ..." .
    pub result: String,
}

pub fn apply(list: &[Sysctl]) -> Vec<Outcome> {
    list.iter()
        .map(|Sysctl { key: k, value: v }| {
            let path = format!("/proc/sys/{k}");
            let result = if !std::path::Path::new(&path).exists() {
                "absent".to_string()
            } else {
                match std::fs::write(&path, v) {
                    Err(e) => format!("refused: {e}"),
                    Ok(()) => match std::fs::read_to_string(&path) {
                        Ok(now) if now.trim() == v => "ok".to_string(),
                        Ok(now) => format!("refused: reads back {:?}", now.trim()),
                        Err(e) => format!("refused: read back failed: {e}"),
                    },
                }
            };
            let key = k.replace('/', ".");
            match result.as_str() {
                "ok" => crate::debug!("sysctl {key}={v}"),
                "absent" => crate::info!("sysctl {key}: not in this kernel (compiled out)"),
                r => crate::warn!("sysctl {key}={v}: {r}"),
            }
            Outcome {
                key,
                wanted: v.to_string(),
                result,
            }
        })
        .collect()
}
