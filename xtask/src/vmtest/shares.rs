//! Issue 14: host file sharing as a Docker Desktop user meets it. Every
//! scenario runs twice: in the engine suite (`hull up` as root) and in the
//! share-user suite (`hull up` as the unprivileged `hull-test`, with an
//! admin's `filesharingAllowedDirectories`). Suite variables:
//! `share` (the shared host directory), `host_uid`/`host_gid` (who ran
//! `hull up`), and in share-user `denied` (a directory the user asked to
//! share but the admin does not allow).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::vm::{Run, Vm};

/// The host-side files of a scenario carry the suite's name, so that the
/// two suites never meet, even in one share.
fn name(vm: &Vm, what: &str) -> Result<String> {
    Ok(format!("{what}-{}", vm.var("suite")?))
}

fn ids(vm: &Vm) -> Result<(u32, u32)> {
    Ok((vm.var("host_uid")?.parse()?, vm.var("host_gid")?.parse()?))
}

/// A file the host user made (the harness runs as root: it hands the file
/// to the user, as their editor would have left it).
fn host_write(vm: &Vm, path: &Path, data: &str) -> Result<()> {
    std::fs::write(path, data).with_context(|| path.display().to_string())?;
    let (uid, gid) = ids(vm)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    Ok(())
}

/// `ls -ln` lines inside the container: (owner uid, owner gid, name).
fn owners(ls: &str) -> Vec<(String, String, String)> {
    ls.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 9).then(|| (f[2].into(), f[3].into(), f[f.len() - 1].into()))
        })
        .collect()
}

/// The share is root-owned and writable inside; what the container makes is
/// the host user's on the host.
pub fn root_owned_writable(vm: &Vm) -> Result<()> {
    let share = PathBuf::from(vm.var("share")?);
    let (uid, gid) = ids(vm)?;
    let old = name(vm, "from-host")?;
    let new = name(vm, "new")?;
    host_write(vm, &share.join(&old), "host-data\n")?;
    let r = sh_in_share(
        vm,
        &share,
        &[],
        &format!("touch /w/{new} && echo more >> /w/{old} && ls -ln /w/{old} /w/{new}"),
    )?
    .success()?;
    let seen = owners(&r.stdout);
    ensure!(seen.len() == 2, "expected two ls lines: {r}");
    for (u, g, f) in &seen {
        ensure!(
            u == "0" && g == "0",
            "{f} is owned by {u}:{g} inside the container, not root (0:0): {r}"
        );
    }
    for f in [&new, &old] {
        let m = std::fs::symlink_metadata(share.join(f))?;
        ensure!(
            (m.uid(), m.gid()) == (uid, gid),
            "{f} on the host is owned by {}:{}, not the host user {uid}:{gid}",
            m.uid(),
            m.gid()
        );
    }
    let text = std::fs::read_to_string(share.join(&old))?;
    ensure!(
        text == "host-data\nmore\n",
        "the container's append: {text:?}"
    );
    // A container user other than root writes as the host user too: the
    // share never gets a file of someone else's (virtiofsd squashes ids).
    let chowned = name(vm, "chowned")?;
    sh_in_share(
        vm,
        &share,
        &[],
        &format!("touch /w/{chowned} && chown 1234:1234 /w/{chowned}"),
    )?
    .success()?;
    let m = std::fs::symlink_metadata(share.join(&chowned))?;
    ensure!(
        (m.uid(), m.gid()) == (uid, gid),
        "chown 1234:1234 in the container left {chowned} owned by {}:{} on the host, not the host user {uid}:{gid}",
        m.uid(),
        m.gid()
    );
    Ok(())
}

/// The bound on seeing a host edit: virtiofsd's cache=auto keeps attributes
/// for one second; the rest is the container's 50 ms poll and a loaded
/// TCG machine's scheduling.
const EDIT_VISIBLE_WITHIN: Duration = Duration::from_millis(1500);

