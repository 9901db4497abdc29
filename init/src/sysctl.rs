//! Lockdown sysctls, written before any service starts and read back: a
//! hardening value the kernel silently refused must show up in the log and
//! in `hull status`. The values come from the image manifest's `[vm]
//! sysctls`, carried into the root as [`VM_JSON`] (issue 18 item 3); the
//! reasons for each value are in docs/security.md.

use serde::Deserialize;

/// Written by the image build (hull-image's `vmconf`).
pub const VM_JSON: &str = "/usr/lib/hull/vm.json";
const FORMAT: u32 = 1;
const MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VmJson {
    format: u32,
    sysctls: Vec<Sysctl>,
}

/// The sysctls of [`VM_JSON`]. Fails closed: a missing, oversized or
/// malformed file, an empty list or a key that is not a plain path below
/// /proc/sys is an error naming the file, and init then starts nothing.
pub fn load() -> Result<Vec<Sysctl>, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(VM_JSON)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("{VM_JSON}: {e}"))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(format!("{VM_JSON}: larger than {MAX_BYTES} bytes"));
    }
    parse(&text).map_err(|e| format!("{VM_JSON}: {e}"))
}

pub fn parse(text: &str) -> Result<Vec<Sysctl>, String> {
    let v: VmJson = serde_json::from_str(text).map_err(|e| format!("malformed: {e}"))?;
    if v.format != FORMAT {
        return Err(format!(
            "format {} (this init reads format {FORMAT})",
            v.format
        ));
    }
    if v.sysctls.is_empty() {
        return Err("no sysctls: the VM would run without its lockdown".into());
    }
    for s in &v.sysctls {
        let plain = !s.key.is_empty()
            && s.key.split('/').all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            });
        if !plain {
            return Err(format!(
                "sysctl key {:?} is not a path below /proc/sys",
                s.key
            ));
        }
    }
    Ok(v.sysctls)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_json_parses() {
        let s =
            parse(r#"{"format": 1, "sysctls": [{"key": "kernel/kptr_restrict", "value": "2"}]}"#)
                .unwrap();
        assert_eq!(
            s,
            vec![Sysctl {
                key: "kernel/kptr_restrict".into(),
                value: "2".into()
            }]
        );
    }

    #[test]
    fn a_bad_vm_json_is_refused() {
        for (text, needle) in [
            ("", "malformed"),
            (
                "{\"format\": 1, \"sysctls\": [{\"key\": \"a\"}]}",
                "malformed",
            ),
            ("{\"format\": 2, \"sysctls\": []}", "format 2"),
            ("{\"format\": 1, \"sysctls\": []}", "no sysctls"),
            (
                "{\"format\": 1, \"sysctls\": [{\"key\": \"../../etc/x\", \"value\": \"1\"}]}",
                "not a path below /proc/sys",
            ),
            (
                "{\"format\": 1, \"sysctls\": [], \"extra\": 1}",
                "malformed",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
