//! Host tier: a container whose /dev is not the runtime's own fresh tmpfs
//! (a bind whose source holds the machine's real device nodes) must never
//! have those nodes handed to its root. Before the fix, the device setup
//! took an existing node of the right number for one it had made, and
//! chowned the machine's own /dev/null (and /dev/ptmx, the /dev/fd links,
//! ...) to the container's root id.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The machine's nodes and links the runtime's device setup names.
const WATCHED: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/fd",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/console",
];

fn owners() -> Vec<(&'static str, Option<(u32, u32)>)> {
    WATCHED
        .iter()
        .map(|p| {
            (
                *p,
                std::fs::symlink_metadata(p)
                    .ok()
                    .map(|m| (m.uid(), m.gid())),
            )
        })
        .collect()
}

/// Unmounts the bind of the machine's /dev when the test ends, however.
struct Bound(PathBuf);

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn prerequisites() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "missing prerequisite: root (bind mounts and namespaces)"
    );
    assert!(
        Path::new("/bin/busybox").exists(),
        "missing prerequisite: /bin/busybox (apt-get install busybox-static)"
    );
}

/// Binds the machine's `what` (a directory or a node) at `name` in the test
/// folder (the runtime's mount root here), as a volume or host share that
/// reaches real nodes would be.
fn machine_bind(env: &Env, what: &str, name: &str) -> (PathBuf, Bound) {
    let src = std::fs::canonicalize(env.dir.path()).unwrap().join(name);
    if Path::new(what).is_dir() {
        std::fs::create_dir(&src).unwrap();
    } else {
        std::fs::write(&src, "").unwrap();
    }
    nix::mount::mount(
        Some(what),
        &src,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("bind the machine's {what} under the test folder: {e}"));
    (src.clone(), Bound(src))
}

/// Runs `c` and returns its output, with the machine's watched nodes put
/// back (a failure must not leave the machine changed) and compared.
fn run_watched(env: &Env, id: &str, c: &serde_json::Value) -> String {
    let before = owners();
    assert_eq!(
        before.iter().find(|(p, _)| *p == "/dev/null").unwrap().1,
        Some((0, 0)),
        "the machine's /dev/null must start root-owned: {before:?}"
    );
    let b = env.bundle(id, c);
    let (ok, out, err) = run_to_end(env, id, &b);
    let after = owners();
    for ((p, was), (_, now)) in before.iter().zip(after.iter()) {
        if let (Some((u, g)), Some(n)) = (was, now) {
            if (*u, *g) != *n {
                let _ = std::os::unix::fs::lchown(p, Some(*u), Some(*g));
            }
        }
    }
    assert!(ok, "{err}");
    assert_eq!(
        after, before,
        "the machine's device nodes changed owner (put back by the test)"
    );
    out
}

#[test]
fn a_bind_of_the_machines_dev_over_dev_never_chowns_its_nodes() {
    prerequisites();
    let env = Env::new();
    let (src, _bound) = machine_bind(&env, "/dev", "machine-dev");
    let mut c = config(&[
        "sh",
        "-c",
        "echo null=$(stat -c %F,%t,%T /dev/null); \
         test -c /dev/kmsg && echo machine_dev=yes; echo done",
    ]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev", "type": "bind", "source": src, "options": ["bind", "rw"]
    }));
    let out = run_watched(&env, "devchown", &c);
    // The attempt really happened: the container ran with the machine's
    // /dev as its /dev (a name only it has), and /dev/null is the null device.
    let kv = kv(&out);
    assert_eq!(
        kv.get("machine_dev").map(String::as_str),
        Some("yes"),
        "{out}"
    );
    assert_eq!(kv["null"], "character special file,1,3", "{out}");
}

#[test]
fn a_bind_of_the_machines_null_at_dev_null_is_never_chowned() {
    prerequisites();
    let env = Env::new();
    let (src, _bound) = machine_bind(&env, "/dev/null", "machine-null");
    let mut c = config(&[
        "sh",
        "-c",
        "echo null=$(stat -c %F,%t,%T /dev/null); grep -c ' /dev/null ' /proc/self/mountinfo",
    ]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/dev/null", "type": "bind", "source": src, "options": ["bind", "rw"]
    }));
    let out = run_watched(&env, "nullchown", &c);
    // The attempt really happened: the machine's node is mounted at /dev/null.
    assert!(
        out.contains("null=character special file,1,3\n1\n"),
        "{out}"
    );
}
