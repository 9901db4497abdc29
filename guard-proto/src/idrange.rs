//! Exclusive uid/gid ranges, one 65536-id block per running container.
//!
//! Why exclusive: with one shared range (userns-remap) root in one container is
//! the same VM uid as root in every other, so containers can read each other's
//! files and signal each other's processes. Why persisted: a range must never be
//! handed out twice while a container still holds it, across runtime and VM
//! restarts. The record lives in one JSON file guarded by flock(2), so many
//! concurrent runtime invocations and hull-guard (which serves this same
//! module over its socket) agree on it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the table could not be used; each names the file and what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("user id ranges exhausted: all {0} ranges of 65536 ids are in use")]
    Exhausted(usize),
}

pub type Result<T> = std::result::Result<T, Error>;

trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what().into(),
            source,
        })
    }
}

pub const FIRST_ID: u32 = 100_000;
pub const RANGE_LEN: u32 = 65_536;
/// Ranges that fit below 2^32 - 1 (the kernel's invalid id).
pub const DEFAULT_MAX_RANGES: usize = ((u32::MAX - FIRST_ID) / RANGE_LEN) as usize - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub start: u32,
    pub len: u32,
}

impl IdRange {
    /// Map a container id (0..len) to the VM id; `None` outside the range,
    /// and for a range that would run past u32::MAX (a range read from a
    /// message is not trusted to fit).
    pub fn host(&self, id: u32) -> Option<u32> {
        (id < self.len)
            .then(|| self.start.checked_add(id))
            .flatten()
    }
}

/// Who holds a range: the container's state directory identifies it uniquely
/// (two runtime roots may reuse an id), and whether it still exists is how
/// stale entries are reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    start: u32,
    owner: Owner,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    ranges: Vec<Entry>,
}

pub struct Allocator {
    dir: PathBuf,
    max: usize,
}

struct Locked {
    _lock: File,
    table: Table,
    path: PathBuf,
}

impl Allocator {
    pub fn new(dir: impl Into<PathBuf>, max: usize) -> Self {
        Allocator {
            dir: dir.into(),
            max: max.clamp(1, DEFAULT_MAX_RANGES),
        }
    }