/// A host edit (a new size, as an editor's save) reaches a container that
/// is already reading the file, within the cache's one-second bound.
pub fn host_edit_visible(vm: &Vm) -> Result<()> {
    let share = PathBuf::from(vm.var("share")?);
    let f = name(vm, "edit")?;
    let (ready, seen) = (name(vm, "ready")?, name(vm, "seen")?);
    let _ = std::fs::remove_file(share.join(&seen));
    let _ = std::fs::remove_file(share.join(&ready));
    host_write(vm, &share.join(&f), "v1\n")?;
    let script = format!(
        "while :; do read l < /w/{f}; \
         if [ \"$l\" = v1 ] && [ ! -e /w/{ready} ]; then echo > /w/{ready}; fi; \
         if [ \"$l\" = v2-longer ]; then echo > /w/{seen}; exit 0; fi; \
         sleep 0.05; done"
    );
    let cname = name(vm, "share-edit")?;
    let _ = vm.docker(&["rm", "-f", &cname]);
    vm.docker(&[
        "run",
        "-d",
        "--name",
        &cname,
        "-v",
        &format!("{}:/w", share.display()),
        "busybox",
        "sh",
        "-c",
        &script,
    ])?
    .success()?;
    let result = (|| -> Result<Duration> {
        let wait = |p: &Path, within: Duration| -> Result<Duration> {
            let t = Instant::now();
            while !p.exists() {
                if t.elapsed() > within {
                    bail!("{} did not appear within {within:?}", p.display());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(t.elapsed())
        };
        // The container has read v1 (and so cached its attributes).
        wait(&share.join(&ready), Duration::from_secs(120))?;
        std::thread::sleep(Duration::from_millis(200));
        host_write(vm, &share.join(&f), "v2-longer\n")?;
        wait(&share.join(&seen), Duration::from_secs(30))
    })();
    let logs = vm.docker(&["logs", &cname]).map(|r| r.to_string());
    let _ = vm.docker(&["rm", "-f", &cname]);
    let took = result.with_context(|| format!("container logs: {logs:?}"))?;
    eprintln!(
        "[vm-test] share/host-edit-visible ({}): host edit seen in the container after {} ms",
        vm.var("suite")?,
        took.as_millis()
    );
    ensure!(
        took <= EDIT_VISIBLE_WITHIN,
        "the host edit took {took:?} to reach the container (bound {EDIT_VISIBLE_WITHIN:?})"
    );
    Ok(())
}

/// CAP_MKNOD's bit in /proc/<pid>/status CapEff.
const CAP_MKNOD: u32 = 27;

/// The virtiofsd processes serving this VM's shares (each forks into its
/// sandbox: the recorded pid and its children).
fn virtiofsd_pids(vm: &Vm) -> Result<Vec<u32>> {
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vm.home.join("state.json"))?)?;
    let mut out = Vec::new();
    for s in st["shares"].as_array().into_iter().flatten() {
        if s["fs"] != "virtiofs" {
            continue;
        }
        let pid = s["pid"]
            .as_u64()
            .context("a virtiofs share without a pid")? as u32;
        out.push(pid);
        let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .with_context(|| format!("virtiofsd {pid} is gone"))?;
        out.extend(
            kids.split_whitespace()
                .filter_map(|k| k.parse::<u32>().ok()),
        );
    }
    ensure!(!out.is_empty(), "no virtiofsd is recorded in state.json");
    Ok(out)
}

fn status_field(pid: u32, key: &str) -> Result<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("{key} missing from /proc/{pid}/status"))
}

/// `mknod` of a block device into the share, from a --privileged
/// container, leaves no device on the host. The VM kernel refuses it
/// (EPERM: the container's root has no CAP_MKNOD over the VM); behind it,
/// virtiofsd could not make one either (root: CAP_MKNOD dropped; a user:
/// not root at all). A FIFO shows that mknod does reach the share.
pub fn mknod_no_device(vm: &Vm) -> Result<()> {
    let share = PathBuf::from(vm.var("share")?);
    let (uid, gid) = ids(vm)?;
    let (blk, fifo) = (name(vm, "blk")?, name(vm, "fifo")?);
    let r = sh_in_share(
        vm,
        &share,
        &["--privileged"],
        &format!("mknod /w/{blk} b 8 0; echo blk=$?; mknod /w/{fifo} p; echo fifo=$?"),
    )?;
    ensure!(
        r.stderr
            .contains(&format!("mknod: /w/{blk}: Operation not permitted")),
        "expected EPERM from the VM kernel for the block device: {r}"
    );
    ensure!(
        r.out().contains("blk=1") && r.out().contains("fifo=0"),
        "{r}"
    );
    match std::fs::symlink_metadata(share.join(&blk)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Ok(m) => bail!("{blk} exists on the host: {:?}", m.file_type()),
        Err(e) => bail!("{blk}: {e}"),
    }
    let m = std::fs::symlink_metadata(share.join(&fifo))
        .context("the FIFO never reached the share (the attempt did not happen)")?;
    ensure!(m.file_type().is_fifo(), "{fifo}: {:?}", m.file_type());
    ensure!(
        (m.uid(), m.gid()) == (uid, gid),
        "{fifo} is owned by {}:{}",
        m.uid(),
        m.gid()
    );
    // The second wall, as it stands on the host.
    for pid in virtiofsd_pids(vm)? {
        let euid: u32 = status_field(pid, "Uid:")?
            .split_whitespace()
            .nth(1)
            .context("Uid line")?
            .parse()?;
        ensure!(
            euid == uid,
            "virtiofsd {pid} runs as uid {euid}, not the host user {uid}"
        );
        if uid == 0 {
            let cap = u64::from_str_radix(&status_field(pid, "CapEff:")?, 16)?;
            // The sandboxed worker drops it; its waiting parent holds no
            // share open. Both must be without it to pass.
            let is_worker = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .map(|c| c.trim().is_empty())
                .unwrap_or(true);
            if is_worker {
                ensure!(
                    cap & (1 << CAP_MKNOD) == 0,
                    "virtiofsd {pid} (root) still has CAP_MKNOD: CapEff {cap:x}"
                );
            }
        }
    }
    Ok(())
}

