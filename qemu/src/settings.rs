//! Admin and user settings on the host: read, merged by hull-policy (a locked
//! admin value always wins; a user value that lost is reported, never dropped
//! silently), and written as the blob QEMU hands to the VM through fw_cfg.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hull_policy::{Effective, HostContext, HostOrigin};
use serde_json::Value;

use crate::home::Home;
use crate::shares::{HostShare, ShareFs};
use crate::system::Mode;

pub const ADMIN_DEFAULT: &str = crate::system::ADMIN_SETTINGS;
/// Settings files are small; anything bigger is a mistake or an attack.
const MAX_FILE: u64 = 1 << 20;

/// The admin file in force. System mode reads only
/// /etc/hull/admin-settings.json, and refuses `HULL_ADMIN_SETTINGS` (a user
/// must not choose which root-owned file counts, e.g. an older copy). User
/// mode honours `HULL_ADMIN_SETTINGS` only when that file is root-owned and
/// not writable by group or others.
pub fn admin_path(mode: &Mode) -> Result<PathBuf> {
    let env = std::env::var_os("HULL_ADMIN_SETTINGS");
    match (mode, env) {
        (Mode::System(_), Some(p)) => bail!(
            "HULL_ADMIN_SETTINGS={} is refused: this machine is in system mode ({}), where the admin's settings are {ADMIN_DEFAULT} and nothing else",
            PathBuf::from(p).display(),
            crate::system::CONFIG
        ),
        (Mode::System(_), None) => {
            // Only root may have written what the VM is held to.
            crate::system::root_only(Path::new(ADMIN_DEFAULT))?;
            Ok(PathBuf::from(ADMIN_DEFAULT))
        }
        (Mode::User, Some(p)) => {
            let p = PathBuf::from(p);
            let meta = std::fs::metadata(&p)
                .with_context(|| format!("HULL_ADMIN_SETTINGS={}", p.display()))?;
            if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
                bail!(
                    "HULL_ADMIN_SETTINGS={} is refused: it must be owned by root and not writable by group or others",
                    p.display()
                );
            }
            Ok(p)
        }
        (Mode::User, None) => Ok(PathBuf::from(ADMIN_DEFAULT)),
    }
}

/// `sha256:<hex>` of a file's bytes; `None` when it does not exist.
pub fn file_sha256(p: &Path) -> Result<Option<String>> {
    use sha2::Digest;
    match read_settings_file(p)? {
        None => Ok(None),
        Some(b) => Ok(Some(format!("sha256:{:x}", sha2::Sha256::digest(&b)))),
    }
}

/// The file's bytes, or None when it does not exist.
fn read_settings_file(p: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| p.display().to_string()),
        Ok(m) if m.len() > MAX_FILE => bail!(
            "{}: {} bytes is too big for a settings file",
            p.display(),
            m.len()
        ),
        Ok(_) => {}
    }
    std::fs::read(p)
        .map(Some)
        .with_context(|| p.display().to_string())
}

pub struct Report {
    /// Lines for the user: ignored values, unsupported keys, warnings.
    pub ignored: Vec<String>,
}

/// Merges the settings files and writes the blob for the VM. A malformed
/// file is an error naming the file, line, column and field: the VM does not
/// start on settings nobody can read.
pub fn prepare(home: &Home, mode: &Mode, raw: Option<&Path>) -> Result<Report> {
    if let Some(raw) = raw {
        std::fs::copy(raw, home.settings_blob())
            .with_context(|| format!("--raw-settings {}", raw.display()))?;
        return Ok(Report {
            ignored: vec![format!("delivering {} verbatim, unchecked", raw.display())],
        });
    }
    let mut eff = effective(home, mode)?;
    let admin = admin_path(mode)?;
    eff.host = Some(HostOrigin {
        mode: mode.name().to_string(),
        admin_file: admin.display().to_string(),
        admin_sha256: file_sha256(&admin)?,
    });
    std::fs::write(home.settings_blob(), eff.canonical_json())
        .with_context(|| home.settings_blob().display().to_string())?;
    let mut lines: Vec<String> = eff
        .ignored
        .iter()
        .map(|i| {
            format!(
                "ignored {} = {} ({}); in force: {}",
                i.field, i.user_value, i.reason, i.admin_value
            )
        })
        .collect();
    lines.extend(
        eff.unsupported_admin_settings
            .iter()
            .map(|k| format!("admin setting {k} is not supported by hull (ignored)")),
    );
    lines.extend(eff.warnings.iter().cloned());
    Ok(Report { ignored: lines })
}

/// The settings in force from the files as they are now.
pub fn effective(home: &Home, mode: &Mode) -> Result<Effective> {
    let admin_p = admin_path(mode)?;
    let admin = match read_settings_file(&admin_p)? {
        Some(b) => Some(
            hull_policy::parse_admin(&b)
                .map_err(|e| anyhow::anyhow!("{}: {e}", admin_p.display()))?,
        ),
        None => None,
    };
    let user_p = home.user_settings();
    let user = match read_settings_file(&user_p)? {
        Some(b) => Some(
            hull_policy::parse_user(&b)
                .map_err(|e| anyhow::anyhow!("{}: {e}", user_p.display()))?,
        ),
        None => None,
    };
    let ctx = HostContext {
        // The system VM is every member's: no one user's home is shared by
        // default (virtiofsd runs as _hull, which cannot read private homes).
        home: match mode {
            Mode::System(_) => None,
            Mode::User => std::env::var("HOME").ok(),
        },
        tmp: std::env::var("TMPDIR").ok().or_else(|| Some("/tmp".into())),
    };
    Ok(hull_policy::merge_with(admin.as_ref(), user.as_ref(), &ctx))
}

