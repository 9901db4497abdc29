//! procfs emulation: a small FUSE filesystem bound by the runtime over the
//! container's `/proc/uptime`, `/proc/swaps`, `/proc/meminfo`,
//! `/proc/cpuinfo` (from its cgroup limits) and the `/proc/sys` knobs the
//! kernel does not namespace (lxcfs-style).
//!
//! Layout: one directory per container, named by the first VM id of its
//! exclusive range (`<mount>/100000/uptime`); the runtime binds that
//! container's files only. Writes are allowed to the container's root alone
//! (FUSE tells us the caller's VM uid, and ranges are exclusive, so nothing
//! the container says is trusted), kept per container and never reach the
//! VM's kernel; a container that never wrote a knob reads the VM's value.
//!
//! It runs as its own process (`hull-guard procfs`, started detached by the
//! guard, reused by a restarted guard), so a guard crash does not take the
//! containers' /proc/uptime and knobs with it: a FUSE mount whose server dies
//! fails every read (ENOTCONN) for good.
//!
//! Why a directory (an inode) per container: the kernel serves sendfile(2)
//! and splice(2) from the page cache even for direct-I/O files, so one inode
//! shared by all containers could hand one container's cached answer to
//! another. Files report a size of 1 MiB so that page-cache readers read at
//! all; the short read that follows tells the kernel where the text ends.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};

use hull_guard_proto::idrange::{IdRange, FIRST_ID, RANGE_LEN};

// The layout the runtime binds from is the contract between the two: it
// lives in hull-guard-proto.
pub use hull_guard_proto::procfs::{container_dir, is_mounted, EMULATED};

#[derive(Debug, Clone)]
pub struct ContainerView {
    pub range: IdRange,
    pub init_pid: i32,
    pub init_start_ticks: u64,
    pub privileged: bool,
    pub sysctls: HashMap<String, String>,
    /// The container's cgroup (v2), for meminfo and cpuinfo.
    pub cgroup: Option<std::path::PathBuf>,
}

impl ContainerView {
    pub fn new(range: IdRange, init_pid: i32, privileged: bool) -> Self {
        ContainerView {
            range,
            init_pid,
            init_start_ticks: crate::sys::pid_start_time(init_pid).unwrap_or(0),
            privileged,
            sysctls: HashMap::new(),
            cgroup: super::limits::cgroup_dir(init_pid),
        }
    }
}

/// Every registered container's view, shared with the guard's server.
#[derive(Clone, Default)]
pub struct Views(Arc<Mutex<HashMap<String, ContainerView>>>);

impl Views {
    pub fn insert(&self, id: &str, v: ContainerView) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id.to_string(), v);
        }
    }
    pub fn get(&self, id: &str) -> Option<ContainerView> {
        self.0.lock().ok().and_then(|m| m.get(id).cloned())
    }
    pub fn forget(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }
    fn by_start(&self, start: u32) -> Option<(String, ContainerView)> {
        let m = self.0.lock().ok()?;
        m.iter()
            .find(|(_, v)| v.range.start == start)
            .map(|(k, v)| (k.clone(), v.clone()))
    }
    fn set(&self, start: u32, knob: &str, value: String) -> Option<String> {
        let mut m = self.0.lock().ok()?;
        let (id, v) = m.iter_mut().find(|(_, v)| v.range.start == start)?;
        v.sysctls.insert(knob.to_string(), value);
        Some(id.clone())
    }
}

fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn host_uptime() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/uptime").unwrap_or_default();
    let mut it = s.split_whitespace().filter_map(|x| x.parse::<f64>().ok());
    (it.next().unwrap_or(0.0), it.next().unwrap_or(0.0))
}

/// Valid values: one to four integers, like every knob emulated here.
fn valid_value(v: &str) -> bool {
    let parts: Vec<&str> = v.split_whitespace().collect();
    !parts.is_empty() && parts.len() <= 4 && parts.iter().all(|p| p.parse::<i64>().is_ok())
}

const ROOT: u64 = 1;
const TTL: Duration = Duration::from_secs(1);
const DIR_BASE: u64 = 1024;
const PER_DIR: u64 = 64;
const FOPEN_DIRECT_IO: u32 = 1;
/// What files claim as their size: more than any of them holds (cpuinfo of
/// a large VM included); the first short read tells the kernel the real end.
const FILE_SIZE: u64 = 1 << 20;

fn dir_ino(start: u32) -> Option<u64> {
    let off = start.checked_sub(FIRST_ID)?;
    (off % RANGE_LEN == 0).then(|| DIR_BASE + (off / RANGE_LEN) as u64 * PER_DIR)
}

fn dir_start(ino: u64) -> Option<u32> {
    let i = ino.checked_sub(DIR_BASE)?;
    let n = u32::try_from(i / PER_DIR).ok()?;
    (i % PER_DIR == 0).then(|| FIRST_ID.checked_add(n.checked_mul(RANGE_LEN)?))?
}

