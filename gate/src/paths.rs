//! Resolving bind sources in the VM, the way the kernel will when the
//! engine mounts them: symlinks followed, `..` taken physically, and for a
//! path that does not exist yet (the engine creates missing `-v` sources
//! as root) the nearest existing ancestor resolved with the rest appended.
//!
//! The result is what hull-policy judges and what the gate writes back into
//! the create body, so the engine mounts exactly the checked path. A race
//! remains between this check and the mount (a writable shared directory
//! could swap a component for a symlink); the runtime's own checks are the
//! second wall for that.

use std::io::ErrorKind;
use std::path::Path;

/// Most symlinks followed in one resolution (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Why a path could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("{0}: not an absolute path")]
    NotAbsolute(String),
    #[error("{0}: too many levels of symbolic links")]
    Loop(String),
    #[error("{0}: a component is not a directory")]
    NotDirectory(String),
    #[error("{0}: not valid UTF-8 after resolving symlinks")]
    NotUtf8(String),
    #[error("{path}: {error}")]
    Io { path: String, error: String },
}

/// Lexically cleans an absolute path (`.`, `..`, `//` removed; `..` at
/// the root stays at the root). Used on host paths before they are mapped
/// into the VM, where the physical resolution happens.
pub fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Resolves `path` against the real filesystem (see the module docs). The
/// answer is absolute and clean; components after the first missing one
/// are taken lexically (they will be created as directories).
pub fn resolve(path: &str) -> Result<String, ResolveError> {
    if !path.starts_with('/') {
        return Err(ResolveError::NotAbsolute(path.to_string()));
    }
    // Components still to walk, in reverse so that pop() yields the next.
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    // Index in `done` of the first component that does not exist.
    let mut missing_from: Option<usize> = None;
    let mut links = 0;
    while let Some(seg) = todo.pop() {
        match seg.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                if missing_from.is_some_and(|m| done.len() <= m) {
                    missing_from = None;
                }
                continue;
            }
            _ => {}
        }
        if missing_from.is_some() {
            done.push(seg);
            continue;
        }
        let here = format!("/{}", join_with(&done, &seg));
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ResolveError::Loop(path.to_string()));
                }
                let target = std::fs::read_link(&here).map_err(|e| io(&here, e))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| ResolveError::NotUtf8(here.clone()))?
                    .to_string();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(target.split('/').rev().map(str::to_string));
            }
            Ok(m) => {
                if !m.is_dir() && todo.iter().any(|s| !s.is_empty() && s != ".") {
                    // More components follow a file: the kernel says ENOTDIR
                    // (even for `file/..`).
                    return Err(ResolveError::NotDirectory(path.to_string()));
                }
                done.push(seg);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                missing_from = Some(done.len());
                done.push(seg);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(ResolveError::NotDirectory(path.to_string()));
            }
            Err(e) => return Err(io(&here, e)),
        }
    }
    Ok(format!("/{}", done.join("/")))
}

fn join_with(done: &[String], seg: &str) -> String {
    if done.is_empty() {
        seg.to_string()
    } else {
        format!("{}/{seg}", done.join("/"))
    }
}

fn io(path: &str, e: std::io::Error) -> ResolveError {
    ResolveError::Io {
        path: path.to_string(),
        error: e.to_string(),
    }
}

/// `(device, inode)` of a file, following symlinks; `None` if it does not
/// exist or cannot be read.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn s(p: &Path) -> String {
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn lexical_clean() {
        assert_eq!(clean("/a/./b//c/../d/"), "/a/b/d");
        assert_eq!(clean("/../../etc"), "/etc");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn resolves_symlinks_and_dotdot() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        let share = root.join("share");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        std::fs::write(share.join("file"), b"x").unwrap();
        symlink("/etc", share.join("abs")).unwrap();
        symlink("../..", share.join("sub/up")).unwrap();
        symlink("sub", share.join("rel")).unwrap();
        symlink("loop", share.join("loop")).unwrap();
        let r = |p: &str| resolve(&format!("{}/{p}", s(&share)));

        assert_eq!(r("sub").unwrap(), s(&share.join("sub")));
        assert_eq!(r("abs").unwrap(), "/etc");
        assert_eq!(r("abs/passwd").unwrap(), "/etc/passwd");
        assert_eq!(r("sub/up").unwrap(), s(&root));
        assert_eq!(r("rel/../file").unwrap(), s(&share.join("file")));
        assert_eq!(r("../../../../../../etc").unwrap(), "/etc");
        assert!(matches!(r("loop"), Err(ResolveError::Loop(_))));
        assert!(matches!(r("file/x"), Err(ResolveError::NotDirectory(_))));
        assert!(matches!(r("file/.."), Err(ResolveError::NotDirectory(_))));
        assert!(matches!(
            resolve("relative/x"),
            Err(ResolveError::NotAbsolute(_))
        ));
    }

    #[test]
    fn missing_tails_are_lexical_until_they_climb_back() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir_all(root.join("share")).unwrap();
        symlink("/etc", root.join("share/abs")).unwrap();
        let share = s(&root.join("share"));
        assert_eq!(
            resolve(&format!("{share}/new/deeper")).unwrap(),
            format!("{share}/new/deeper")
        );
        assert_eq!(
            resolve(&format!("{share}/new/../x")).unwrap(),
            format!("{share}/x")
        );
        // Climbing out of the missing part meets existing symlinks again.
        assert_eq!(resolve(&format!("{share}/new/../abs/x")).unwrap(), "/etc/x");
        assert_eq!(
            resolve(&format!("{share}/new/../../share/abs")).unwrap(),
            "/etc"
        );
    }
}
