//! A VM's life beyond one boot: its remembered size (cpus, memory, disk in
//! `vm.json`), growing its data disk, listing every VM and deleting one.
//! `hull up`/`restart`/`list`/`delete` call in here.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::home::{self, Home};
use crate::state::{self, VmState};

pub const DEFAULT_MEMORY_MIB: u32 = 4096;
pub const DEFAULT_DISK_GIB: u32 = 64;
const GIB: u64 = 1 << 30;

/// What a VM boots with unless a flag says otherwise: written at its first
/// `hull up`, changed by a later `up`/`restart` with other flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmConfig {
    pub cpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    /// The image folder of the last boot (for `hull list`).
    #[serde(default)]
    pub image: Option<PathBuf>,
}

impl VmConfig {
    /// `Ok(None)` when the VM has none yet; a damaged file is an error that
    /// names it (never silently replaced by defaults).
    pub fn load(home: &Home) -> Result<Option<VmConfig>> {
        let p = home.vm_config();
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
        };
        let c: VmConfig = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a VM configuration (fix it, or delete it to start from the defaults)",
                p.display()
            )
        })?;
        Ok(Some(c))
    }

    pub fn save(&self, home: &Home) -> Result<()> {
        let p = home.vm_config();
        let tmp = p.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))
    }
}

/// The sizes `hull up` was given on its command line (None: not given).
#[derive(Debug, Clone, Copy, Default)]
pub struct Requested {
    pub cpus: Option<u32>,
    pub memory_mib: Option<u32>,
    pub disk_gib: Option<u32>,
}

fn default_cpus() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u32)
}