/// What `hull settings` shows: the blob the running (or last) VM got, else
/// the files as they are now.
pub fn show(home: &Home, mode: &Mode) -> Result<Value> {
    let eff = match std::fs::read(home.settings_blob()) {
        Ok(b) => Effective::from_json(&b)
            .map_err(|e| anyhow::anyhow!("{}: {e}", home.settings_blob().display()))?,
        Err(_) => effective(home, mode)?,
    };
    let mut v = serde_json::to_value(&eff)?;
    v["digest"] = Value::String(eff.digest());
    Ok(v)
}

fn origin(v: &Value) -> String {
    let src = v["source"].as_str().unwrap_or("?");
    if v["locked"] == true {
        format!("{src}, locked")
    } else {
        src.to_string()
    }
}

/// One line per setting: value, where it came from, whether it is locked.
pub fn human(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let row = |name: &str, key: &str, out: &mut Vec<String>| {
        let s = &v[key];
        out.push(format!(
            "{name:<38} {:<40} ({})",
            s["value"].to_string(),
            origin(s)
        ));
    };
    row(
        "enhancedContainerIsolation",
        "enhancedContainerIsolation",
        &mut out,
    );
    row(
        "dockerSocketMount.imageList.images",
        "socketMountImages",
        &mut out,
    );
    row(
        "dockerSocketMount.allowDerivedImages",
        "allowDerivedImages",
        &mut out,
    );
    row("dockerSocketMount.commandList", "commandList", &mut out);
    row("blockDockerLoad", "blockDockerLoad", &mut out);
    row("bind-mount roots in the VM", "mountRoots", &mut out);
    for d in v["sharedDirectories"].as_array().into_iter().flatten() {
        out.push(format!(
            "{:<38} {:<40} ({})",
            "shared directory",
            d["value"].to_string(),
            origin(d)
        ));
    }
    for i in v["ignored"].as_array().into_iter().flatten() {
        out.push(format!(
            "IGNORED user value {} = {}: {}",
            i["field"],
            i["userValue"],
            i["reason"].as_str().unwrap_or("")
        ));
    }
    if let Some(r) = v["failClosed"].as_str() {
        out.push(format!("FAIL-CLOSED defaults: {r}"));
    }
    out.push(format!("digest {}", v["digest"].as_str().unwrap_or("?")));
    out
}

/// The shared host directories of the settings in force (virtiofs), then
/// the benchmark's 9p comparison directories, written to the shares map init
/// reads. Directories that do not exist on the host are left out with a
/// warning (virtiofsd and QEMU would refuse to start).
pub fn write_shares(home: &Home, bench_9p: &[PathBuf]) -> Result<Vec<HostShare>> {
    let eff = match std::fs::read(home.settings_blob()) {
        Ok(b) => Effective::from_json(&b).ok(),
        Err(_) => None,
    };
    let mut wanted: Vec<(PathBuf, ShareFs)> = eff
        .iter()
        .flat_map(|e| e.shared_directories.iter())
        .map(|d| (PathBuf::from(&d.value), ShareFs::Virtiofs))
        .collect();
    // A directory inside another share is visible through it already (one
    // virtiofsd serves both): parents first, nested ones dropped.
    wanted.sort_by_key(|(p, _)| p.components().count());
    wanted.extend(bench_9p.iter().map(|p| (p.clone(), ShareFs::NineP)));
    let mut out: Vec<HostShare> = Vec::new();
    for (p, fs) in wanted {
        if !p.is_absolute() || !p.is_dir() {
            eprintln!(
                "hull: shared directory {} does not exist on this host; not shared",
                p.display()
            );
            continue;
        }
        if fs == ShareFs::Virtiofs && out.iter().any(|s| p.starts_with(&s.path)) {
            continue;
        }
        out.push(HostShare {
            tag: crate::shares::tag(out.len()),
            path: p,
            fs,
            hidden: Vec::new(),
        });
    }
    // The VM's own disk and sockets would be reachable (and writable) by
    // any container that binds the share: the VM covers them.
    let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let home_dir = real(&home.dir);
    for s in out.iter_mut().filter(|s| s.fs == ShareFs::Virtiofs) {
        if let Ok(rel) = home_dir.strip_prefix(real(&s.path)) {
            if !rel.as_os_str().is_empty() {
                s.hidden.push(rel.to_path_buf());
            } else {
                bail!(
                    "the shared directory {} is this VM's home itself; share a directory that does not hold it",
                    s.path.display()
                );
            }
        }
    }
    std::fs::write(home.shares_map(), serde_json::to_vec(&out)?)
        .with_context(|| home.shares_map().display().to_string())?;
    Ok(out)
}

/// Checks `$HULL_HOME/engine.json` and writes what the VM gets; None when
/// the user has no engine settings. A bad file stops `hull up`.
pub fn write_engine(home: &Home) -> Result<Option<PathBuf>> {
    let p = home.engine_settings();
    let Some(bytes) = read_settings_file(&p)? else {
        let _ = std::fs::remove_file(home.engine_blob());
        return Ok(None);
    };
    let m =
        hull_policy::parse_engine(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    std::fs::write(home.engine_blob(), serde_json::to_vec(&m)?)
        .with_context(|| home.engine_blob().display().to_string())?;
    Ok(Some(home.engine_blob()))
}
