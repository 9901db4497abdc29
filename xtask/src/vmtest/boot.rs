//! Direct boots: QEMU without the host CLI, for checks made from inside the
//! VM by init's self-test, and for boot-time measurements.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hull_qemu::accel;
use hull_qemu::machine::{BootConfig, Console, Machine, RootVerity};

use super::Args;

/// A QEMU run that ended: exit status, console text, wall time.
pub struct Finished {
    pub code: Option<i32>,
    pub console: String,
    pub wall: Duration,
}

/// Boots the image with extra kernel arguments and waits for QEMU to exit.
pub fn boot_once(
    args: &Args,
    image: &Path,
    cmdline: &[&str],
    timeout: Duration,
) -> Result<Finished> {
    let dir = tempdir()?;
    let console = dir.join("console.log");
    let kernel = image.join(hull_image::pack::KERNEL);
    let arch = hull_qemu::arch::Arch::of_kernel(&kernel).map_err(anyhow::Error::msg)?;
    // Another architecture than the host's is emulated: TCG.
    let accel = if arch == hull_qemu::arch::Arch::host() {
        accel::resolve(args.accel).map_err(anyhow::Error::msg)?
    } else {
        accel::Accel::Tcg
    };
    let m = Machine {
        arch,
        kind: args.machine,
        accel,
        cpus: 2,
        memory_mib: 1024,
        kernel,
        root: image.join(hull_image::pack::ROOT_RAW),
        root_verity: RootVerity::load(image).map_err(anyhow::Error::msg)?,
        boot: BootConfig::load(image).map_err(anyhow::Error::msg)?,
        data: None,
        vsock: None,
        settings: None,
        console: Console::File(console.clone()),
        tsc_khz: hull_qemu::tsc::khz(),
        qmp: None,
        pidfile: None,
        shares: vec![],
        shares_map: None,
        engine: None,
        cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
    };
    let start = Instant::now();
    let mut child = Command::new(arch.qemu_binary())
        .args(m.argv())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", arch.qemu_binary()))?;
    let code = loop {
        if let Some(st) = child.try_wait()? {
            break st.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&console).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            bail!("QEMU still running after {timeout:?}; console:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let wall = start.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let mut text = std::fs::read_to_string(&console).unwrap_or_default();
    if !stderr.trim().is_empty() {
        text.push_str("\n--- qemu stderr ---\n");
        text.push_str(&stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Finished {
        code,
        console: text,
        wall,
    })
}

pub fn tempdir() -> Result<PathBuf> {
    let base = std::env::temp_dir().join(format!(
        "hull-vmtest-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// Seconds since kernel start at which init logged its first line.
pub fn init_start(console: &str) -> Option<f64> {
    console
        .lines()
        .find(|l| l.contains("hull-init: starting"))
        .and_then(|l| l.trim_start().strip_prefix('['))
        .and_then(|l| l.split(']').next())
        .and_then(|t| t.trim().parse().ok())
}

/// The kernel has no module support, the root is read-only erofs, and
/// power-off ends QEMU with status 0.
pub fn selftest(args: &Args, image: &Path) -> Result<()> {
    let f = boot_once(args, image, &["hull.selftest"], Duration::from_secs(300))?;
    let passed = f.console.contains("hull-init: selftest PASSED");
    if !passed || f.code != Some(0) {
        bail!(
            "selftest passed={passed}, qemu exit {:?} after {:.1}s; console:\n{}",
            f.code,
            f.wall.as_secs_f64(),
            f.console
        );
    }
    for l in f.console.lines().filter(|l| l.contains("selftest")) {
        eprintln!("    {}", l.trim());
    }
    Ok(())
}
