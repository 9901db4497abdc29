//! What the image defines this VM to be (issue 18 item 3): the manifest's
//! `[vm]` table, carried into the root as [`VM_JSON`] by the image build
//! (hull-image's `vmconf`). Init reads it before it starts anything and
//! fails closed: a missing, oversized or malformed file, or one that tries
//! to set what init owns, is an error naming the file, and no service starts.

use serde::Deserialize;

/// Written by the image build.
pub const VM_JSON: &str = "/usr/lib/hull/vm.json";
const FORMAT: u32 = 1;
const MAX_BYTES: u64 = 64 * 1024;

/// dockerd settings init computes or that must match init's own paths
/// (`engine.rs`): the manifest's engine defaults may not set them.
pub const ENGINE_KEYS_OF_INIT: &[&str] = &[
    "hosts",
    "group",
    "containerd",
    "data-root",
    "exec-root",
    "pidfile",
    "default-runtime",
    "runtimes",
    "host-gateway-ip",
];

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConf {
    format: u32,
    /// Lockdown sysctls (paths below /proc/sys), applied in this order.
    pub sysctls: Vec<Sysctl>,
    /// dockerd's defaults (daemon.json keys), under init's own keys and
    /// over the user's.
    pub engine: serde_json::Map<String, serde_json::Value>,
}

pub fn load() -> Result<VmConf, String> {
    load_from(std::path::Path::new(VM_JSON))
}

fn load_from(path: &std::path::Path) -> Result<VmConf, String> {
    use std::io::Read;
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("{shown}: {e}"))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(format!("{shown}: larger than {MAX_BYTES} bytes"));
    }
    parse(&text).map_err(|e| format!("{shown}: {e}"))
}

pub fn parse(text: &str) -> Result<VmConf, String> {
    let v: VmConf = serde_json::from_str(text).map_err(|e| format!("malformed: {e}"))?;
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
    for k in v.engine.keys() {
        if ENGINE_KEYS_OF_INIT.contains(&k.as_str()) {
            return Err(format!(
                "engine default {k:?} is set by init itself, not by the image"
            ));
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"format": 1, "sysctls": [{"key": "kernel/kptr_restrict", "value": "2"}],
        "engine": {"log-driver": "json-file"}}"#;

    #[test]
    fn vm_json_parses() {
        let v = parse(OK).unwrap();
        assert_eq!(
            v.sysctls,
            vec![Sysctl {
                key: "kernel/kptr_restrict".into(),
                value: "2".into()
            }]
        );
        assert_eq!(v.engine["log-driver"], "json-file");
    }

    #[test]
    fn a_bad_vm_json_is_refused() {
        for (text, needle) in [
            ("", "malformed"),
            (
                "{\"format\": 1, \"sysctls\": [{\"key\": \"a\"}], \"engine\": {}}",
                "malformed",
            ),
            (
                "{\"format\": 1, \"sysctls\": [{\"key\": \"a\", \"value\": \"1\"}]}",
                "missing field `engine`",
            ),
            ("{\"format\": 2, \"sysctls\": [], \"engine\": {}}", "format 2"),
            ("{\"format\": 1, \"sysctls\": [], \"engine\": {}}", "no sysctls"),
            (
                "{\"format\": 1, \"sysctls\": [{\"key\": \"../../etc/x\", \"value\": \"1\"}], \"engine\": {}}",
                "not a path below /proc/sys",
            ),
            (
                "{\"format\": 1, \"sysctls\": [{\"key\": \"a\", \"value\": \"1\"}], \"engine\": {\"hosts\": [\"tcp://0.0.0.0:2375\"]}}",
                "\"hosts\" is set by init itself",
            ),
            (
                "{\"format\": 1, \"sysctls\": [], \"engine\": {}, \"extra\": 1}",
                "malformed",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn a_missing_or_malformed_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vm.json");
        let e = load_from(&p).unwrap_err();
        assert!(e.contains("vm.json: No such file"), "{e}");
        std::fs::write(&p, "{\"format\": 1, \"sysctls\": [").unwrap();
        let e = load_from(&p).unwrap_err();
        assert!(e.contains("vm.json: malformed"), "{e}");
        std::fs::write(&p, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        let e = load_from(&p).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        std::fs::write(&p, OK).unwrap();
        assert!(load_from(&p).is_ok());
    }
}
