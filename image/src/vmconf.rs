//! The VM's configuration carried out of the manifest (issue 18 item 3):
//! `boot.json` beside vmlinuz for the host (the kernel command line's fixed
//! words) and `/usr/lib/hull/vm.json` in the root for init (its sysctls
//! and dockerd's defaults).
//! The readers are `hull_qemu::machine::BootConfig` and hull-init's
//! `vmconf::load`; both refuse a missing or malformed file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::manifest::Manifest;
use crate::{io_err, Error, Result};

/// Beside vmlinuz in the image folder (and the release bundle).
pub const BOOT_JSON: &str = "boot.json";
/// Inside the root, for init.
pub const VM_JSON: &str = "/usr/lib/hull/vm.json";
/// Both files' format; a reader refuses any other.
pub const FORMAT: u32 = 1;

/// The words a VM cannot boot without: a manifest missing them is refused
/// before anything is packed.
const REQUIRED_WORDS: &[&str] = &["root=", "init="];

pub fn boot_json(m: &Manifest) -> Result<String> {
    for need in REQUIRED_WORDS {
        if !m.boot.cmdline.iter().any(|w| w.starts_with(need)) {
            return Err(Error::Other(format!(
                "manifest [boot] cmdline has no `{need}` word: the VM could not boot"
            )));
        }
    }
    let v = json!({"format": FORMAT, "cmdline": m.boot.cmdline});
    Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
}

pub fn vm_json(m: &Manifest) -> Result<String> {
    if m.vm.sysctls.is_empty() {
        return Err(Error::Other(
            "manifest [vm] sysctls is empty: the VM would run without its lockdown".into(),
        ));
    }
    let engine = serde_json::to_value(&m.vm.engine)
        .map_err(|e| Error::Other(format!("manifest [vm.engine]: {e}")))?;
    let v = json!({"format": FORMAT, "sysctls": m.vm.sysctls, "engine": engine});
    Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
}

/// Writes `boot.json` into the image folder `out`.
pub fn write_boot(m: &Manifest, out: &Path) -> Result<()> {
    let p = out.join(BOOT_JSON);
    fs::write(&p, boot_json(m)?).map_err(io_err(&p))
}

/// Writes vm.json into the staged root `root` (root-owned, 0644).
pub fn write_vm(m: &Manifest, root: &Path) -> Result<()> {
    let p = root.join(VM_JSON.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    fs::write(&p, vm_json(m)?).map_err(io_err(&p))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).map_err(io_err(&p))?;
    std::os::unix::fs::chown(&p, Some(0), Some(0)).map_err(io_err(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Manifest {
        Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest.toml")).unwrap()
    }

    #[test]
    fn boot_json_carries_the_manifest_words_in_order() {
        let m = repo();
        let v: serde_json::Value = serde_json::from_str(&boot_json(&m).unwrap()).unwrap();
        assert_eq!(v["format"], 1);
        let words: Vec<&str> = v["cmdline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert_eq!(words, m.boot.cmdline);
        assert_eq!(words[0], "dm-mod.waitfor=/dev/vda");
    }

    #[test]
    fn vm_json_lists_every_sysctl() {
        let m = repo();
        let v: serde_json::Value = serde_json::from_str(&vm_json(&m).unwrap()).unwrap();
        let s = v["sysctls"].as_array().unwrap();
        assert_eq!(s.len(), m.vm.sysctls.len());
        assert_eq!(s[0]["key"], "kernel/kptr_restrict");
        assert_eq!(s[0]["value"], "2");
        assert_eq!(v["engine"]["shutdown-timeout"], 5);
        assert_eq!(v["engine"]["exec-opts"][0], "native.cgroupdriver=cgroupfs");
        assert_eq!(
            v["engine"]["builder"]["entitlements"]["security-insecure"],
            false
        );
    }

    #[test]
    fn a_manifest_without_boot_or_sysctls_is_refused() {
        let mut m = repo();
        m.boot.cmdline.retain(|w| !w.starts_with("init="));
        let e = boot_json(&m).unwrap_err().to_string();
        assert!(e.contains("no `init=` word"), "{e}");
        m.vm.sysctls.clear();
        let e = vm_json(&m).unwrap_err().to_string();
        assert!(e.contains("[vm] sysctls is empty"), "{e}");
    }
}