/// (range start, file name) of a file inode.
fn file_of(ino: u64) -> Option<(u32, &'static str)> {
    let i = ino.checked_sub(DIR_BASE)?;
    let (d, f) = (i / PER_DIR, i % PER_DIR);
    let name = EMULATED.get((f as usize).checked_sub(1)?)?.0;
    Some((dir_start(DIR_BASE + d * PER_DIR)?, name))
}

fn attr(ino: u64) -> FileAttr {
    let dir = ino == ROOT || dir_start(ino).is_some();
    let writable = file_of(ino).is_some_and(|(_, n)| n.contains('.'));
    FileAttr {
        ino,
        size: if dir { 0 } else { FILE_SIZE },
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: if dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: if dir {
            0o555
        } else if writable {
            0o644
        } else {
            0o444
        },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

struct ProcFs {
    views: Views,
    next_fh: u64,
    /// Per open file: the content snapshot (a file read in pieces stays consistent).
    open: HashMap<u64, Vec<u8>>,
}

impl ProcFs {
    fn content(&self, start: u32, name: &str) -> String {
        let view = self.views.by_start(start).map(|(_, v)| v);
        match name {
            "uptime" => {
                let (up, idle) = host_uptime();
                match view {
                    Some(v) if v.init_start_ticks > 0 => {
                        let started = v.init_start_ticks as f64 / clk_tck();
                        let c = (up - started).max(0.0);
                        let cidle = if up > 0.0 { idle * c / up } else { 0.0 };
                        format!("{c:.2} {cidle:.2}\n")
                    }
                    _ => format!("{up:.2} {idle:.2}\n"),
                }
            }
            "meminfo" => {
                super::limits::meminfo_for(view.as_ref().and_then(|v| v.cgroup.as_deref()))
            }
            "cpuinfo" => {
                super::limits::cpuinfo_for(view.as_ref().and_then(|v| v.cgroup.as_deref()))
            }
            // No swap device of the VM is a container's business.
            "swaps" => "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n".into(),
            knob => view
                .and_then(|v| v.sysctls.get(knob).cloned())
                .unwrap_or_else(|| std::fs::read_to_string(sysctl_path(knob)).unwrap_or_default()),
        }
    }

    /// Only the container's root writes its knobs (the real files are root's, 0644).
    fn may_write(&self, uid: u32, ino: u64) -> bool {
        file_of(ino).is_some_and(|(start, n)| n.contains('.') && start == uid)
            && self.views.by_start(uid).is_some()
    }
}

impl Filesystem for ProcFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name.to_str() else {
            return reply.error(libc::ENOENT);
        };
        let ino = if parent == ROOT {
            name.parse::<u32>().ok().and_then(dir_ino)
        } else if dir_start(parent).is_some() {
            EMULATED
                .iter()
                .position(|(n, _)| *n == name)
                .map(|i| parent + 1 + i as u64)
        } else {
            None
        };
        match ino {
            Some(ino) => reply.entry(&TTL, &attr(ino), 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        if ino == ROOT || dir_start(ino).is_some() || file_of(ino).is_some() {
            reply.attr(&TTL, &attr(ino));
        } else {
            reply.error(libc::ENOENT);
        }
    }

    fn setattr(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        // Only truncation on open(O_TRUNC) arrives here; it changes nothing.
        if self.may_write(req.uid(), ino) {
            reply.attr(&TTL, &attr(ino));
        } else {
            reply.error(libc::EACCES);
        }
    }

    fn open(&mut self, req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if file_of(ino).is_none() {
            return reply.error(libc::ENOENT);
        }
        if flags & libc::O_ACCMODE != libc::O_RDONLY && !self.may_write(req.uid(), ino) {
            return reply.error(libc::EACCES);
        }
        self.next_fh += 1;
        reply.opened(self.next_fh, FOPEN_DIRECT_IO);
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open.remove(&fh);
        reply.ok();
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let Some((start, name)) = file_of(ino) else {
            return reply.error(libc::ENOENT);
        };
        let b = match self.open.get(&fh) {
            Some(b) => b.clone(),
            None => {
                let c = self.content(start, name).into_bytes();
                self.open.insert(fh, c.clone());
                c
            }
        };
        let s0 = (offset.max(0) as usize).min(b.len());
        let e = (s0 + size as usize).min(b.len());
        reply.data(&b[s0..e]);
    }

    fn write(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _offset: i64,
        data: &[u8],
        _wflags: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Some((start, name)) = file_of(ino) else {
            return reply.error(libc::ENOENT);
        };
        if !self.may_write(req.uid(), ino) {
            return reply.error(libc::EACCES);
        }
        let v = String::from_utf8_lossy(data).trim().to_string();
        if !valid_value(&v) {
            return reply.error(libc::EINVAL);
        }
        if let Some(id) = self.views.set(start, name, format!("{v}\n")) {
            tracing::info!(container = %id, knob = name, value = %v, "emulated sysctl written (the VM's kernel is untouched)");
        }
        reply.written(data.len() as u32);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let mut entries: Vec<(u64, FileType, String)> = vec![
            (ino, FileType::Directory, ".".into()),
            (ROOT, FileType::Directory, "..".into()),
        ];
        if dir_start(ino).is_some() {
            for (i, (n, _)) in EMULATED.iter().enumerate() {
                entries.push((ino + 1 + i as u64, FileType::RegularFile, n.to_string()));
            }
        } else if ino != ROOT {
            return reply.error(libc::ENOTDIR);
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(ino, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// What the guard tells the procfs server (one JSON line per connection).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Msg {
    Add {
        id: String,
        range: IdRange,
        init_pid: i32,
        privileged: bool,
    },
    Remove {
        id: String,
    },
    Ping,
}

/// The procfs server's main: mount, then take the guard's messages.
pub fn serve(dir: &Path, socket: &Path) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    crate::sys::set_dumpable(false)?;
    let views = Views::default();
    let _session = mount(dir, views.clone())?;
    let _ = std::fs::remove_file(socket);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = std::os::unix::net::UnixListener::bind(socket);
    nix::sys::stat::umask(old);
    let l = l?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(socket.with_extension("pid"), std::process::id().to_string())?;
    tracing::info!(mount = %dir.display(), "hull-guard procfs ready");
    for conn in l.incoming() {
        let Ok(c) = conn else { continue };
        let root = nix::sys::socket::getsockopt(&c, nix::sys::socket::sockopt::PeerCredentials)
            .map(|cr| cr.uid() == 0)
            .unwrap_or(false);
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        if !root || BufReader::new(&c).read_line(&mut line).is_err() {
            continue;
        }
        let ok = match serde_json::from_str::<Msg>(line.trim()) {
            Ok(Msg::Add {
                id,
                range,
                init_pid,
                privileged,
            }) => {
                views.insert(&id, ContainerView::new(range, init_pid, privileged));
                true
            }
            Ok(Msg::Remove { id }) => {
                views.forget(&id);
                true
            }
            Ok(Msg::Ping) => true,
            Err(_) => false,
        };
        let _ = (&c).write_all(if ok {
            b"{\"ok\":true}\n"
        } else {
            b"{\"ok\":false}\n"
        });
    }
    Ok(())
}

/// The guard's side: a running procfs server (started detached if none).
pub struct Client {
    socket: std::path::PathBuf,
}

impl Client {
    pub fn send(&self, m: &Msg) -> std::io::Result<()> {
        use std::io::{BufRead, BufReader, Write};
        let c = std::os::unix::net::UnixStream::connect(&self.socket)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = serde_json::to_vec(m).map_err(std::io::Error::other)?;
        line.push(b'\n');
        (&c).write_all(&line)?;
        let mut answer = String::new();
        BufReader::new(&c).read_line(&mut answer)?;
        if answer.contains("\"ok\":true") {
            Ok(())
        } else {
            Err(std::io::Error::other("procfs server refused"))
        }
    }

    /// Reuse the server a previous guard started if it still answers and its
    /// mount is live; otherwise start one (detached: it outlives this guard).
    pub fn ensure(exe: &Path, dir: &Path, socket: &Path) -> anyhow::Result<Client> {
        let c = Client {
            socket: socket.to_path_buf(),
        };
        if c.send(&Msg::Ping).is_ok() && is_mounted(dir) {
            tracing::info!("reusing the running procfs server");
            return Ok(c);
        }
        if let Ok(pid) = std::fs::read_to_string(socket.with_extension("pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // A stale or wedged server of ours (its pid file, its socket).
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("procfs")
            .arg("--mount")
            .arg(dir)
            .arg("--socket")
            .arg(socket)
            .stdin(std::process::Stdio::null());
        // SAFETY: only setsid (async-signal-safe) between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        for _ in 0..500 {
            if c.send(&Msg::Ping).is_ok() && is_mounted(dir) {
                // Reaped by whoever inherits it; we do not wait for it.
                std::mem::forget(child);
                return Ok(c);
            }
            if let Ok(Some(st)) = child.try_wait() {
                anyhow::bail!("procfs server exited: {st}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        anyhow::bail!("procfs server did not come up")
    }
}

/// Mount the emulation at `dir` (replacing a stale mount of a previous guard)
/// and serve it on a background thread for as long as the handle lives.
pub fn mount(dir: &Path, views: Views) -> anyhow::Result<fuser::BackgroundSession> {
    let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
    std::fs::create_dir_all(dir)?;
    let opts = [
        MountOption::FSName("hull-procfs".into()),
        MountOption::AllowOther,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
    ];
    let fs = ProcFs {
        views,
        next_fh: 0,
        open: HashMap::new(),
    };
    Ok(fuser::spawn_mount2(fs, dir, &opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_name_a_container_and_a_file() {
        let d = dir_ino(165_536).unwrap();
        assert_eq!(dir_start(d), Some(165_536));
        assert_eq!(file_of(d + 1), Some((165_536, "uptime")));
        assert_eq!(file_of(d + 2), Some((165_536, "swaps")));
        assert_eq!(file_of(d), None);
        assert_eq!(dir_ino(100_001), None);
        assert_eq!(dir_ino(99_999), None);
    }

    #[test]
    fn only_integers_are_kept() {
        assert!(valid_value("1"));
        assert!(valid_value("4 4 1 7"));
        assert!(!valid_value("|/bin/sh"));
        assert!(!valid_value(""));
    }
}