/// A running VM keeps its size: a flag that differs is an error that says
/// how to apply it, never silently ignored.
pub fn check_running(home: &Home, req: &Requested, running: &VmState) -> Result<()> {
    let disk_gib = disk_size(&home.data_disk())
        .ok()
        .flatten()
        .map(|b| b.div_ceil(GIB) as u32);
    let mut differ = Vec::new();
    if let Some(c) = req.cpus.filter(|c| *c != running.cpus) {
        differ.push((format!("--cpus {c}"), format!("{} cpus", running.cpus)));
    }
    if let Some(m) = req.memory_mib.filter(|m| *m != running.memory_mib) {
        differ.push((
            format!("--memory {m}"),
            format!("{} MiB", running.memory_mib),
        ));
    }
    if let (Some(d), Some(now)) = (req.disk_gib, disk_gib) {
        if d != now {
            differ.push((format!("--disk-gib {d}"), format!("a {now} GiB disk")));
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    let flags: Vec<&str> = differ.iter().map(|(f, _)| f.as_str()).collect();
    let now: Vec<&str> = differ.iter().map(|(_, n)| n.as_str()).collect();
    bail!(
        "the VM in {} is running with {}; {} needs a restart: `hull restart {}` (or `hull down`, then `hull up {}`)",
        home.dir.display(),
        now.join(", "),
        flags.join(" "),
        flags.join(" "),
        flags.join(" ")
    )
}

/// What `settle` did, for the user.
#[derive(Debug, Default)]
pub struct Settled {
    pub config: Option<VmConfig>,
    pub notes: Vec<String>,
}

/// For a stopped VM: the flags over the remembered configuration over the
/// defaults, saved; the data disk created, or grown to a bigger size.
/// Shrinking is refused (the filesystem on it would be cut short).
pub fn settle(home: &Home, req: &Requested, image: &Path) -> Result<Settled> {
    let saved = VmConfig::load(home)?;
    let disk = home.data_disk();
    let existing = disk_size(&disk)?;
    // A VM from before vm.json: its disk's size is what it was made with.
    let base = saved.clone().unwrap_or(VmConfig {
        cpus: default_cpus(),
        memory_mib: DEFAULT_MEMORY_MIB,
        disk_gib: existing.map_or(DEFAULT_DISK_GIB, |b| b.div_ceil(GIB) as u32),
        image: None,
    });
    let want = VmConfig {
        cpus: req.cpus.unwrap_or(base.cpus),
        memory_mib: req.memory_mib.unwrap_or(base.memory_mib),
        disk_gib: req.disk_gib.unwrap_or(base.disk_gib),
        image: Some(image.to_path_buf()),
    };
    if want.cpus == 0 {
        bail!("--cpus must be at least 1");
    }
    if want.memory_mib < 512 {
        bail!("--memory must be at least 512 MiB, not {}", want.memory_mib);
    }
    if want.disk_gib == 0 {
        bail!("--disk-gib must be at least 1");
    }
    let mut notes = Vec::new();
    match existing {
        None => {
            qemu_img(&["create", "-q", "-f", "qcow2"], &disk, want.disk_gib)?;
        }
        Some(bytes) => {
            let want_bytes = u64::from(want.disk_gib) * GIB;
            if want_bytes < bytes {
                bail!(
                    "the data disk {} is {} GiB; --disk-gib {} would shrink it, which hull refuses (the filesystem on it would be cut off). \
                     Keep it, or `hull delete` the VM and start again with a smaller disk",
                    disk.display(),
                    fmt_gib(bytes),
                    want.disk_gib
                );
            }
            if want_bytes > bytes {
                qemu_img(&["resize", "-q", "-f", "qcow2"], &disk, want.disk_gib)?;
                notes.push(format!(
                    "data disk grown from {} to {} GiB (the VM grows its filesystem at boot)",
                    fmt_gib(bytes),
                    want.disk_gib
                ));
            }
        }
    }
    if let Some(s) = &saved {
        for (what, old, new) in [
            ("cpus", s.cpus, want.cpus),
            ("memory (MiB)", s.memory_mib, want.memory_mib),
        ] {
            if old != new {
                notes.push(format!("{what} {old} -> {new} (saved)"));
            }
        }
    }
    if saved.as_ref() != Some(&want) {
        want.save(home)?;
    }
    Ok(Settled {
        config: Some(want),
        notes,
    })
}

fn fmt_gib(bytes: u64) -> String {
    if bytes.is_multiple_of(GIB) {
        (bytes / GIB).to_string()
    } else {
        format!("{:.2}", bytes as f64 / GIB as f64)
    }
}

fn qemu_img(args: &[&str], disk: &Path, gib: u32) -> Result<()> {
    let st = Command::new("qemu-img")
        .args(args)
        .arg(disk)
        .arg(format!("{gib}G"))
        .status()
        .context("running qemu-img")?;
    if !st.success() {
        bail!("qemu-img {} {} {gib}G failed", args[0], disk.display());
    }
    Ok(())
}

/// A qcow2 file's virtual size, from its header (no process, works while
/// QEMU holds the file). `Ok(None)`: no disk yet.
pub fn disk_size(p: &Path) -> Result<Option<u64>> {
    let mut f = match fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", p.display())),
    };
    let mut h = [0u8; 32];
    f.read_exact(&mut h)
        .with_context(|| format!("{}: too short for a qcow2 header", p.display()))?;
    if &h[..4] != b"QFI\xfb" {
        bail!("{} is not a qcow2 disk (bad magic)", p.display());
    }
    let mut size = [0u8; 8];
    size.copy_from_slice(&h[24..32]);
    Ok(Some(u64::from_be_bytes(size)))
}

/// One VM as `hull list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub home: PathBuf,
    pub running: bool,
    pub cpus: Option<u32>,
    pub memory_mib: Option<u32>,
    /// The disk's virtual size, and what it takes on the host.
    pub disk_bytes: Option<u64>,
    pub disk_used_bytes: Option<u64>,
    pub image: Option<PathBuf>,
}

fn row(name: &str, home: &Home) -> Option<Row> {
    let cfg = VmConfig::load(home).ok().flatten();
    let disk = home.data_disk();
    if cfg.is_none() && !disk.exists() {
        return None;
    }
    let running = state::in_use(home);
    let st = running.then(|| VmState::load(home)).flatten();
    Some(Row {
        name: name.to_string(),
        home: home.dir.clone(),
        running,
        cpus: st.as_ref().map(|s| s.cpus).or(cfg.as_ref().map(|c| c.cpus)),
        memory_mib: st
            .as_ref()
            .map(|s| s.memory_mib)
            .or(cfg.as_ref().map(|c| c.memory_mib)),
        disk_bytes: disk_size(&disk).ok().flatten(),
        disk_used_bytes: fs::metadata(&disk).ok().map(|m| m.blocks() * 512),
        image: st.map(|s| s.image).or(cfg.and_then(|c| c.image)),
    })
}

