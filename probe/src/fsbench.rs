//! `hull-probe fsbench <dir> <files> <mib>`: the file-system load of
//! `cargo xtask bench` (issue 14), run inside a container on the directory
//! under test, timed with `Instant`. One line per phase, `FSBENCH <phase>
//! key=value ...`; a failure prints `FAILED fsbench <phase>: <why>` and
//! exits 2. Everything it makes lives in `fsbench-*` entries of `<dir>` and
//! is removed again.
//!
//! Phases:
//! - `fs`: the file system mounted at `<dir>` (`type`, from mountinfo; 9p's
//!   `statfs` magic is the host file system's), so the caller can check it
//!   measured the place it meant to.
//! - `small_files`: N files of 100 bytes, phase by phase: create+write+close
//!   of all, then an lstat of each, then an unlink of each (`total_s` is the
//!   sum; each phase is timed alone too).
//! - `stat_storm`: N files made untimed, then N lstats, as `git status` does.
//!   `cold_s` first waits 1.5 s, longer than the 1 s for which virtiofs
//!   (cache=auto) trusts a name and its attributes, so every lstat asks the
//!   host (9p with cache=mmap always asks; ext4 never leaves the VM);
//!   `warm_s` repeats the storm at once, so virtiofs may answer from the
//!   guest's cache for as long as that second lasts.
//! - `seq_write`: M MiB in 1 MiB writes, then fsync, all timed.
//! - `seq_read`: the file reopened, its pages dropped from the guest's page
//!   cache with POSIX_FADV_DONTNEED (after the fsync they are clean; the
//!   page counts before and after are reported from mincore, `na-errno<N>`
//!   where the file cannot be mapped), then read in
//!   1 MiB reads. The host's page cache may still serve it (virtiofsd's and
//!   QEMU's reads, and the VM disk image's).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SMALL: usize = 100;
const MIB: usize = 1 << 20;

pub fn run(dir: &str, files: usize, mib: usize) -> i32 {
    let dir = Path::new(dir);
    match all(dir, files, mib) {
        Ok(()) => 0,
        Err((phase, why)) => {
            println!("FAILED fsbench {phase}: {why}");
            2
        }
    }
}

type Failed = (&'static str, String);

fn at<T>(phase: &'static str, what: &Path, r: std::io::Result<T>) -> Result<T, Failed> {
    r.map_err(|e| (phase, format!("{}: {e}", what.display())))
}

fn all(dir: &Path, files: usize, mib: usize) -> Result<(), Failed> {
    println!(
        "FSBENCH fs type={} statfs={}",
        mount_type(dir).map_err(|e| ("fs", e))?,
        fs_type(dir).map_err(|e| ("fs", e))?
    );
    small_files(dir, files)?;
    stat_storm(dir, files)?;
    sequential(dir, mib)
}

/// The file-system type of the mount `dir` is on, from /proc/self/mountinfo
/// (the longest mount point above it, the last one mounted there): 9p's
/// statfs answers with the host file system's magic, so statfs alone cannot
/// tell.
fn mount_type(dir: &Path) -> Result<String, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let mut best: Option<(usize, &str)> = None;
    for l in info.lines() {
        let (Some(point), Some(ty)) = (
            l.split(' ').nth(4),
            l.split(" - ").nth(1).and_then(|r| r.split(' ').next()),
        ) else {
            continue;
        };
        let point = Path::new(point);
        if dir.starts_with(point) {
            let depth = point.components().count();
            if best.is_none_or(|(d, _)| depth >= d) {
                best = Some((depth, ty));
            }
        }
    }
    best.map(|(_, t)| t.to_string())
        .ok_or_else(|| format!("no mount above {} in /proc/self/mountinfo", dir.display()))
}

fn fs_type(dir: &Path) -> Result<String, String> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: statfs is plain data; zeroed is a valid value of it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a live statfs buffer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } < 0 {
        return Err(format!(
            "statfs {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(match st.f_type {
        0x6573_5546 => "fuse".into(),
        0x0102_1997 => "9p".into(),
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794c_7630 => "overlay".into(),
        m => format!("magic-{m:#x}"),
    })
}

fn names(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| base.join(format!("f{i:05}"))).collect()
}

fn fresh_dir(phase: &'static str, p: &Path) -> Result<(), Failed> {
    // A leftover of an interrupted run would change the figures.
    if p.exists() {
        at(phase, p, std::fs::remove_dir_all(p))?;
    }
    at(phase, p, std::fs::create_dir(p))
}

fn make(phase: &'static str, paths: &[PathBuf]) -> Result<(), Failed> {
    let data = [b'x'; SMALL];
    for p in paths {
        let mut f = at(phase, p, File::create(p))?;
        at(phase, p, f.write_all(&data))?;
    }
    Ok(())
}

