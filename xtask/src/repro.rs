//! The reproducibility check: two image builds from the same inputs, each with
//! a freshly built Debian rootfs, must give byte-identical outputs.

use anyhow::{bail, Result};

use crate::{paths, vm};

pub fn check() -> Result<()> {
    let base = paths::target().join("repro");
    let _ = std::fs::remove_dir_all(&base);
    let mut reports = Vec::new();
    for n in ["a", "b"] {
        eprintln!("[repro] build {n} (fresh rootfs)");
        let out = vm::image(&vm::ImageArgs {
            out: Some(base.join(n)),
            fresh_rootfs: true,
            no_deps: true,
            weaken: None,
        })?;
        let text = std::fs::read_to_string(out.join("image.json"))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        reports.push(v);
    }
    let mut diff = Vec::new();
    for key in ["kernel", "root", "qcow2"] {
        let a = &reports[0][key]["sha256"];
        let b = &reports[1][key]["sha256"];
        eprintln!("[repro] {key}: {a} / {b}");
        if a != b || a.is_null() {
            diff.push(key);
        }
    }
    if !diff.is_empty() {
        bail!(
            "image builds differ in {}: see {}",
            diff.join(", "),
            base.display()
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    eprintln!("[repro] identical");
    Ok(())
}