    fn lock(&self) -> Result<Locked> {
        std::fs::create_dir_all(&self.dir).ctx(|| format!("create {}", self.dir.display()))?;
        let lock_path = self.dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx(|| format!("open {}", lock_path.display()))?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("flock {}", lock_path.display()));
        }
        let path = self.dir.join("ranges.json");
        let table = match File::open(&path) {
            Ok(mut f) => {
                let mut s = String::new();
                f.read_to_string(&mut s)
                    .ctx(|| format!("read {}", path.display()))?;
                if s.trim().is_empty() {
                    Table::default()
                } else {
                    serde_json::from_str(&s).map_err(|e| Error::Corrupt {
                        path: path.clone(),
                        msg: e.to_string(),
                    })?
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::default(),
            Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
        };
        Ok(Locked {
            _lock: lock,
            table,
            path,
        })
    }

    fn save(l: &Locked) -> Result<()> {
        let tmp = l.path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(&l.table).map_err(|e| Error::Corrupt {
            path: l.path.clone(),
            msg: e.to_string(),
        })?;
        let mut f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(&data)
            .ctx(|| format!("write {}", tmp.display()))?;
        // No fsync: the rename is atomic, and after a crash every recorded
        // container is gone anyway (its state dir lives on tmpfs /run), so
        // reconciliation frees the entries; fsync would cost milliseconds per create.
        std::fs::rename(&tmp, &l.path).ctx(|| format!("rename {}", tmp.display()))
    }

    /// Drop entries whose container no longer exists (its state dir is gone).
    fn reconcile(t: &mut Table) {
        t.ranges.retain(|e| e.owner.state_dir.is_dir());
    }

    /// Allocate the lowest free range for `owner` (idempotent for the same owner).
    pub fn allocate(&self, owner: &Owner) -> Result<IdRange> {
        let mut l = self.lock()?;
        if let Some(e) = l.table.ranges.iter().find(|e| &e.owner == owner) {
            return Ok(IdRange {
                start: e.start,
                len: RANGE_LEN,
            });
        }
        let mut used: Vec<u32> = l.table.ranges.iter().map(|e| e.start).collect();
        let mut pick = Self::first_free(&used, self.max);
        if pick.is_none() {
            Self::reconcile(&mut l.table);
            used = l.table.ranges.iter().map(|e| e.start).collect();
            pick = Self::first_free(&used, self.max);
        }
        let start = pick.ok_or(Error::Exhausted(self.max))?;
        l.table.ranges.push(Entry {
            start,
            owner: owner.clone(),
        });
        Self::save(&l)?;
        Ok(IdRange {
            start,
            len: RANGE_LEN,
        })
    }

    fn first_free(used: &[u32], max: usize) -> Option<u32> {
        (0..max as u32)
            .map(|i| FIRST_ID + i * RANGE_LEN)
            .find(|s| !used.contains(s))
    }

    /// Free the range held by `owner` (no error if it holds none).
    pub fn release(&self, owner: &Owner) -> Result<()> {
        let mut l = self.lock()?;
        let before = l.table.ranges.len();
        l.table.ranges.retain(|e| &e.owner != owner);
        if l.table.ranges.len() != before {
            Self::save(&l)?;
        }
        Ok(())
    }

    /// Drop every stale entry now (what hull-guard does at start).
    pub fn reconcile_now(&self) -> Result<usize> {
        let mut l = self.lock()?;
        let before = l.table.ranges.len();
        Self::reconcile(&mut l.table);
        let dropped = before - l.table.ranges.len();
        if dropped > 0 {
            Self::save(&l)?;
        }
        Ok(dropped)
    }

    pub fn in_use(&self) -> Result<Vec<(IdRange, Owner)>> {
        let l = self.lock()?;
        Ok(l.table
            .ranges
            .iter()
            .map(|e| {
                (
                    IdRange {
                        start: e.start,
                        len: RANGE_LEN,
                    },
                    e.owner.clone(),
                )
            })
            .collect())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// guard/fuzz's guard_request target panics on this range without the
    /// fix (`start + id` overflowed); its input is the regression seed
    /// guard/fuzz/regressions/guard_request/crash-range-past-u32-max.
    #[test]
    fn a_range_past_u32_max_maps_nothing_past_it() {
        let r = IdRange {
            start: u32::MAX,
            len: 2,
        };
        assert_eq!(r.host(0), Some(u32::MAX));
        assert_eq!(r.host(1), None);
        assert_eq!(r.host(2), None);
        let ok = IdRange {
            start: 100_000,
            len: 65_536,
        };
        assert_eq!(ok.host(65_535), Some(165_535));
        assert_eq!(ok.host(65_536), None);
    }

    fn owner(dir: &Path, id: &str) -> Owner {
        let sd = dir.join("state").join(id);
        std::fs::create_dir_all(&sd).unwrap();
        std::fs::write(sd.join("state.json"), "{}").unwrap();
        Owner {
            id: id.into(),
            state_dir: sd,
        }
    }

    #[test]
    fn ranges_are_exclusive_and_reused_after_release() {
        let t = tempfile::tempdir().unwrap();
        let a = Allocator::new(t.path().join("ids"), 3);
        let (o1, o2, o3, o4) = (
            owner(t.path(), "a"),
            owner(t.path(), "b"),
            owner(t.path(), "c"),
            owner(t.path(), "d"),
        );
        assert_eq!(a.allocate(&o1).unwrap().start, 100_000);
        assert_eq!(a.allocate(&o2).unwrap().start, 165_536);
        assert_eq!(
            a.allocate(&o1).unwrap().start,
            100_000,
            "idempotent per owner"
        );
        assert_eq!(a.allocate(&o3).unwrap().start, 231_072);
        let err = a.allocate(&o4).unwrap_err();
        assert!(err.to_string().contains("exhausted"), "{err}");
        a.release(&o2).unwrap();
        assert_eq!(a.allocate(&o4).unwrap().start, 165_536);
    }

    #[test]
    fn stale_entries_are_reconciled_on_exhaustion() {
        let t = tempfile::tempdir().unwrap();
        let a = Allocator::new(t.path().join("ids"), 1);
        let o1 = owner(t.path(), "gone");
        a.allocate(&o1).unwrap();
        std::fs::remove_dir_all(&o1.state_dir).unwrap();
        let o2 = owner(t.path(), "new");
        assert_eq!(a.allocate(&o2).unwrap().start, 100_000);
        // A new allocator instance (a restart) sees the persisted table.
        let b = Allocator::new(t.path().join("ids"), 1);
        assert_eq!(b.in_use().unwrap().len(), 1);
    }
}