/// Every VM under the data folder (the default profile and the others),
/// and the `HULL_HOME` one if that is set elsewhere.
pub fn list() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let data = home::data_dir().ok();
    if let Some(data) = &data {
        rows.extend(row(home::DEFAULT_PROFILE, &Home::at(data)));
        let mut names: Vec<String> = match fs::read_dir(home::profiles_dir(data)) {
            Ok(d) => d
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| home::check_profile(n).is_ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        for n in names {
            rows.extend(row(&n, &Home::at(&home::profiles_dir(data).join(&n))));
        }
    }
    if let Some(h) = std::env::var_os("HULL_HOME").filter(|h| !h.is_empty()) {
        let h = PathBuf::from(h);
        if !rows.iter().any(|r| r.home == h) {
            rows.extend(row("(HULL_HOME)", &Home::at(&h)));
        }
    }
    Ok(rows)
}

pub fn print_list(rows: &[Row], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<8} {:>4} {:>8} {:>9} {:>9}  IMAGE",
        "NAME", "STATE", "CPUS", "MEMORY", "DISK", "DISK USED"
    )?;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for r in rows {
        writeln!(
            out,
            "{:<16} {:<8} {:>4} {:>8} {:>9} {:>9}  {}",
            r.name,
            if r.running { "running" } else { "stopped" },
            opt(r.cpus.map(|c| c.to_string())),
            opt(r.memory_mib.map(|m| format!("{m}MiB"))),
            opt(r.disk_bytes.map(|b| format!("{}GiB", fmt_gib(b)))),
            opt(r.disk_used_bytes.map(human_bytes)),
            opt(r.image.as_ref().map(|i| i.display().to_string()))
        )?;
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    if b >= GIB {
        format!("{:.1}GiB", b as f64 / GIB as f64)
    } else {
        format!("{:.1}MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// The files hull keeps in a home. `delete` removes these and nothing else,
/// so a `HULL_HOME` pointed at a folder with other things in it loses only
/// hull's.
fn owned_files(home: &Home) -> Vec<PathBuf> {
    let mut v = vec![
        home.data_disk(),
        home.vm_config(),
        home.state_file(),
        home.lock_file(),
        home.settings_blob(),
        home.user_settings(),
        home.shares_map(),
        home.engine_settings(),
        home.engine_blob(),
        home.qemu_pid(),
        home.docker_sock(),
        home.vhost_sock(),
        home.vsock_uds(),
        home.qmp_sock(),
        home.console_log(),
        home.daemon_log(),
    ];
    // virtiofsd's sockets, one per share.
    if let Ok(d) = fs::read_dir(&home.dir) {
        for e in d.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("virtiofs") && n.ends_with(".sock") {
                v.push(e.path());
            }
        }
    }
    v
}

/// Fails unless `home` holds a VM (a disk or a configuration).
pub fn exists(home: &Home) -> Result<()> {
    if !home.data_disk().exists() && !home.vm_config().exists() {
        bail!("there is no VM in {}", home.dir.display());
    }
    Ok(())
}

/// Asks on the terminal; without one there is nobody to ask, and deleting
/// someone's data unasked is refused.
pub fn confirm_delete(home: &Home) -> Result<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to delete the VM in {} without confirmation: stdin is not a terminal (use `hull delete --force`)",
            home.dir.display()
        );
    }
    eprint!(
        "Delete the VM in {} with its data disk (all images, containers and volumes)? [y/N] ",
        home.dir.display()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// init's refusal of the data disk, from the console: `hull up` stops
/// waiting for an engine that cannot start and says why.
pub fn disk_refusal(console: &str) -> Option<String> {
    const MARK: &str = "hull-init: ERROR data disk: ";
    console
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, e)| e.trim().to_string()))
}