/// `docker run --rm <extra> -v <share>:/w busybox sh -c <script>`.
fn sh_in_share(vm: &Vm, share: &Path, extra: &[&str], script: &str) -> Result<Run> {
    let bind = format!("{}:/w", share.display());
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend(["-v", &bind, "busybox", "sh", "-c", script]);
    vm.docker(&args)
}

/// A directory path next to the share (so not shared), named per scenario.
fn beside_share(vm: &Vm, what: &str) -> Result<PathBuf> {
    let share = PathBuf::from(vm.var("share")?);
    Ok(share
        .parent()
        .context("share has no parent")?
        .join(name(vm, what)?))
}

/// A symlink a container writes into the share resolves inside the
/// container, never on the host: neither an absolute target naming a host
/// directory outside the share, nor `..` past the share's root.
pub fn symlink_stays_in_container(vm: &Vm) -> Result<()> {
    let share = PathBuf::from(vm.var("share")?);
    let outside = beside_share(vm, "outside")?;
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("secret"), "host-secret\n")?;
    let link = name(vm, "esc")?;
    let _ = std::fs::remove_file(share.join(&link));
    let depth = share.components().count();
    let up = "../".repeat(depth + 2);
    let outside_rel = outside.strip_prefix("/").unwrap_or(&outside);
    let r = sh_in_share(
        vm,
        &share,
        &[],
        &format!(
            "ln -s {out} /w/{link} && echo linked; \
             cat /w/{link}/secret; \
             cat /w/{up}{rel}/secret; \
             echo planted > /w/{link}/planted; echo done",
            out = outside.display(),
            rel = outside_rel.display()
        ),
    )?;
    ensure!(
        r.out().contains("linked") && r.out().contains("done"),
        "{r}"
    );
    ensure!(
        !r.stdout.contains("host-secret"),
        "the container read the host file outside the share: {r}"
    );
    for what in [
        format!("cat: can't open '/w/{link}/secret': No such file or directory"),
        format!(
            "cat: can't open '/w/{up}{rel}/secret': No such file or directory",
            rel = outside_rel.display()
        ),
        format!("can't create /w/{link}/planted: nonexistent directory"),
    ] {
        ensure!(
            r.stderr.contains(&what),
            "expected {what:?} (ENOENT: resolved in the container): {r}"
        );
    }
    // The attempt really happened: the link is on the host, as written.
    let target =
        std::fs::read_link(share.join(&link)).context("the symlink is not in the share")?;
    ensure!(target == outside, "link target {}", target.display());
    ensure!(
        !outside.join("planted").exists(),
        "the container wrote through its symlink to the host"
    );
    Ok(())
}

/// A host path outside the shared directories is refused, naming the path
/// and the setting (Docker Desktop's "not shared" answer; a VM path keeps
/// ECI's). In the share-user suite, a directory the user asked to share
/// that the admin's filesharingAllowedDirectories does not allow is not
/// shared at all, and refused the same way, naming the admin's list.
pub fn outside_refused(vm: &Vm) -> Result<()> {
    let not_shared = beside_share(vm, "not-shared")?;
    std::fs::create_dir_all(&not_shared)?;
    let mut paths = vec![not_shared];
    if let Ok(d) = vm.var("denied") {
        paths.push(PathBuf::from(d));
    }
    for p in paths {
        let p = p.display().to_string();
        let r = vm.docker(&["run", "--rm", "-v", &format!("{p}:/x"), "busybox", "true"])?;
        r.failure_with(&format!(
            "mounts denied: the path {p} is not shared from the host and is not known to Docker; share it by adding it (or a directory above it) to filesharingDirectories"
        ))?;
    }
    // A VM path keeps ECI's answer, and says what is shared.
    let r = vm.docker(&["run", "--rm", "-v", "/etc/hostname:/x", "busybox", "true"])?;
    r.failure_with(
        "can't mount /etc/hostname because it's configured as a restricted host mount: /etc/hostname is not in a directory shared with the VM (filesharingDirectories: ",
    )?;
    if let Ok(d) = vm.var("denied") {
        let r = vm.docker(&["run", "--rm", "-v", &format!("{d}:/x"), "busybox", "true"])?;
        r.failure_with(&format!(
            "the admin's filesharingAllowedDirectories: {}",
            vm.var("allowed")?
        ))?;
        let s = vm.hull_cmd(&["settings"])?.success()?;
        ensure!(
            s.stdout.contains(d) || s.stderr.contains(d),
            "`hull settings` does not mention the refused directory {d}: {s}"
        );
    }
    Ok(())
}

