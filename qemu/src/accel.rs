//! Choosing QEMU's accelerator. KVM where hardware virtualization really backs
//! /dev/kvm; TCG otherwise. A /dev/kvm served by the `kvm_pvm` module (a
//! paravirtual flavour found on cloud build machines) only runs guest kernels
//! built for it and hangs ordinary ones, so it does not count.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// Why KVM cannot be used here, or None when it can.
pub fn kvm_unusable() -> Option<String> {
    kvm_unusable_at(Path::new("/"))
}

fn kvm_unusable_at(root: &Path) -> Option<String> {
    let dev = root.join("dev/kvm");
    if !dev.exists() {
        return Some("/dev/kvm does not exist".into());
    }
    let modules = root.join("sys/module");
    let hw = ["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| modules.join(m).exists());
    if !hw {
        if modules.join("kvm_pvm").exists() {
            return Some("/dev/kvm is kvm_pvm (paravirtual; hangs ordinary guest kernels)".into());
        }
        return Some("no kvm_intel or kvm_amd module backs /dev/kvm".into());
    }
    // Opening it read-write is what QEMU will do.
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
    {
        return Some(format!("cannot open /dev/kvm: {e}"));
    }
    None
}

/// Resolves the user's choice; an explicit `kvm` that cannot work is an error.
pub fn resolve(choice: AccelChoice) -> Result<Accel, String> {
    match choice {
        AccelChoice::Tcg => Ok(Accel::Tcg),
        AccelChoice::Kvm => match kvm_unusable() {
            None => Ok(Accel::Kvm),
            Some(why) => Err(format!("--accel kvm: {why}")),
        },
        AccelChoice::Auto => Ok(if kvm_unusable().is_none() {
            Accel::Kvm
        } else {
            Accel::Tcg
        }),
    }
}

/// The accelerator a choice resolves to, in words, with the reason KVM is
/// not used when it is not: printed by `hull up` and the VM test tiers, so a
/// slow run is never a mystery.
pub fn describe(choice: AccelChoice) -> Result<String, String> {
    let accel = resolve(choice)?;
    Ok(match (accel, choice) {
        (Accel::Kvm, _) => "kvm".to_string(),
        (Accel::Tcg, AccelChoice::Tcg) => "tcg (--accel tcg asked for it)".to_string(),
        (Accel::Tcg, _) => format!(
            "tcg (kvm not used: {})",
            kvm_unusable().unwrap_or_else(|| "unknown".into())
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(mods: &[&str], dev: bool) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("dev")).unwrap();
        if dev {
            std::fs::write(t.path().join("dev/kvm"), "").unwrap();
        }
        for m in mods {
            std::fs::create_dir_all(t.path().join("sys/module").join(m)).unwrap();
        }
        t
    }

    #[test]
    fn pvm_is_not_kvm() {
        let t = fake(&["kvm", "kvm_pvm"], true);
        assert!(kvm_unusable_at(t.path()).unwrap().contains("kvm_pvm"));
    }

    #[test]
    fn no_device_no_kvm() {
        let t = fake(&["kvm", "kvm_amd"], false);
        assert!(kvm_unusable_at(t.path()).is_some());
    }

    #[test]
    fn hardware_kvm_is_used() {
        let t = fake(&["kvm", "kvm_amd"], true);
        assert_eq!(kvm_unusable_at(t.path()), None);
    }
}