/// Removes a stopped VM: its disk, configuration, state and logs. The
/// caller has asked for confirmation (or was told `--force`).
pub fn delete(home: &Home) -> Result<Vec<PathBuf>> {
    if state::in_use(home) {
        bail!(
            "the VM in {} is running; stop it first (`hull down`) or use `hull delete --force`",
            home.dir.display()
        );
    }
    exists(home)?;
    let mut removed = Vec::new();
    for f in owned_files(home) {
        match fs::remove_file(&f) {
            Ok(()) => removed.push(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", f.display())),
        }
    }
    // The folder goes too when nothing else is in it (a profile's, or an
    // emptied HULL_HOME); the default home keeps other profiles' folder.
    let _ = fs::remove_dir(&home.dir);
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let t = tempfile::tempdir().expect("tempdir");
        let h = Home::at(t.path());
        (t, h)
    }

    fn fake_qcow2(p: &Path, gib: u64) {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[24..32].copy_from_slice(&(gib * GIB).to_be_bytes());
        fs::write(p, h).expect("write");
    }

    #[test]
    fn qcow2_size_is_read_from_the_header() {
        let (_t, h) = home();
        assert_eq!(disk_size(&h.data_disk()).ok(), Some(None));
        fake_qcow2(&h.data_disk(), 3);
        assert_eq!(disk_size(&h.data_disk()).ok(), Some(Some(3 * GIB)));
        fs::write(h.data_disk(), b"not a disk, just some text written here").expect("write");
        let e = disk_size(&h.data_disk()).unwrap_err().to_string();
        assert!(e.contains("not a qcow2"), "{e}");
    }

    #[test]
    fn flags_override_the_saved_config_which_is_kept() {
        let (_t, h) = home();
        fake_qcow2(&h.data_disk(), 2);
        let first = settle(
            &h,
            &Requested {
                cpus: Some(1),
                memory_mib: Some(1024),
                disk_gib: None,
            },
            Path::new("/img"),
        )
        .expect("settle");
        // A disk from before vm.json keeps its size.
        assert_eq!(first.config.as_ref().map(|c| c.disk_gib), Some(2));
        let again = settle(&h, &Requested::default(), Path::new("/img")).expect("settle");
        let c = again.config.expect("config");
        assert_eq!((c.cpus, c.memory_mib, c.disk_gib), (1, 1024, 2));
        let changed = settle(
            &h,
            &Requested {
                cpus: Some(2),
                ..Default::default()
            },
            Path::new("/img"),
        )
        .expect("settle");
        assert!(changed.notes.iter().any(|n| n == "cpus 1 -> 2 (saved)"));
        assert_eq!(VmConfig::load(&h).ok().flatten().map(|c| c.cpus), Some(2));
    }

    #[test]
    fn shrinking_is_refused_and_nothing_changes() {
        let (_t, h) = home();
        fake_qcow2(&h.data_disk(), 4);
        let e = settle(
            &h,
            &Requested {
                disk_gib: Some(2),
                ..Default::default()
            },
            Path::new("/img"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("would shrink it, which hull refuses"), "{e}");
        assert_eq!(disk_size(&h.data_disk()).ok(), Some(Some(4 * GIB)));
        assert!(!h.vm_config().exists());
    }

    #[test]
    fn a_running_vm_names_the_flag_that_needs_a_restart() {
        let (_t, h) = home();
        let st = VmState {
            daemon_pid: 1,
            qemu_pid: 1,
            vhost_pid: 1,
            accel: "tcg".into(),
            machine: "microvm".into(),
            cpus: 1,
            memory_mib: 2048,
            image: PathBuf::from("/img"),
            started_unix: 0,
            qemu_started_ms: None,
            shares: vec![],
        };
        let same = Requested {
            cpus: Some(1),
            memory_mib: Some(2048),
            disk_gib: None,
        };
        assert!(check_running(&h, &same, &st).is_ok());
        let e = check_running(
            &h,
            &Requested {
                cpus: Some(2),
                ..same
            },
            &st,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("running with 1 cpus"), "{e}");
        assert!(e.contains("`hull restart --cpus 2`"), "{e}");
    }

    #[test]
    fn the_console_names_a_refused_disk() {
        let c = "[ 1.0] hull-init: settings loaded\n[ 1.2] hull-init: ERROR data disk: /dev/vda refused: newer\n";
        assert_eq!(disk_refusal(c).as_deref(), Some("/dev/vda refused: newer"));
        assert_eq!(disk_refusal("[ 1.0] hull-init: data disk ready\n"), None);
    }

    #[test]
    fn delete_removes_hulls_files_only() {
        let (_t, h) = home();
        fake_qcow2(&h.data_disk(), 1);
        fs::write(h.vm_config(), "{}").expect("write");
        fs::write(h.dir.join("notes.txt"), "mine").expect("write");
        let removed = delete(&h).expect("delete");
        assert_eq!(removed.len(), 2);
        assert!(!h.data_disk().exists());
        assert!(h.dir.join("notes.txt").exists());
        let e = delete(&h).unwrap_err().to_string();
        assert!(e.contains("there is no VM"), "{e}");
    }
}