/// `hull status` lists each share with its cache mode and id-mapping.
pub fn status_lists_shares(vm: &Vm) -> Result<()> {
    let share = vm.var("share")?;
    let r = vm.hull_cmd(&["status"])?.success()?;
    let want = format!("{share} -> /mnt/host{share} (virtiofs, cache auto, id-mapped)");
    ensure!(r.stdout.contains(&want), "expected {want:?} in: {r}");
    let st = vm.status()?;
    let g = &st["guest"]["shares"]["shares"][0];
    ensure!(g["idmapped"] == true && g["fs"] == "virtiofs", "{g}");
    Ok(())
}

/// The scenarios, once per suite (the names must differ in the report).
pub const AS_ROOT: &[(&str, super::Par)] = &[
    ("share/root-owned-writable", root_owned_writable),
    ("share/host-edit-visible", host_edit_visible),
    ("share/mknod-no-device", mknod_no_device),
    (
        "share/symlink-stays-in-container",
        symlink_stays_in_container,
    ),
    ("share/outside-refused", outside_refused),
    ("share/status", status_lists_shares),
];

pub const AS_USER: &[(&str, super::Par)] = &[
    ("share-user/root-owned-writable", root_owned_writable),
    ("share-user/host-edit-visible", host_edit_visible),
    ("share-user/mknod-no-device", mknod_no_device),
    (
        "share-user/symlink-stays-in-container",
        symlink_stays_in_container,
    ),
    ("share-user/outside-refused", outside_refused),
    ("share-user/status", status_lists_shares),
];

/// The share-user suite: `hull up` as `hull-test`, an admin file (root's)
/// that allows one directory, and user settings that ask for that
/// directory's `proj` and for one more the admin does not allow.
pub fn user_setup(vm: &mut Vm, work: &Path) -> Result<Box<dyn std::any::Any>> {
    use std::os::unix::fs::PermissionsExt;
    let user = crate::deps::TEST_USER;
    let id = |flag: &str| -> Result<u32> {
        let o = std::process::Command::new("id")
            .args([flag, user])
            .output()?;
        ensure!(
            o.status.success(),
            "the account {user} is missing: run `cargo xtask deps` (as root)"
        );
        Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
    };
    let (uid, gid) = (id("-u")?, id("-g")?);
    let allowed = work.join("user-allowed");
    let share = allowed.join("proj");
    let denied = work.join("user-denied");
    for d in [&allowed, &share, &denied] {
        std::fs::create_dir_all(d)?;
        std::os::unix::fs::chown(d, Some(uid), Some(gid))?;
    }
    let admin = work.join("share-admin-settings.json");
    std::fs::write(
        &admin,
        serde_json::json!({
            "configurationFileVersion": 2,
            "filesharingAllowedDirectories": [{"path": allowed, "sharedByDefault": false}],
        })
        .to_string(),
    )?;
    std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o644))?;
    vm.env
        .push(("HULL_ADMIN_SETTINGS".into(), admin.display().to_string()));
    std::fs::write(
        vm.home.join("settings.json"),
        serde_json::json!({"filesharingDirectories": [share, denied]}).to_string(),
    )?;
    vm.become_user(uid, gid)?;
    std::os::unix::fs::chown(vm.home.join("settings.json"), Some(uid), Some(gid))?;
    for (k, v) in [
        ("share", share.display().to_string()),
        ("denied", denied.display().to_string()),
        ("allowed", allowed.display().to_string()),
        ("host_uid", uid.to_string()),
        ("host_gid", gid.to_string()),
    ] {
        vm.vars.insert(k.into(), v);
    }
    Ok(Box::new(()))
}