fn lstat_all(phase: &'static str, paths: &[PathBuf]) -> Result<(), Failed> {
    for p in paths {
        let m = at(phase, p, std::fs::symlink_metadata(p))?;
        if m.len() != SMALL as u64 {
            return Err((phase, format!("{} has {} bytes", p.display(), m.len())));
        }
    }
    Ok(())
}

fn remove(phase: &'static str, base: &Path, paths: &[PathBuf]) -> Result<(), Failed> {
    for p in paths {
        at(phase, p, std::fs::remove_file(p))?;
    }
    at(phase, base, std::fs::remove_dir(base))
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn small_files(dir: &Path, n: usize) -> Result<(), Failed> {
    const P: &str = "small_files";
    let base = dir.join("fsbench-small");
    fresh_dir(P, &base)?;
    let paths = names(&base, n);
    let t = Instant::now();
    make(P, &paths)?;
    let create = secs(t);
    let t = Instant::now();
    lstat_all(P, &paths)?;
    let stat = secs(t);
    let t = Instant::now();
    remove(P, &base, &paths)?;
    let delete = secs(t);
    println!(
        "FSBENCH small_files files={n} bytes={SMALL} create_write_s={create:.6} stat_s={stat:.6} delete_s={delete:.6} total_s={:.6}",
        create + stat + delete
    );
    Ok(())
}

fn stat_storm(dir: &Path, n: usize) -> Result<(), Failed> {
    const P: &str = "stat_storm";
    let base = dir.join("fsbench-stat");
    fresh_dir(P, &base)?;
    let paths = names(&base, n);
    make(P, &paths)?;
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    lstat_all(P, &paths)?;
    let cold = secs(t);
    let t = Instant::now();
    lstat_all(P, &paths)?;
    let warm = secs(t);
    remove(P, &base, &paths)?;
    println!("FSBENCH stat_storm files={n} cold_s={cold:.6} warm_s={warm:.6}");
    Ok(())
}

/// Pages of `f` in the guest's page cache, from mincore on a mapping of it.
fn resident_pages(f: &File, len: usize) -> std::io::Result<usize> {
    // SAFETY: sysconf has no memory effects.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .map_err(|_| std::io::Error::last_os_error())?;
    // SAFETY: a fresh read-only shared mapping of a file we hold open; it is
    // only passed to mincore and unmapped below, never dereferenced.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: addr/len is the mapping made above; vec has one byte per page.
    let r = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let e = std::io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(addr, len) };
    if r < 0 {
        return Err(e);
    }
    Ok(vec.iter().filter(|b| **b & 1 == 1).count())
}

fn sequential(dir: &Path, mib: usize) -> Result<(), Failed> {
    let p = dir.join("fsbench-seq");
    let mut chunk = vec![0u8; MIB];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let t = Instant::now();
    let mut f = at("seq_write", &p, File::create(&p))?;
    for _ in 0..mib {
        at("seq_write", &p, f.write_all(&chunk))?;
    }
    at("seq_write", &p, f.sync_all())?;
    drop(f);
    let s = secs(t);
    println!(
        "FSBENCH seq_write mib={mib} chunk_mib=1 fsync=end s={s:.6} mib_s={:.3}",
        mib as f64 / s
    );
    const R: &str = "seq_read";
    let mut f = at(R, &p, File::open(&p))?;
    let len = mib * MIB;
    // A file that cannot be mapped (virtiofs with cache=never opens it for
    // direct I/O, so nothing of it is in the page cache) reports `na`.
    let pages = |f: &File| match resident_pages(f, len) {
        Ok(n) => n.to_string(),
        Err(e) => format!("na-errno{}", e.raw_os_error().unwrap_or(0)),
    };
    let before = pages(&f);
    // SAFETY: fadvise on an fd we hold; no memory is passed.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        return Err((
            R,
            format!(
                "posix_fadvise(DONTNEED) {}: {}",
                p.display(),
                std::io::Error::from_raw_os_error(r)
            ),
        ));
    }
    let after = pages(&f);
    let t = Instant::now();
    let mut total = 0usize;
    loop {
        let n = at(R, &p, f.read(&mut chunk))?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let s = secs(t);
    drop(f);
    if total != len {
        return Err((R, format!("read {total} bytes of {len}")));
    }
    at(R, &p, std::fs::remove_file(&p))?;
    println!(
        "FSBENCH seq_read mib={mib} chunk_mib=1 cached_pages_before_drop={before} cached_pages_at_start={after} s={s:.6} mib_s={:.3}",
        mib as f64 / s
    );
    Ok(())
}
